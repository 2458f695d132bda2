"""The named selection strategies: what each one runs and what it needs.

Everything that depends on a strategy's name reads it here: the CLI's help, the request
model's validation, the checks a selection makes before it writes anything, which stored
prediction column ranks the candidates, and the array entry point ``select``. A new strategy
is one ``register(Strategy(...))`` call with a function from ``Candidates`` to picks.

The CLI reads the names for its help at start-up, so the algorithms (numpy, scipy,
scikit-learn) are imported when a strategy runs, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

Rows = NDArray[np.int64]
"""Row indices into the candidates, as ``dataops.selection.strategies`` returns them."""


@dataclass(frozen=True)
class Candidates:
    """What a strategy may read about the candidate rows; row i of each array is candidate i.

    ``scores`` is a per-row ranking score the catalog already stores (an uncertainty column,
    or the probability of one class); strategies that rank by a score compute it from
    ``probs`` when it is missing. ``mode`` and ``labels`` restrict hard negatives to rows that
    should not be the class (``mode=None``: the caller already restricted them).
    """

    n: int
    seed: int = 0
    scores: NDArray[Any] | None = None
    probs: NDArray[Any] | None = None
    embeddings: NDArray[Any] | None = None
    labeled_embeddings: NDArray[Any] | None = None
    labels: NDArray[Any] | None = None
    class_index: int | None = None
    mode: str | None = None

    def take(self, rows: Rows) -> Candidates:
        def part(a: NDArray[Any] | None) -> NDArray[Any] | None:
            return None if a is None else np.asarray(a)[rows]

        return replace(
            self,
            n=len(rows),
            scores=part(self.scores),
            probs=part(self.probs),
            embeddings=part(self.embeddings),
            labels=part(self.labels),
        )


Run = Callable[[Candidates, int], Rows]
"""(candidates, k) -> up to k row indices into the candidates, in pick order."""


@dataclass(frozen=True)
class Strategy:
    """A named way to pick a batch.

    ``needs_model``: every candidate must have a prediction of the model version;
    ``needs_embeddings``: the model must return embeddings; ``spreads``: reads vectors (the
    model's embeddings, else the bits of each image's perceptual hash); ``needs_class``: the
    request names a class; ``needs_strata``: the request names an attribute to stratify by,
    and the batch records ``runs_as`` with that attribute. ``score`` is the stored
    prediction column that ranks the candidates (``class_probability``: of the named class);
    ``reads_probs``: the run also reads every candidate's class probabilities. ``purpose`` is
    the batch purpose a request without one gets (else active learning, or cold start
    without a model). ``flagged_labels``: the candidates are labeled images whose label the
    task's newest label-quality run flagged, scored by how suspect (1 - label quality).
    """

    name: str
    run: Run
    description: str
    needs_model: bool = False
    needs_embeddings: bool = False
    needs_class: bool = False
    needs_strata: bool = False
    spreads: bool = False
    reads_probs: bool = False
    score: str | None = None
    runs_as: str | None = None
    purpose: str | None = None
    flagged_labels: bool = False

    @property
    def without_model(self) -> bool:
        """Can pick a cold-start batch, before any model exists."""
        return not self.needs_model and not self.needs_strata


REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    REGISTRY[strategy.name] = strategy
    return strategy


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Strategy | None:
    return REGISTRY.get(name)


def describe() -> str:
    """One line per strategy, for help texts."""
    return "; ".join(f"{st.name}: {st.description}" for st in REGISTRY.values())


def _by_score(score: str) -> Run:
    """Top-k by an uncertainty score: the stored one, else computed from the probabilities."""

    def run(c: Candidates, k: int) -> Rows:
        from dataops.scoring import uncertainty
        from dataops.selection import strategies as s

        scores = c.scores
        if scores is None:
            assert c.probs is not None
            scores = getattr(uncertainty, score)(c.probs)
        return s.top_k(scores, k, c.seed)

    return run


def _most_suspect(c: Candidates, k: int) -> Rows:
    from dataops.selection import strategies as s

    if c.scores is None:
        raise ValueError(
            "label_issues ranks by label quality, which a batch request reads from the task's "
            "newest label-quality run; arrays carry no such score"
        )
    return s.top_k(c.scores, k, c.seed)


def _random(c: Candidates, k: int) -> Rows:
    from dataops.selection import strategies as s

    return s.random(c.n, k, c.seed)


def _kcenter(c: Candidates, k: int) -> Rows:
    from dataops.selection import strategies as s

    assert c.embeddings is not None
    return s.kcenter(c.embeddings, k, labeled_embeddings=c.labeled_embeddings, seed=c.seed)


def _cluster_margin(c: Candidates, k: int) -> Rows:
    from dataops.selection import strategies as s

    assert c.probs is not None
    assert c.embeddings is not None
    return s.cluster_margin(c.probs, c.embeddings, k, seed=c.seed)


def _hard_negative(c: Candidates, k: int) -> Rows:
    """Rows the model rates highest for the class, among rows that should not be it."""
    from dataops.scoring import uncertainty
    from dataops.selection import strategies as s

    if c.scores is not None:
        scores = c.scores
    else:
        assert c.probs is not None
        assert c.class_index is not None
        p = uncertainty.validate_probs(c.probs)
        if isinstance(c.class_index, bool) or not 0 <= c.class_index < p.shape[1]:
            raise ValueError(f"class_index must be in [0, {p.shape[1]}), got {c.class_index!r}")
        scores = p[:, c.class_index]
    rows: Rows = np.arange(c.n, dtype=np.int64)
    if c.mode is not None:
        assert c.class_index is not None
        rows = s.hard_negative_rows(c.n, c.class_index, c.mode, c.labels)
    return rows[s.top_k(scores[rows], k, c.seed)]


register(Strategy("random", _random, "uniformly at random (the baseline)"))
register(
    Strategy(
        "least_confidence",
        _by_score("least_confidence"),
        "the model's top class is least certain",
        needs_model=True,
        score="least_confidence",
    )
)
register(
    Strategy(
        "margin",
        _by_score("margin"),
        "the two best classes are closest",
        needs_model=True,
        score="margin",
    )
)
register(
    Strategy(
        "entropy",
        _by_score("entropy"),
        "the most spread-out predicted distribution",
        needs_model=True,
        score="entropy",
    )
)
register(
    Strategy(
        "kcenter",
        _kcenter,
        "k-center greedy: far from everything labeled or picked (embeddings, else pHash bits)",
        spreads=True,
    )
)
register(
    Strategy(
        "cluster_margin",
        _cluster_margin,
        "small margins, spread across embedding clusters",
        needs_model=True,
        needs_embeddings=True,
        spreads=True,
        reads_probs=True,
        score="margin",
    )
)
register(
    Strategy(
        "hard_negative",
        _hard_negative,
        "highest score for --class among images that are not that class",
        needs_model=True,
        needs_class=True,
        score="class_probability",
        purpose="hard_negative",
    )
)
register(
    Strategy(
        "stratified",
        _random,
        "random within each value of --stratify-by, in proportion to its size",
        needs_strata=True,
        runs_as="random",
    )
)


register(
    Strategy(
        "label_issues",
        _most_suspect,
        "labeled images whose label the newest label-quality run flagged, most suspect first "
        "(a relabel batch)",
        flagged_labels=True,
        purpose="relabel",
    )
)


def _row_count(strategy: str, n_items: int | None, **arrays: NDArray[Any] | None) -> int:
    counts = {name: len(a) for name, a in arrays.items() if a is not None}
    if n_items is not None:
        counts["n_items"] = n_items
    if not counts:
        raise ValueError(f"strategy {strategy!r} needs the pool size: pass n_items")
    if len(set(counts.values())) > 1:
        raise ValueError(f"inputs disagree on the number of rows: {counts}")
    return next(iter(counts.values()))


def _require(strategy: str, name: str, value: object, what: str) -> None:
    if value is None:
        raise ValueError(f"strategy {strategy!r} needs {name}: {what}")


def _check_inputs(strategy: Strategy, c: Candidates) -> None:
    if strategy.needs_model:
        _require(
            strategy.name,
            "probs",
            c.probs,
            "the model's class probabilities per row (score the images with the model first)",
        )
    if strategy.spreads:
        _require(
            strategy.name,
            "embeddings",
            c.embeddings,
            "the model's embedding output (a model whose forward returns (logits, embedding)); "
            "this model version produced none",
        )
    if strategy.needs_class:
        _require(
            strategy.name, "class_index", c.class_index, "the class to mine hard negatives for"
        )
        from dataops.selection.strategies import HARD_NEGATIVE_MODES

        _require(strategy.name, "mode", c.mode, f"one of {HARD_NEGATIVE_MODES}")


def select(
    strategy: str,
    k: int,
    *,
    probs: NDArray[Any] | None = None,
    embeddings: NDArray[Any] | None = None,
    labels: NDArray[Any] | None = None,
    strata: NDArray[Any] | None = None,
    class_index: int | None = None,
    mode: str | None = None,
    seed: int = 0,
    labeled_embeddings: NDArray[Any] | None = None,
    inner: str | None = None,
    n_items: int | None = None,
) -> Rows:
    """Pick k rows of a candidate pool held in arrays with a named strategy.

    Row i of every array describes the same candidate. ``stratified`` runs ``inner`` (another
    strategy name) within each value of ``strata``; ``n_items`` gives the pool size when
    ``random`` gets no arrays. Missing inputs raise ``ValueError`` naming what is needed.
    """
    from dataops.selection import strategies as s

    chosen = get(strategy)
    if chosen is None:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(names())}")
    k = s.check_k(k)
    n = _row_count(
        strategy, n_items, probs=probs, embeddings=embeddings, labels=labels, strata=strata
    )
    base = chosen
    if chosen.needs_strata:
        _require(strategy, "strata", strata, "the slice value (site, device, …) of each row")
        found = get(inner) if inner is not None else None
        if found is None or found.needs_strata:
            options = ", ".join(st.name for st in REGISTRY.values() if not st.needs_strata)
            raise ValueError(f"{strategy} needs inner set to one of {options}; got {inner!r}")
        base = found
    c = Candidates(
        n=n,
        seed=seed,
        probs=probs,
        embeddings=embeddings,
        labeled_embeddings=labeled_embeddings,
        labels=labels,
        class_index=class_index,
        mode=mode,
    )
    _check_inputs(base, c)
    if not chosen.needs_strata:
        return base.run(c, k)
    assert strata is not None
    eligible: Rows = np.arange(n, dtype=np.int64)
    if base.needs_class:
        assert class_index is not None
        assert mode is not None
        eligible = s.hard_negative_rows(n, class_index, mode, labels)
    # Hard negatives are restricted once, above: the inner run sees only eligible rows.
    within = replace(c.take(eligible), mode=None) if base.needs_class else c.take(eligible)

    def run_inner(local: Rows, share: int) -> Rows:
        return eligible[local[base.run(within.take(local), share)]]

    return s.stratified(np.asarray(strata)[eligible], k, run_inner)
