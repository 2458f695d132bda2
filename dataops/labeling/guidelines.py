"""Guideline files: Markdown with YAML front matter that names the task kind and its classes.

A guideline lives at ``guidelines/<name>/v<N>.md``; beside it, ``label_config.xml`` is the
Label Studio labeling config generated from the newest version's front matter, so a reviewer
sees in one diff what annotators read and what they will click.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dataops.labeling.errors import GuidelineError

KINDS = ("classification", "detection")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_FILE_PATTERN = re.compile(r"^v(\d+)\.md$")
LABEL_CONFIG_FILE = "label_config.xml"


@dataclass(frozen=True)
class ParsedGuideline:
    name: str
    kind: str
    classes: list[str]
    definitions: dict[str, str]
    text: str


def check_name(name: str) -> str:
    """Names appear in `NAME:VERSION` references and folder names, so keep them plain."""
    if not NAME_PATTERN.match(name):
        raise GuidelineError(
            f"guideline name {name!r} must be lower-case letters, digits, '.', '_' or '-' "
            "(at most 128 characters, no ':')"
        )
    return name


def _split_front_matter(text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise GuidelineError(
            "a guideline starts with YAML front matter between '---' lines "
            "(name, kind, classes), then the Markdown body"
        )
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    raise GuidelineError("the front matter is not closed: add a line with '---' after it")


def _class_entry(item: object, position: int) -> tuple[str, str]:
    if not isinstance(item, dict) or len(item) != 1:
        raise GuidelineError(
            f"classes[{position}] must be one 'Name: one-line definition' entry, got {item!r}"
        )
    ((raw_name, raw_definition),) = item.items()
    if isinstance(raw_name, bool) or not isinstance(raw_name, str | int):
        raise GuidelineError(
            f"classes[{position}]: quote the class name {raw_name!r} so YAML reads it as text"
        )
    name = str(raw_name).strip()
    if not name or name.startswith("$"):
        raise GuidelineError(f"classes[{position}]: {raw_name!r} is not a usable class name")
    if not isinstance(raw_definition, str) or not raw_definition.strip():
        raise GuidelineError(f"class {name!r} needs a one-line definition")
    if "\n" in raw_definition.strip():
        raise GuidelineError(
            f"class {name!r}: keep the definition to one line; put details in the body"
        )
    return name, raw_definition.strip()


def parse_guideline(text: str) -> ParsedGuideline:
    """Read and check a guideline; every problem is a GuidelineError naming the fix."""
    import yaml

    front, body = _split_front_matter(text)
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        raise GuidelineError(f"the front matter is not valid YAML: {exc}") from None
    except RecursionError:
        raise GuidelineError(
            "the front matter nests too deeply: keep it to name, kind, classes"
        ) from None
    if not isinstance(meta, dict):
        raise GuidelineError("the front matter must be a mapping with name, kind and classes")
    missing = [key for key in ("name", "kind", "classes") if key not in meta]
    if missing:
        raise GuidelineError(f"the front matter lacks {', '.join(missing)}")
    name = check_name(str(meta["name"]))
    kind = meta["kind"]
    if kind not in KINDS:
        raise GuidelineError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    raw_classes = meta["classes"]
    if not isinstance(raw_classes, list) or not raw_classes:
        raise GuidelineError("classes must be a non-empty list of 'Name: definition' entries")
    definitions: dict[str, str] = {}
    for position, item in enumerate(raw_classes):
        class_name, definition = _class_entry(item, position)
        if class_name.casefold() in {c.casefold() for c in definitions}:
            raise GuidelineError(f"class {class_name!r} is listed twice")
        definitions[class_name] = definition
    if not body.strip():
        raise GuidelineError("the guideline body is empty: describe each class with examples")
    return ParsedGuideline(
        name=name, kind=kind, classes=list(definitions), definitions=definitions, text=text
    )


def read_guideline(path: Path) -> tuple[ParsedGuideline, bytes]:
    """The parsed guideline and the exact bytes its version id is the hash of."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GuidelineError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise GuidelineError(f"{path} is not UTF-8 text") from None
    return parse_guideline(text), data


def label_config_for(guideline: ParsedGuideline) -> str:
    """The Label Studio XML this guideline implies."""
    from dataops.labelstudio.config import label_config

    try:
        return label_config(guideline.kind, guideline.classes)  # type: ignore[arg-type]
    except ValueError as exc:
        raise GuidelineError(f"cannot build a Label Studio config: {exc}") from None


def config_file_text(guideline: ParsedGuideline) -> str:
    return label_config_for(guideline) + "\n"


def file_version(path: Path) -> int | None:
    match = _FILE_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


def newest_file(folder: Path) -> Path:
    """The highest ``v<N>.md`` in a guideline folder."""
    versions = [(n, p) for p in folder.glob("v*.md") if (n := file_version(p)) is not None]
    if not versions:
        raise GuidelineError(f"no v<N>.md guideline in {folder}")
    return max(versions)[1]
