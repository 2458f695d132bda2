"""Names that look alike are one name: vendors, queues, users, guidelines and manifests.

Two names clash when their confusable skeletons (Unicode UTS #39, from ICU's SpoofChecker
and its confusables data) are equal, so ``аcme`` (Cyrillic а) cannot sit beside ``acme``.
Before the skeleton a name is NFKC-normalised (full-width letters) and loses its invisible
format characters (zero-width space and joiners, bidi controls). The skeleton is taken of the
lower- and the upper-case form: UTS #39 maps Cyrillic ``м`` to ``ʍ`` in lower case, yet
``АСМЕ`` and ``ACME`` are the same glyphs, so an all-Cyrillic ``асме`` clashes too.

Existing names are read and compared when a name is created, not stored: these tables hold
names people type (tens to thousands of rows), so one scan costs milliseconds and needs no
column, migration or backfill. The exact same name is left to each create site (idempotent
create, a new guideline version, or its own "already exists" error).
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from dataops.errors import Conflict


class LookAlikeName(Conflict):
    code = "name_looks_alike"


@cache
def _checker() -> Any:
    import icu

    return icu.SpoofChecker()


def skeletons(name: str) -> frozenset[str]:
    """The UTS #39 skeletons of the name's lower- and upper-case forms."""
    visible = "".join(
        ch for ch in unicodedata.normalize("NFKC", name) if unicodedata.category(ch) != "Cf"
    )
    checker = _checker()
    return frozenset(checker.getSkeleton(0, form) for form in (visible.casefold(), visible.upper()))


def looks_like(name: str, other: str) -> bool:
    return bool(skeletons(name) & skeletons(other))


def refuse_look_alike(
    session: Session, column: InstrumentedAttribute[str], name: str, what: str
) -> None:
    """Refuse ``name`` when an existing, different ``column`` value looks the same."""
    mine = skeletons(name)
    for other in session.scalars(select(column).distinct()):
        if other != name and mine & skeletons(other):
            raise LookAlikeName(
                f"{what} name {name!r} looks like the existing {what} {other!r} (same "
                f"characters once look-alike letters, case and invisible characters are set "
                f"aside); use {other!r} itself or a name that reads differently"
            )
