"""Annotator and vendor performance over a period [since, until), in a few aggregate queries.

Definitions (the API, the CSV, the CLI and the console all show these numbers):

- *answer*: the live end of one annotator's label-version chain for one image of one batch
  and task (an edit replaces the answer, it never adds one), unless that end is a deletion or
  an adjudication. It falls in the period by when it was given: Label Studio's ``updated_at``
  (``source_updated_at``), else when dataops recorded it.
- *answers per day*: answers / the period's length in days.
- *time per answer*: the median of Label Studio's ``lead_time`` (seconds; cumulative over the
  annotator's edits) over the answers that have one.
- *turnaround*: the median hours from the batch's push to Label Studio (``sent_at``) to the
  answer; *late share*: answers given after their batch's due date / answers whose batch has
  one.
- *gold accuracy*: classification answers on gold items that give the gold answer's class /
  such answers, with a 95 % Wilson score interval. Detection gold is judged by box matching
  in each audit's report, not here.
- *agreement*: Cohen's kappa over every pair (this annotator's answer, another annotator's
  answer to the same item of the same batch and task), both classification answers in the
  period. For a vendor, every pair whose first answer is one of its annotators'.
- *first-pass acceptance*: of the answers in batches that have an audit (a batch is audited
  once, when it closes), the share whose live status is ``accepted``.
- *rework rate*: of those answers, the share whose image the audit put in its relabel batch.

A vendor's row counts its annotators' answers (the annotator's vendor now); answers of
annotators without one are the "(no vendor)" row.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from dataops.audits.models import Audit
from dataops.database.dialect import as_utc, custom_plans, is_postgres
from dataops.db import utcnow
from dataops.errors import DataopsError
from dataops.labeling.models import ACCEPTED, ADJUDICATED, DELETED, Annotator, LabelVersion, Vendor
from dataops.performance.schemas import (
    DEFAULT_DAYS,
    MAX_DAYS,
    PerformanceReport,
    PerformanceRequest,
    PerformanceRow,
)
from dataops.selection.models import Batch, BatchItem

NO_VENDOR = "(no vendor)"
CONFIDENCE = 0.95
Key = int | None


class PeriodError(DataopsError):
    code = "bad_period"


def period(request: PerformanceRequest, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The request's [since, until) in UTC, with the defaults filled in."""
    until = as_utc(request.until) if request.until is not None else now or utcnow()
    since = as_utc(request.since) if request.since is not None else until - timedelta(DEFAULT_DAYS)
    if since >= until:
        raise PeriodError("{since} must be before {until}", fields=("since", "until"))
    if until - since > timedelta(MAX_DAYS):
        raise PeriodError(f"the period is longer than {MAX_DAYS} days", fields=("since",))
    return since, until


def request_from_query(values: Mapping[str, str]) -> PerformanceRequest:
    """A request from a browser's GET form: blank fields take their defaults, and a value that
    does not parse is a 400 naming its field (instead of a validation dump)."""
    given = {key: value for key, value in values.items() if value.strip()}
    try:
        return PerformanceRequest.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error.get("loc") else "since"
        raise PeriodError(
            f"{{{field}}}: {error['msg']}"
            if field in PerformanceRequest.model_fields
            else str(error["msg"]),
            fields=(field,) if field in PerformanceRequest.model_fields else (),
        ) from None


def wilson_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of a proportion (no normal-approximation overshoot at 0 or 1)."""
    if trials <= 0:
        raise ValueError("a proportion needs at least one trial")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def kappa_from_pairs(cells: Iterable[tuple[str, str, int]]) -> tuple[int, float | None]:
    """Cohen's kappa from (first label, second label, count) cells; None when undefined
    (no pairs, or both sides always give one and the same label)."""
    first: dict[str, int] = defaultdict(int)
    second: dict[str, int] = defaultdict(int)
    n = agree = 0
    for a, b, count in cells:
        n += count
        agree += count if a == b else 0
        first[a] += count
        second[b] += count
    if n == 0:
        return 0, None
    expected = sum(first[k] * second.get(k, 0) for k in first) / (n * n)
    if expected >= 1.0:
        return n, None
    return n, (agree / n - expected) / (1 - expected)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _answers(group_by_vendor: bool, since: datetime, until: datetime) -> CTE:
    """One row per answer given in the period, with its group key and class (if any)."""
    later = aliased(LabelVersion)
    answered_at = func.coalesce(LabelVersion.source_updated_at, LabelVersion.created_at)
    key = Annotator.vendor_id if group_by_vendor else Annotator.id
    # The gold answer's class when the item is gold (and this is not the gold answer itself):
    # gold items through their partial index, a gold answer read only for those.
    gold_item = aliased(BatchItem)
    gold = aliased(LabelVersion)
    gold_cls = case(
        (
            gold_item.gold_label_version_id.is_not(None),
            select(gold.payload["class"].as_string())
            .where(gold.id == gold_item.gold_label_version_id, gold.id != LabelVersion.id)
            .scalar_subquery(),
        ),
    )
    return (
        select(
            LabelVersion.id,
            LabelVersion.image_id,
            LabelVersion.annotator_id,
            LabelVersion.batch_id,
            LabelVersion.task,
            LabelVersion.status,
            LabelVersion.lead_time,
            LabelVersion.payload["class"].as_string().label("cls"),
            answered_at.label("answered_at"),
            key.label("key"),
            gold_cls.label("gold_cls"),
        )
        .join(Annotator, Annotator.id == LabelVersion.annotator_id)
        .outerjoin(
            gold_item,
            and_(
                gold_item.batch_id == LabelVersion.batch_id,
                gold_item.image_id == LabelVersion.image_id,
                gold_item.is_gold.is_(True),
            ),
        )
        .where(
            LabelVersion.batch_id.is_not(None),
            LabelVersion.status.not_in((DELETED, ADJUDICATED)),
            ~exists().where(later.supersedes_id == LabelVersion.id),
            answered_at >= since,
            answered_at < until,
        )
        .cte("answers")
    )


_COUNTS = (
    "answers",
    "lead_time_answers",
    "turnaround_answers",
    "due_answers",
    "late_answers",
    "audited_answers",
    "accepted",
    "reworked_answers",
    "gold_answers",
    "gold_correct",
)
_MEDIANS = ("median_lead_time_s", "median_turnaround_h")
_COUNTS_PART, _PAIRS_PART = 0, 1


def _per_key(answers: CTE, postgres: bool) -> Select[Any]:
    """Answers, lead times, turnaround, lateness, audit acceptance, rework and gold per key:
    one row each, in the layout of `_tallies`."""
    a = answers.c
    first_audit = (
        select(Audit.batch_id, func.min(Audit.id).label("id")).group_by(Audit.batch_id).subquery()
    )
    audited = Audit.id.is_not(None)
    late = and_(Batch.due_at.is_not(None), a.answered_at > Batch.due_at)
    # Only answers whose audit made a relabel batch look there, one index probe each: a join
    # would hash every batch item of the catalog.
    reworked = case(
        (
            Audit.relabel_batch_id.is_not(None),
            exists().where(
                BatchItem.batch_id == Audit.relabel_batch_id, BatchItem.image_id == a.image_id
            ),
        ),
        else_=False,
    )
    judged = and_(a.gold_cls.is_not(None), a.cls.is_not(None))
    columns: list[ColumnElement[Any]] = [
        literal(_COUNTS_PART).label("part"),
        a.key,
        cast(null(), String).label("cls"),
        cast(null(), String).label("other_cls"),
        func.count(a.id).label("answers"),
        func.count(a.lead_time).label("lead_time_answers"),
        func.count(Batch.sent_at).label("turnaround_answers"),
        func.count(Batch.due_at).label("due_answers"),
        func.sum(case((late, 1), else_=0)).label("late_answers"),
        func.count(Audit.id).label("audited_answers"),
        func.sum(case((and_(audited, a.status == ACCEPTED), 1), else_=0)).label("accepted"),
        func.sum(case((reworked, 1), else_=0)).label("reworked_answers"),
        func.sum(case((judged, 1), else_=0)).label("gold_answers"),
        func.sum(case((and_(judged, a.cls == a.gold_cls), 1), else_=0)).label("gold_correct"),
    ]
    if postgres:
        hours = func.extract("epoch", a.answered_at - Batch.sent_at) / 3600.0
        columns += [
            func.percentile_cont(0.5).within_group(a.lead_time).label("median_lead_time_s"),
            func.percentile_cont(0.5).within_group(hours).label("median_turnaround_h"),
        ]
    return (
        select(*columns)
        .select_from(answers)
        .outerjoin(Batch, Batch.id == a.batch_id)
        .outerjoin(first_audit, first_audit.c.batch_id == a.batch_id)
        .outerjoin(Audit, Audit.id == first_audit.c.id)
        .group_by(a.key)
    )


def _pairs(answers: CTE, postgres: bool) -> Select[Any]:
    """(key, class, other's class, pairs) over the pairs of answers to one item by two
    annotators, in the layout of `_tallies`."""
    first = answers.alias("first")
    other = answers.alias("other")
    same_item = and_(
        first.c.batch_id == other.c.batch_id,
        first.c.image_id == other.c.image_id,
        first.c.task == other.c.task,
        first.c.annotator_id != other.c.annotator_id,
        first.c.cls.is_not(None),
        other.c.cls.is_not(None),
    )
    empty = [cast(null(), BigInteger) for _ in _COUNTS[1:]]
    if postgres:
        empty += [cast(null(), Float) for _ in _MEDIANS]
    return (
        select(literal(_PAIRS_PART), first.c.key, first.c.cls, other.c.cls, func.count(), *empty)
        .select_from(first)
        .join(other, same_item)
        .group_by(first.c.key, first.c.cls, other.c.cls)
    )


Tallies = tuple[dict[Key, dict[str, Any]], dict[Key, tuple[int, float | None]]]


def _tallies(session: Session, answers: CTE) -> Tallies:
    """Each key's counts (and medians) and its (pairs, Cohen's kappa), in one statement so that
    the period's answers are read once (PostgreSQL materialises a CTE used three times)."""
    postgres = is_postgres(session)
    stmt = union_all(_per_key(answers, postgres), _pairs(answers, postgres))
    counts: dict[Key, dict[str, Any]] = {}
    cells: dict[Key, list[tuple[str, str, int]]] = defaultdict(list)
    names = ("part", "key", "cls", "other_cls", *_COUNTS, *(_MEDIANS if postgres else ()))
    for values in session.execute(stmt):
        row = dict(zip(names, values, strict=True))
        if row["part"] == _PAIRS_PART:
            cells[row["key"]].append((row["cls"], row["other_cls"], int(row["answers"])))
        else:
            counts[row["key"]] = row
    if not postgres:
        _python_medians(session, answers, counts)
    return counts, {key: kappa_from_pairs(found) for key, found in cells.items()}


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _python_medians(session: Session, answers: CTE, out: dict[Key, dict[str, Any]]) -> None:
    """SQLite has no percentile aggregate: the embedded catalog's answers are few, so the
    medians are taken here, with the same interpolation as PostgreSQL's percentile_cont."""
    a = answers.c
    leads: dict[Key, list[float]] = defaultdict(list)
    for key, lead in session.execute(select(a.key, a.lead_time).where(a.lead_time.is_not(None))):
        leads[key].append(float(lead))
    hours: dict[Key, list[float]] = defaultdict(list)
    rows = session.execute(
        select(a.key, a.answered_at, Batch.sent_at).join(
            Batch, and_(Batch.id == a.batch_id, Batch.sent_at.is_not(None))
        )
    )
    for key, answered_at, pushed_at in rows:
        seconds = (as_utc(answered_at) - as_utc(pushed_at)).total_seconds()
        hours[key].append(seconds / 3600.0)
    for key, row in out.items():
        row["median_lead_time_s"] = _median(leads[key])
        row["median_turnaround_h"] = _median(hours[key])


def _names(
    session: Session, group_by_vendor: bool, keys: Sequence[Key]
) -> dict[Key, tuple[str, str | None]]:
    """Each key's display name, and an annotator's vendor."""
    ids = [k for k in keys if k is not None]
    if group_by_vendor:
        found: dict[Key, tuple[str, str | None]] = {
            vendor_id: (name, None)
            for vendor_id, name in session.execute(
                select(Vendor.id, Vendor.name).where(Vendor.id.in_(ids))
            )
        }
        found[None] = (NO_VENDOR, None)
        return found
    return {
        annotator_id: (name, vendor)
        for annotator_id, name, vendor in session.execute(
            select(Annotator.id, Annotator.name, Vendor.name)
            .outerjoin(Vendor, Vendor.id == Annotator.vendor_id)
            .where(Annotator.id.in_(ids))
        )
    }


def sort_rows(rows: Sequence[PerformanceRow], field: str, descending: bool) -> list[PerformanceRow]:
    """Rows by one column, names breaking ties; rows missing that value come last either way."""
    by_name = sorted(rows, key=lambda r: (r.name.casefold(), r.id or 0))
    if field == "name":
        return by_name[::-1] if descending else by_name
    present = [r for r in by_name if getattr(r, field) is not None]
    missing = [r for r in by_name if getattr(r, field) is None]
    present.sort(key=lambda r: getattr(r, field), reverse=descending)
    return present + missing


def performance_report(
    session: Session, request: PerformanceRequest, *, now: datetime | None = None
) -> PerformanceReport:
    """Every annotator (or vendor) with an answer in the period, and their numbers."""
    since, until = period(request, now)
    custom_plans(session)
    if is_postgres(session):
        # Compiling the report's expressions took longer (0.15-0.3 s) than they then ran.
        session.execute(text("SET LOCAL jit = off"))
        # The pairs join and the per-key sorts of a month's answers fit in memory with this.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    by_vendor = request.group == "vendor"
    answers = _answers(by_vendor, since, until)
    counts, agreement = _tallies(session, answers)
    names = _names(session, by_vendor, list(counts))
    days = (until - since).total_seconds() / 86400.0
    rows = []
    for key, c in counts.items():
        n_gold, n_correct = int(c["gold_answers"] or 0), int(c["gold_correct"] or 0)
        low, high = wilson_interval(n_correct, n_gold) if n_gold else (None, None)
        pairs, kappa = agreement.get(key, (0, None))
        name, vendor = names.get(key, (f"#{key}", None))
        audited, accepted = int(c["audited_answers"]), int(c["accepted"] or 0)
        reworked = int(c["reworked_answers"])
        due, late = int(c["due_answers"]), int(c["late_answers"] or 0)
        median_lead = c["median_lead_time_s"]
        median_turnaround = c["median_turnaround_h"]
        rows.append(
            PerformanceRow(
                id=key,
                name=name,
                vendor=vendor,
                answers=int(c["answers"]),
                answers_per_day=int(c["answers"]) / days,
                lead_time_answers=int(c["lead_time_answers"]),
                median_lead_time_s=None if median_lead is None else float(median_lead),
                turnaround_answers=int(c["turnaround_answers"]),
                median_turnaround_h=None if median_turnaround is None else float(median_turnaround),
                due_answers=due,
                late_answers=late,
                late_share=_share(late, due),
                gold_answers=n_gold,
                gold_correct=n_correct,
                gold_accuracy=_share(n_correct, n_gold),
                gold_ci_low=low,
                gold_ci_high=high,
                kappa_pairs=pairs,
                kappa=kappa,
                audited_answers=audited,
                accepted_answers=accepted,
                first_pass_acceptance=_share(accepted, audited),
                reworked_answers=reworked,
                rework_rate=_share(reworked, audited),
            )
        )
    return PerformanceReport(
        group=request.group,
        since=since,
        until=until,
        days=days,
        sort=request.sort,
        descending=request.descending,
        rows=sort_rows(rows, request.sort, request.descending),
    )
