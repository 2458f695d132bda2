"""Selection errors: each message says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError


class InvalidSelection(DataopsError):
    """The request itself is wrong: unknown strategy or class, bad size, missing option."""

    code = "invalid_selection"


class NotScored(Conflict):
    """The strategy needs model outputs that the catalog does not have yet."""

    code = "not_scored"


class NothingEligible(Conflict):
    """Every image is labeled, in flight, held out or quarantined."""

    code = "nothing_eligible"
