"""Pairs from model embeddings: the scored model whose embeddings semantic dedup uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataops.dedup.errors import NoEmbeddings
from dataops.dedup.index import IndexMismatchError, Pairs
from dataops.dedup.models import SEMANTIC, DupEdge
from dataops.dedup.state import Catalog

if TYPE_CHECKING:
    from dataops.scoring.embeddings import EmbeddingStore
    from dataops.scoring.models import ModelVersion


def embedding_source(session: Session) -> tuple[ModelVersion, EmbeddingStore]:
    """The current model version with embeddings and where scoring keeps them."""
    from dataops.scoring.embeddings import EmbeddingStore
    from dataops.scoring.models import ModelVersion

    version = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.is_current.is_(True), ModelVersion.has_embedding.is_(True))
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )
    if version is None:
        raise NoEmbeddings(
            "semantic dedup needs embeddings: register a model with an embedding output and "
            "run `dataops score` first"
        )
    store = EmbeddingStore.of(version)
    if not store.index_path.exists():
        raise NoEmbeddings(
            f"model {version.name}:{version.version} has no embeddings yet: run "
            f"`dataops score --model {version.name}:{version.version}` first"
        )
    return version, store


def semantic_pairs(session: Session, cat: Catalog, threshold: float) -> Pairs:
    """Pairs of ok images whose embeddings have cosine similarity >= threshold."""
    version, store = embedding_source(session)
    try:
        index = store.index()
    except IndexMismatchError as exc:
        raise NoEmbeddings(
            f"the embeddings of {version.name}:{version.version} are unreadable ({exc}); "
            f"run `dataops score --model {version.name}:{version.version}` again"
        ) from exc
    pairs = index.range_pairs(threshold)
    keep = np.isin(pairs.i, cat.ids) & np.isin(pairs.j, cat.ids)
    return Pairs(pairs.i[keep], pairs.j[keep], pairs.dist[keep])


def stored_semantic_pairs(session: Session, cat: Catalog) -> Pairs:
    rows = session.execute(
        select(DupEdge.image_a_id, DupEdge.image_b_id, DupEdge.distance).where(
            DupEdge.method == SEMANTIC
        )
    ).all()
    if not rows:
        return Pairs.empty(np.float32)
    arr = np.array(rows, dtype=np.float64)
    i, j = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    keep = np.isin(i, cat.ids) & np.isin(j, cat.ids)
    return Pairs(i[keep], j[keep], (1.0 - arr[keep, 2]).astype(np.float32))
