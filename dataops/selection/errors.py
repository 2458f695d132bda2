"""Selection errors: each message says what was wrong and what to do about it."""

from __future__ import annotations

from dataops.errors import Conflict, DataopsError, NotFound


def literal(text: object) -> str:
    """``text`` as it should read inside a message template that names fields (braces kept)."""
    return str(text).replace("{", "{{").replace("}", "}}")


class InvalidSelection(DataopsError):
    """The request itself is wrong: unknown strategy or class, bad size, missing option."""

    code = "invalid_selection"


class NotScored(Conflict):
    """The strategy needs model outputs that the catalog does not have yet."""

    code = "not_scored"


class NothingEligible(Conflict):
    """Every image is labeled, in flight, held out or quarantined."""

    code = "nothing_eligible"


class TooFewEligible(NothingEligible):
    """Fewer images are eligible than the batch asks for, and a partial batch was not allowed."""

    code = "too_few_eligible"


class TaskUnclear(DataopsError):
    """A request could be about several labeling tasks; it must name one."""

    code = "task_unclear"


class BatchNotCancellable(Conflict):
    """The batch is closed (accepted or rejected): nothing of it is held any more."""

    code = "batch_closed"


class BatchNotAssignable(Conflict):
    """Only drafts get a queue: a sent batch's tasks live in its queue's project."""

    code = "batch_not_draft"


class BatchNotFound(NotFound):
    """No batch has that id."""
