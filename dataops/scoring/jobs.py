"""The ``score`` job: runs a model version over the catalog, one transaction per batch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataops.events import service as events
from dataops.scoring.schemas import ScoreParams
from dataops.scoring.score import (
    Target,
    num_workers,
    plan_scoring,
    quarantine_unreadable,
    store_predictions,
)
from dataops.scoring.service import scored_image_ids

if TYPE_CHECKING:
    from dataops.jobs.context import JobContext

_MAX_FAILURES_REPORTED = 20


def run_score_job(ctx: JobContext) -> dict[str, Any]:
    """Params are a ``ScoreParams``; each scored batch commits on its own, so a rerun resumes."""
    from dataops.scoring.inference import default_device

    request = ScoreParams.model_validate(ctx.params)
    with ctx.session() as session:
        target, todo, rederive, ok_total = plan_scoring(
            session, request.model, rescore=request.rescore
        )
    work = todo + rederive
    device = default_device()
    started = time.monotonic()
    ctx.progress(0, len(work), "score", force=True)
    tally = _score_all(ctx, request, target, work, len(todo), device)
    seconds = time.monotonic() - started
    embeddings = 0
    if target.store is not None:
        with ctx.session() as session:
            keep = scored_image_ids(session, target.id)
        embeddings = target.store.compact(keep)
    result = {
        "model": target.ref,
        "model_version_id": target.id,
        "images": ok_total,
        "scored": tally.written,
        "already_scored": 0 if request.rescore else ok_total - len(todo),
        "embeddings_rederived": len(rederive),
        "embeddings": embeddings,
        "failed": len(tally.failures),
        "quarantined": tally.quarantined,
        "errors": tally.failures[:_MAX_FAILURES_REPORTED],
        "device": device.type,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(work) / seconds, 1) if work and seconds > 0 else None,
    }
    with ctx.session() as session:
        events.record(
            session,
            "model.scored",
            "model_version",
            target.id,
            actor=ctx.actor,
            details={k: v for k, v in result.items() if k != "errors"} | {"job_id": ctx.job_id},
        )
        # Recorded with its event: a retry answers with this result, not an empty second run.
        return ctx.finish(session, result)


@dataclass
class _Tally:
    written: int = 0
    quarantined: int = 0
    failures: list[str] = field(default_factory=list)


def _score_all(
    ctx: JobContext,
    request: ScoreParams,
    target: Target,
    work: list[tuple[int, str]],
    to_predict: int,
    device: Any,
) -> _Tally:
    """Run the model over ``work``; the first ``to_predict`` get predictions, the rest (lost
    embeddings) only their vectors. One transaction per batch."""
    from dataops.scoring.inference import score_images

    tally = _Tally()
    if not work:
        return tally
    done = 0
    batches = score_images(
        target.uri,
        target.spec,
        [location for _, location in work],
        batch_size=request.batch_size,
        num_workers=num_workers(request.workers, len(work)),
        device=device,
        name=target.ref,
    )
    for out in batches:
        ids = [work[int(r)][0] for r in out.indices]
        if target.store is not None and out.embeddings is not None:
            target.store.append(ids, out.embeddings)
        predict = out.indices < to_predict
        bad = [(work[index][0], reason) for index, reason in out.failed]
        with ctx.session() as session:
            tally.written += store_predictions(
                session,
                target.id,
                target.classes,
                [i for i, p in zip(ids, predict, strict=True) if p],
                out.probs[predict],
                overwrite=request.rescore,
            )
            if bad:
                tally.quarantined += quarantine_unreadable(
                    session, bad, model=target.ref, actor=ctx.actor
                )
        tally.failures.extend(f"image {i}: {reason}" for i, reason in bad)
        done += len(ids) + len(bad)
        ctx.progress(done, len(work), "score")
    return tally
