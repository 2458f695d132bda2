"""An audited batch on a real catalog: a vendor queue, two annotators, answers that agree on all
but one item, and the audit that judged them (``run_audit``, the service the job runs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from dataops.audits.models import Audit
from dataops.audits.run import run_audit
from dataops.audits.schemas import AuditRequest
from dataops.labeling.models import Annotator, Guideline, LabelVersion, Queue, Vendor
from dataops.selection.models import Batch, BatchItem, ImageClaim

# Two annotators per item: every pair agrees but the third (a tie, so disputed).
ANSWERS = (("cat", "dog"), ("cat", "cat"), ("dog", "dog"), ("bird", "bird"))
TASK_BASE = 9000


@dataclass(frozen=True)
class AuditedBatch:
    batch_id: int
    audit_id: int
    queue_id: int
    disputed_image_ids: list[int]


def audited_batch(
    session: Session,
    image_ids: Sequence[int],
    *,
    name: str = "acme",
    answers: Sequence[tuple[str, str]] = ANSWERS,
    ls_project_id: int | None = None,
    vendor_id: int | None = None,
    gate: float = 0.7,
) -> AuditedBatch:
    """Label ``image_ids`` (one per answer pair) in a delivered batch and audit it.

    With ``ls_project_id`` the batch and its items carry Label Studio ids (task ids
    ``TASK_BASE + position``), as a pushed batch does.
    """
    if vendor_id is None:
        vendor = Vendor(name=name)
        session.add(vendor)
        session.flush()
        vendor_id = vendor.id
    annotators = [Annotator(name=f"{name}-{n}", vendor_id=vendor_id) for n in ("ann", "ben")]
    guideline = Guideline(
        name=f"{name}-animals",
        version=1,
        sha256=(name.encode().hex() + "c" * 64)[:64],
        kind="classification",
        classes=["bird", "cat", "dog"],
        body="# animals",
        label_config="<View/>",
    )
    session.add_all([*annotators, guideline])
    session.flush()
    queue = Queue(
        name=f"{name}-animals",
        vendor_id=vendor_id,
        guideline_id=guideline.id,
        ls_project_id=ls_project_id,
    )
    session.add(queue)
    session.flush()
    batch = Batch(
        purpose="active_learning",
        strategy="random",
        queue_id=queue.id,
        status="delivered",
        ls_project_id=ls_project_id,
    )
    session.add(batch)
    session.flush()
    disputed = []
    for position, (image_id, pair) in enumerate(zip(image_ids, answers, strict=False)):
        session.add(
            BatchItem(
                batch_id=batch.id,
                image_id=image_id,
                item_key=f"{name}-{batch.id}-{image_id}",
                position=position,
                is_overlap=True,
                required_annotations=2,
                ls_task_id=TASK_BASE + position if ls_project_id is not None else None,
            )
        )
        session.add(ImageClaim(image_id=image_id, batch_id=batch.id))
        if pair[0] != pair[1]:
            disputed.append(image_id)
        for annotator, cls in zip(annotators, pair, strict=True):
            key = f"{batch.id}-{image_id}-{annotator.name}"
            session.add(
                LabelVersion(
                    image_id=image_id,
                    annotator_id=annotator.id,
                    batch_id=batch.id,
                    payload={"class": cls},
                    source="csv",
                    source_id=key,
                    source_key=f"csv:{key}:-",
                )
            )
    session.flush()
    audit: Audit = run_audit(
        session, AuditRequest(batch_id=batch.id, gate=gate, resamples=50), actor="test"
    )
    return AuditedBatch(batch.id, audit.id, queue.id, disputed)
