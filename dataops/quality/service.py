"""Reads of label-quality runs and their scores (takes a Session, never commits)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.catalog.models import Image
from dataops.quality.errors import RunNotFound
from dataops.quality.models import LabelQuality, LabelQualityRun
from dataops.quality.schemas import IssuesOut, IssuesRequest, LabelQualityOut, RunOut
from dataops.scoring.models import ModelVersion


def run_out(session: Session, run: LabelQualityRun) -> RunOut:
    model = session.get(ModelVersion, run.model_version_id) if run.model_version_id else None
    return RunOut(
        id=run.id,
        task=run.task,
        source=run.source,
        model=f"{model.name}:{model.version}" if model is not None else None,
        params=run.params,
        classes=[str(c) for c in run.classes],
        labels=run.labels,
        issues=run.issues,
        per_class=run.per_class,
        created_by=run.created_by,
        created_at=run.created_at,
    )


def get_run(session: Session, run_id: int) -> LabelQualityRun:
    run = session.get(LabelQualityRun, run_id)
    if run is None:
        raise RunNotFound(f"no label-quality run {run_id}; see `dataops labels issues`")
    return run


def latest_run(session: Session, task: str | None, model: str | None) -> LabelQualityRun:
    """The newest run of the task (and the model's version, when named)."""
    stmt = select(LabelQualityRun)
    if task is not None:
        stmt = stmt.where(LabelQualityRun.task == task)
    if model is not None:
        from dataops.scoring.service import resolve_model

        stmt = stmt.where(LabelQualityRun.model_version_id == resolve_model(session, model).id)
    run = session.scalar(stmt.order_by(LabelQualityRun.id.desc()).limit(1))
    if run is None:
        raise RunNotFound(
            "no label-quality run yet for this task and model; start one with "
            "`dataops labels issues`"
        )
    return run


def run_for_task(session: Session, run_id: int, task: str) -> LabelQualityRun:
    """The run, refused when it judged another task's labels."""
    run = get_run(session, run_id)
    if run.task != task:
        raise RunNotFound(
            f"label-quality run {run_id} judged task {run.task!r}, not {task!r}; pass a run "
            "of this task in {exclude_label_issues}",
            fields=("exclude_label_issues",),
        )
    return run


def flagged_label_ids(session: Session, run_id: int, *, task: str | None = None) -> set[int]:
    """Label versions the run flagged as probable label errors."""
    if task is None:
        get_run(session, run_id)
    else:
        run_for_task(session, run_id, task)
    return set(
        session.scalars(
            select(LabelQuality.label_version_id).where(
                LabelQuality.run_id == run_id, LabelQuality.is_issue.is_(True)
            )
        )
    )


def suspect_images(session: Session, run_id: int) -> dict[int, float]:
    """Image id -> its lowest label-quality score in the run (flagged labels only)."""
    out: dict[int, float] = {}
    rows = session.execute(
        select(LabelQuality.image_id, LabelQuality.quality).where(
            LabelQuality.run_id == run_id, LabelQuality.is_issue.is_(True)
        )
    )
    for image_id, quality in rows:
        out[image_id] = min(quality, out.get(image_id, 1.0))
    return out


def list_issues(session: Session, request: IssuesRequest) -> IssuesOut:
    """Scores of one run, most suspect first."""
    run = (
        get_run(session, request.run)
        if request.run is not None
        else latest_run(session, request.task, request.model)
    )
    stmt = (
        select(LabelQuality, Image.sha256)
        .join(Image, Image.id == LabelQuality.image_id)
        .where(LabelQuality.run_id == run.id)
        .order_by(LabelQuality.quality, LabelQuality.label_version_id)
    )
    if request.issues_only:
        stmt = stmt.where(LabelQuality.is_issue.is_(True))
    if request.limit:
        stmt = stmt.limit(request.limit)
    labels = [
        LabelQualityOut(
            label_version_id=q.label_version_id,
            image_id=q.image_id,
            sha256=sha,
            given_class=q.given_class,
            suggested_class=q.suggested_class,
            quality=q.quality,
            is_issue=q.is_issue,
        )
        for q, sha in session.execute(stmt)
    ]
    return IssuesOut(run=run_out(session, run), labels=labels)


def label_error_rates(session: Session, task: str, run_id: int | None) -> dict[str, Any] | None:
    """What a datasheet states: the run (named, else the task's newest) and its per-class
    estimated label-error rates; ``None`` when the task has no run."""
    if run_id is not None:
        run: LabelQualityRun | None = run_for_task(session, run_id, task)
    else:
        run = session.scalar(
            select(LabelQualityRun)
            .where(LabelQualityRun.task == task)
            .order_by(LabelQualityRun.id.desc())
            .limit(1)
        )
    if run is None:
        return None
    return {"run": run.id, "source": run.source, "per_class": run.per_class}
