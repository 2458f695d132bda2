"""Guideline files: the checked-in ones are valid and their Label Studio configs are current."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dataops.labeling.errors import GuidelineError, InvalidLabel
from dataops.labeling.guidelines import (
    LABEL_CONFIG_FILE,
    config_file_text,
    newest_file,
    parse_guideline,
    read_guideline,
)
from dataops.labeling.payloads import normalise_payload

GUIDELINES = Path(__file__).resolve().parents[2] / "guidelines"
FOLDERS = sorted(p for p in GUIDELINES.iterdir() if p.is_dir())

VALID = """---
name: demo
kind: classification
classes:
  - cat: A domestic cat.
  - dog: A domestic dog.
---
# Demo
Body text.
"""


def test_the_expected_guidelines_are_checked_in() -> None:
    assert {p.name for p in FOLDERS} >= {"clothing", "digits", "ppe-detection"}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_checked_in_label_config_matches_the_generator(folder: Path) -> None:
    parsed, _ = read_guideline(newest_file(folder))
    assert parsed.name == folder.name
    checked_in = (folder / LABEL_CONFIG_FILE).read_text(encoding="utf-8")
    assert checked_in == config_file_text(parsed), (
        f"regenerate with: dataops guidelines config {folder} --write"
    )


@pytest.mark.parametrize("path", sorted(GUIDELINES.glob("*/v*.md")), ids=str)
def test_every_class_is_explained_in_the_body(path: Path) -> None:
    parsed, _ = read_guideline(path)
    for name in parsed.classes:
        assert name in parsed.text.split("---", 2)[2], f"{name} is not described in {path}"


def test_clothing_covers_every_label_the_corpus_uses(corpus: Path) -> None:
    parsed, _ = read_guideline(GUIDELINES / "clothing" / "v1.md")
    with (corpus / "clothing-dataset-labels.csv").open(newline="") as fh:
        used = {row["label"] for row in csv.DictReader(fh)}
    assert used <= set(parsed.classes)
    assert {"Not sure", "Skip", "Other"} <= set(parsed.classes)
    assert parsed.kind == "classification"


def test_digits_and_ppe_classes() -> None:
    digits, _ = read_guideline(GUIDELINES / "digits" / "v1.md")
    assert digits.classes == [str(n) for n in range(10)]
    ppe, _ = read_guideline(GUIDELINES / "ppe-detection" / "v1.md")
    assert (ppe.kind, ppe.classes) == ("detection", ["person", "helmet", "vest"])
    assert "RectangleLabels" in config_file_text(ppe)


def test_parse_reads_definitions_and_keeps_the_text() -> None:
    parsed = parse_guideline(VALID)
    assert parsed.classes == ["cat", "dog"]
    assert parsed.definitions["dog"] == "A domestic dog."
    assert parsed.text == VALID


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("# no front matter\n", "front matter"),
        ("---\nname: x\n", "not closed"),
        ("---\n- a\n---\nbody\n", "mapping"),
        ("---\nname: x\nkind: segmentation\nclasses: [{a: b}]\n---\nbody\n", "kind must be"),
        ("---\nname: x\nkind: detection\n---\nbody\n", "lacks classes"),
        ("---\nname: X Y\nkind: detection\nclasses: [{a: b}]\n---\nbody\n", "lower-case"),
        ("---\nname: x\nkind: detection\nclasses: [a, b]\n---\nbody\n", "one 'Name"),
        ("---\nname: x\nkind: detection\nclasses: [{a: ''}]\n---\nbody\n", "definition"),
        ("---\nname: x\nkind: detection\nclasses: [{yes: b}]\n---\nbody\n", "quote"),
        ("---\nname: x\nkind: detection\nclasses: [{a: b}, {A: c}]\n---\nbody\n", "twice"),
        ("---\nname: x\nkind: detection\nclasses: [{a: b}]\n---\n\n", "body is empty"),
        ("---\nname: x\nkind: [\n---\nbody\n", "not valid YAML"),
    ],
)
def test_bad_guidelines_say_what_to_fix(text: str, needle: str) -> None:
    with pytest.raises(GuidelineError, match=needle):
        parse_guideline(text)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GuidelineError, match="cannot read"):
        read_guideline(tmp_path / "missing.md")
    latin = tmp_path / "v1.md"
    latin.write_bytes(VALID.replace("cat", "ch\xe2t").encode("latin-1"))
    with pytest.raises(GuidelineError, match="UTF-8"):
        read_guideline(latin)


def test_newest_file_picks_the_highest_version(tmp_path: Path) -> None:
    for n in (1, 2, 10):
        (tmp_path / f"v{n}.md").write_text(VALID)
    (tmp_path / "notes.md").write_text("x")
    assert newest_file(tmp_path).name == "v10.md"
    with pytest.raises(GuidelineError, match=r"no v<N>\.md"):
        newest_file(tmp_path / "empty")


def test_payloads_are_normalised_and_checked() -> None:
    classes = ["T-Shirt", "Dress"]
    assert normalise_payload({"class": " t-shirt "}, classes=classes) == {"class": "T-Shirt"}
    box = {"class": "helmet", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "score": 0.9}
    assert normalise_payload({"boxes": [box]}, kind="detection") == {
        "boxes": [{"class": "helmet", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}]
    }
    assert normalise_payload({"boxes": []}, kind="detection") == {"boxes": []}
    bad = [
        ({"class": "Hat"}, {"classes": classes}, "not a class"),
        ({"class": "Dress"}, {"kind": "detection"}, "asks for detection"),
        ({"class": "a", "boxes": []}, {}, "got keys"),
        ({"class": "a\x00"}, {}, "control characters"),
        ({"boxes": [{**box, "w": 0}]}, {}, "no area"),
        ({"boxes": [{**box, "x": 0.9}]}, {}, "outside the image"),
        ({"boxes": [{**box, "x": float("nan")}]}, {}, "finite"),
        ({"boxes": [{**box, "y": True}]}, {}, "number"),
        ({"boxes": "none"}, {}, "list"),
        ([], {}, "object"),
    ]
    for payload, options, needle in bad:
        with pytest.raises(InvalidLabel, match=needle):
            normalise_payload(payload, **options)  # type: ignore[arg-type]
