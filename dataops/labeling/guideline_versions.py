"""Published guideline versions: identified by the sha256 of their text, never edited."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataops.database.dialect import insert
from dataops.errors import Conflict
from dataops.events import service as events
from dataops.labeling import guidelines as guideline_files
from dataops.labeling.errors import (
    GuidelineError,
    GuidelineNotFound,
)
from dataops.labeling.models import (
    Guideline,
)
from dataops.labeling.schemas import (
    GuidelineDetail,
    GuidelineOut,
)
from dataops.names import refuse_look_alike


def guideline_ref(guideline: Guideline) -> str:
    return f"{guideline.name}:{guideline.version}"


def guideline_out(guideline: Guideline) -> GuidelineOut:
    return GuidelineOut(
        id=guideline.id,
        name=guideline.name,
        version=guideline.version,
        ref=guideline_ref(guideline),
        sha256=guideline.sha256,
        kind=guideline.kind,
        classes=list(guideline.classes),
        created_by=guideline.created_by,
        created_at=guideline.created_at,
    )


def guideline_detail(guideline: Guideline) -> GuidelineDetail:
    return GuidelineDetail(
        **guideline_out(guideline).model_dump(),
        body=guideline.body,
        label_config=guideline.label_config,
    )


def publish_guideline(
    session: Session, path: Path, *, actor: str | None = None
) -> tuple[Guideline, bool]:
    """Register a guideline file; its version id is the sha256 of its bytes.

    The same bytes return the version already registered; changed bytes become the next
    version number of that name. Published versions are never edited.
    """
    parsed, data = guideline_files.read_guideline(path)
    return _publish(session, parsed, data, actor=actor)


def publish_guideline_text(
    session: Session, text: str, *, name: str | None = None, actor: str | None = None
) -> tuple[Guideline, bool]:
    """Register a guideline sent as text; the same text as a UTF-8 file gets the same version.

    ``name``, when given, must be the name in the front matter (a guard against publishing one
    guideline's text under another's name).
    """
    parsed = guideline_files.parse_guideline(text)
    if name is not None and parsed.name != name:
        raise GuidelineError(f"the front matter names the guideline {parsed.name!r}, not {name!r}")
    return _publish(session, parsed, text.encode(), actor=actor)


def _publish(
    session: Session, parsed: guideline_files.ParsedGuideline, data: bytes, *, actor: str | None
) -> tuple[Guideline, bool]:
    sha = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Guideline).where(Guideline.sha256 == sha))
    if existing is not None:
        return existing, False
    refuse_look_alike(session, Guideline.name, parsed.name, "guideline")
    config = guideline_files.label_config_for(parsed)
    latest = session.scalar(
        select(func.max(Guideline.version)).where(Guideline.name == parsed.name)
    )
    stmt = (
        insert(session, Guideline)
        .values(
            name=parsed.name,
            version=(latest or 0) + 1,
            sha256=sha,
            kind=parsed.kind,
            classes=parsed.classes,
            body=parsed.text,
            label_config=config,
            created_by=actor,
        )
        .on_conflict_do_nothing()
    )
    new_id = session.scalar(stmt.returning(Guideline.id))
    if new_id is None:
        raced = session.scalar(select(Guideline).where(Guideline.sha256 == sha))
        if raced is not None:
            return raced, False
        raise Conflict(
            f"another version of {parsed.name!r} was published at the same moment; publish again"
        )
    guideline = session.get(Guideline, new_id)
    assert guideline is not None
    events.record(
        session,
        "guideline.published",
        "guideline",
        guideline.id,
        actor=actor,
        details={"name": guideline.name, "version": guideline.version, "sha256": sha},
    )
    return guideline, True


def get_guideline(session: Session, ref: str) -> Guideline:
    """``NAME`` (newest version), ``NAME:N`` / ``NAME:vN``, or a sha256 (8+ character prefix)."""
    text = ref.strip()
    name, _, version = text.partition(":")
    stmt = select(Guideline).where(Guideline.name == name)
    if version:
        number = version.lower().removeprefix("v")
        if not number.isdigit():
            raise GuidelineNotFound(f"guideline version in {text!r} must be a number (NAME:2)")
        stmt = stmt.where(Guideline.version == int(number))
    guideline = session.scalar(stmt.order_by(Guideline.version.desc()).limit(1))
    if guideline is None and not version and len(text) >= 8 and re.fullmatch(r"[0-9a-f]+", text):
        matches = list(
            session.scalars(select(Guideline).where(Guideline.sha256.startswith(text)).limit(2))
        )
        guideline = matches[0] if len(matches) == 1 else None
    if guideline is None:
        raise GuidelineNotFound(
            f"no guideline {text!r}; publish it with `dataops guidelines publish "
            "guidelines/<name>/v<N>.md` or see `dataops guidelines list`"
        )
    return guideline


def list_guidelines(session: Session, name: str | None = None) -> list[Guideline]:
    stmt = select(Guideline).order_by(Guideline.name, Guideline.version)
    if name:
        stmt = stmt.where(Guideline.name == name)
    return list(session.scalars(stmt))
