"""Checking a selection request before anything is written.

A plan resolves the request's model version, class, queue and task, and refuses what cannot
work (a class the model lacks, a strategy that needs predictions for a cold start, a size
above the configured maximum). The CLI and the HTTP route plan first so that a bad request
fails at once instead of as a failed job, then pin the resolved model and task into the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.labeling.models import Queue
from dataops.scoring.models import ModelVersion
from dataops.selection import registry, tasks
from dataops.selection.errors import InvalidSelection, literal
from dataops.selection.registry import Strategy
from dataops.selection.schemas import SelectRequest
from dataops.selection.strategies import HARD_NEGATIVE_MODES


@dataclass(frozen=True)
class Plan:
    """A checked request: everything resolved before any row is written."""

    strategy: str
    size: int
    purpose: str
    seed: int
    task: str
    model: ModelVersion | None
    class_name: str | None
    class_index: int | None
    mode: str | None
    queue: Queue | None
    stratify_by: str | None
    allow_partial: bool = False
    requested: int = 0

    @property
    def rule(self) -> Strategy:
        found = registry.get(self.strategy)
        assert found is not None
        return found

    @property
    def score_column(self) -> str | None:
        return self.rule.score

    @property
    def has_embeddings(self) -> bool:
        return self.model is not None and self.model.has_embedding


def model_ref(mv: ModelVersion) -> str:
    return f"{mv.name}:{mv.version}"


def plan_selection(session: Session, request: SelectRequest) -> Plan:
    """Check a request and resolve its model, class, queue and task; raises before anything is
    written. The task is the queue's (its guideline's name), else ``task``, else the only one
    there is. A size above ``selection.max_batch_size`` is refused, or capped there when a
    partial batch is allowed."""
    from dataops.labeling.service import get_queue

    rule = registry.get(request.strategy)
    assert rule is not None  # the request model only accepts registered names
    stratify_by = request.stratify_by
    if rule.needs_strata:
        if not stratify_by:
            raise InvalidSelection(
                f"{rule.name} needs {{stratify_by}}: the image attribute whose values share "
                "the batch",
                fields=("stratify_by",),
            )
        rule = (registry.get(rule.runs_as) if rule.runs_as else None) or rule
    size = _capped_size(request)
    if not rule.needs_class and (request.class_name is not None or request.mode is not None):
        raise InvalidSelection(
            f"{{class}} and {{mode}} only apply to {{strategy}} {_with_class()}",
            fields=("class", "mode", "strategy"),
        )
    purpose: str | None = request.purpose
    mv = _model_for(session, request, rule)
    class_index = mode = None
    if rule.needs_class:
        assert mv is not None
        mode = request.mode or "unlabeled"
        class_index = _class_index(mv, rule, request.class_name)
    if rule.needs_embeddings and mv is not None and not mv.has_embedding:
        raise InvalidSelection(
            f"{rule.name} needs embeddings, and model {model_ref(mv)} returns none; use a "
            "model whose forward returns (logits, embedding), or margin"
        )
    if purpose is None:
        purpose = rule.purpose or ("cold_start" if mv is None else "active_learning")
    queue_row = get_queue(session, request.queue) if request.queue is not None else None
    assert mode is None or mode in HARD_NEGATIVE_MODES
    return Plan(
        strategy=rule.name,
        size=size,
        purpose=purpose,
        seed=request.seed,
        task=tasks.selection_task(session, queue_row, request.task),
        model=mv,
        class_name=request.class_name,
        class_index=class_index,
        mode=mode,
        queue=queue_row,
        stratify_by=stratify_by,
        allow_partial=request.allow_partial,
        requested=request.size,
    )


def pin(session: Session, request: SelectRequest) -> SelectRequest:
    """The request as a job runs it: checked, with the model version and task it resolved to,
    so a job that runs later (or again) selects against the same ones."""
    plan = plan_selection(session, request)
    pinned = {"task": plan.task}
    if plan.model is not None:
        pinned["model"] = model_ref(plan.model)
    return request.model_copy(update=pinned)


def _with_class() -> str:
    return " or ".join(st.name for st in registry.REGISTRY.values() if st.needs_class)


def _capped_size(request: SelectRequest) -> int:
    from dataops.config import get_settings

    largest = get_settings().selection.max_batch_size
    if request.size <= largest:
        return request.size
    if not request.allow_partial:
        raise InvalidSelection(
            f"{{size}} {request.size} is above the largest batch allowed ({largest}, setting "
            "DATAOPS_SELECTION__MAX_BATCH_SIZE); ask for fewer, or pass {allow_partial} "
            f"for a batch of {largest}",
            fields=("size", "allow_partial"),
        )
    return largest


def _model_for(session: Session, request: SelectRequest, rule: Strategy) -> ModelVersion | None:
    from dataops.scoring.service import resolve_model

    if request.purpose == "cold_start":
        if not rule.without_model:
            usable = " or ".join(st.name for st in registry.REGISTRY.values() if st.without_model)
            raise InvalidSelection(
                f"cold_start selects without predictions: use {{strategy}} {usable}, "
                f"not {rule.name}",
                fields=("strategy",),
            )
        return resolve_model(session, request.model) if request.model is not None else None
    if request.model is not None or rule.needs_model:
        return resolve_model(session, request.model)
    return _default_model(session)


def _class_index(mv: ModelVersion, rule: Strategy, class_name: str | None) -> int:
    classes = [str(c) for c in mv.classes]
    if class_name is None:
        raise InvalidSelection(
            f"{rule.name} needs {{class}}: one of {literal(', '.join(classes))}",
            fields=("class",),
        )
    if class_name not in classes:
        raise InvalidSelection(
            f"model {model_ref(mv)} has no class {class_name!r}; its classes are "
            f"{', '.join(classes)}"
        )
    return classes.index(class_name)


def _default_model(session: Session) -> ModelVersion | None:
    """The current version of the only registered model, so random batches carry pre-labels."""
    from dataops.scoring.service import resolve_model

    names = session.scalars(select(ModelVersion.name).distinct().limit(2)).all()
    if len(names) != 1:
        return None
    return resolve_model(session, names[0])
