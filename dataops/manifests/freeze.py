"""Reading what a manifest freezes: each image's accepted label, its group and its scope.

The accepted label of an image for a task is labeling's one rule
(:func:`dataops.labeling.service.accepted_labels`), read here for every image in scope in
one query, in sha256 order.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Text, cast, func, select, text
from sqlalchemy.orm import Session, aliased

from dataops.catalog.models import OK, QUARANTINED, Image, Source
from dataops.database.dialect import is_sqlite
from dataops.labeling.models import Guideline, LabelVersion
from dataops.labeling.service import accepted_labels
from dataops.manifests import models
from dataops.manifests.datasheet import NO_CLASS, Frozen, classes_per_row
from dataops.manifests.models import Manifest
from dataops.manifests.splits import StratumBalance, group_key, stratum_balance
from dataops.selection.models import BatchItem

STRATIFY_LABEL = "label"
QUERY_SOURCE = "source"
FETCH_CHUNK = 50_000


def _scoped(stmt: Any, query: Mapping[str, str], batch_ids: Sequence[int] | None) -> Any:
    for key, value in query.items():
        if key == QUERY_SOURCE:
            stmt = stmt.where(Image.source_id.in_(select(Source.id).where(Source.name == value)))
        else:
            stmt = stmt.where(Image.attributes[key].as_string() == value)
    if batch_ids is not None:
        stmt = stmt.where(
            Image.id.in_(select(BatchItem.image_id).where(BatchItem.batch_id.in_(batch_ids)))
        )
    return stmt


def _parse_json(texts: Sequence[str | None]) -> list[Any]:
    """Decode many JSON documents in one call (several times faster than one call each)."""
    return list(json.loads("[" + ",".join(t or "null" for t in texts) + "]"))


def _root(roots: Mapping[int, int], group: int | None) -> int | None:
    return None if group is None else roots.get(group, group)


def freeze(
    session: Session,
    task: str,
    query: Mapping[str, str],
    batch_ids: Sequence[int] | None,
    roots: Mapping[int, int],
) -> Frozen:
    """Every ok image in scope with its accepted label, its group resolved through merges.

    Read in chunks and decoded a chunk at a time: a million rows in one fetch would hold
    the driver's copy and the rows together.
    """
    chosen = accepted_labels(task).cte("chosen")
    version = aliased(LabelVersion, name="version")
    stmt = _scoped(
        select(
            Image.id,
            Image.sha256,
            Image.blob_key,
            Image.uri,
            Image.width,
            Image.height,
            Image.dup_group_id,
            cast(Image.attributes, Text),
            Image.source_id,
            version.id,
            cast(version.payload, Text),
            version.guideline_id,
            version.annotator_id,
            version.batch_id,
            version.status,
        )
        .join(chosen, chosen.c.image_id == Image.id)
        .join(version, version.id == chosen.c.id)
        .where(Image.status == OK)
        .order_by(Image.sha256),
        query,
        batch_ids,
    )
    guidelines = {
        gid: f"{name}:{number}"
        for gid, name, number in session.execute(
            select(Guideline.id, Guideline.name, Guideline.version)
        )
    }
    if not is_sqlite(session):
        # One large read: hash joins and the sort fit in memory instead of spilling to disk,
        # and compiling it (JIT) costs seconds that a plain hash join does not need.
        session.execute(text("SET LOCAL work_mem = '1GB'"))
        session.execute(text("SET LOCAL jit = off"))
    frozen = Frozen()
    result = session.connection().execute(stmt.execution_options(yield_per=FETCH_CHUNK))
    for chunk in result.partitions():
        texts = [row[10] for row in chunk]
        frozen.label_texts += texts
        labels = _parse_json(texts)
        frozen.attributes += [a or {} for a in _parse_json([row[7] for row in chunk])]
        for row, label in zip(chunk, labels, strict=True):
            (image_id, sha, blob, uri, width, height, group, _, source_id, version_id) = row[:10]
            frozen.rows.append(
                {
                    "sha256": sha,
                    "blob_key": blob or "",
                    "uri": uri,
                    "split": "",
                    "label_version_id": version_id,
                    "label": label,
                    "guideline_version": guidelines.get(row[11]),
                    "dup_group_id": roots.get(group, group) if roots else group,
                    "width": width or 0,
                    "height": height or 0,
                }
            )
            frozen.image_ids.append(image_id)
            frozen.source_ids.append(source_id)
        frozen.annotator_ids += [row[12] for row in chunk]
        frozen.batch_ids += [row[13] for row in chunk]
        frozen.statuses += [row[14] for row in chunk]
    return frozen


def parent_splits(
    session: Session, parent: Manifest, roots: Mapping[int, int]
) -> tuple[dict[str, str], dict[str, Counter[str]]]:
    """Parent images' splits, and per current group key the parent splits of its members."""
    rows = session.connection().execute(
        select(models.ManifestRow.sha256, models.ManifestRow.split, Image.dup_group_id)
        .join(Image, Image.id == models.ManifestRow.image_id)
        .where(models.ManifestRow.content_hash == parent.content_hash)
    )
    by_image: dict[str, str] = {}
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    for sha, split, group in rows:
        by_image[sha] = split
        by_group[group_key(sha, _root(roots, group))][split] += 1
    return by_image, by_group


def balance(frozen: Frozen, spec: Mapping[str, float], stratify_by: str) -> list[StratumBalance]:
    """Per-stratum balance, one stratum per group: that of its first member by sha256."""
    if stratify_by == STRATIFY_LABEL:
        strata_of = ["+".join(names) for names in classes_per_row(frozen.rows)]
    else:
        strata_of = [
            NO_CLASS if (value := a.get(stratify_by)) is None else str(value)
            for a in frozen.attributes
        ]
    assignment: dict[str, str] = {}
    strata: dict[str, str] = {}
    for row, stratum in zip(frozen.rows, strata_of, strict=True):
        key = group_key(row["sha256"], row["dup_group_id"])
        if key not in assignment:
            assignment[key] = row["split"]
            strata[key] = stratum
    return stratum_balance(assignment, strata, spec)


def scope_counts(
    session: Session, query: Mapping[str, str], batch_ids: Sequence[int] | None, rows: int
) -> dict[str, Any]:
    """How many images in scope were left out, and why."""
    by_status: dict[str, int] = {
        status: int(n)
        for status, n in session.execute(
            _scoped(select(Image.status, func.count()).group_by(Image.status), query, batch_ids)
        )
    }
    reasons = session.execute(
        _scoped(
            select(Image.quarantine_reason, func.count())
            .where(Image.status == QUARANTINED)
            .group_by(Image.quarantine_reason)
            .order_by(func.count().desc(), Image.quarantine_reason)
            .limit(20),
            query,
            batch_ids,
        )
    )
    ok = int(by_status.get(OK, 0))
    return {
        "images_in_scope": int(sum(by_status.values())),
        "quarantined": int(by_status.get(QUARANTINED, 0)),
        "quarantine_reasons": {reason or "(no reason)": int(n) for reason, n in reasons},
        "no_accepted_label": ok - rows,
    }
