"""Ratings in long form (item, annotator, label), encoded once for every agreement metric.

Not every annotator has to rate every item. Items, annotators and categories are kept in a
canonical order (sorted when the values are comparable, first seen otherwise), so every
result is independent of the input order.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Level = Literal["nominal", "ordinal", "interval"]
KappaWeights = Literal["linear", "quadratic"] | None

REQUIRED_COLUMNS = ("item", "annotator", "label")
IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


def canonical_order(values: Iterable[Hashable]) -> tuple[Hashable, ...]:
    """Sorted unique values when they compare, first-seen order otherwise."""
    unique = list(dict.fromkeys(values))
    try:
        return tuple(sorted(unique))  # type: ignore[type-var]
    except TypeError:
        return tuple(unique)


def as_float(value: float | np.floating[Any]) -> float | None:
    """JSON-friendly float: undefined statistics become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def group_pairs(left_keys: npt.ArrayLike, right_keys: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Every (i, j) with ``left_keys[i] == right_keys[j]``, without a Python loop.

    Memory is proportional to the number of pairs, not to len(left) * len(right).
    """
    left = np.asarray(left_keys)
    right = np.asarray(right_keys)
    lo = np.argsort(left, kind="stable")
    ro = np.argsort(right, kind="stable")
    sorted_right = right[ro]
    start = np.searchsorted(sorted_right, left[lo], side="left")
    count = np.searchsorted(sorted_right, left[lo], side="right") - start
    total = int(count.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return np.repeat(lo, count), ro[np.repeat(start, count) + offsets]


@dataclass(frozen=True, eq=False)
class Ratings:
    """Long-form ratings encoded as integer indices into items, annotators and categories."""

    items: tuple[Hashable, ...]
    annotators: tuple[Hashable, ...]
    categories: tuple[Hashable, ...]
    item_idx: IntArray
    annotator_idx: IntArray
    label_idx: IntArray

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[Hashable, Hashable, Hashable]],
        *,
        categories: Sequence[Hashable] | None = None,
    ) -> Ratings:
        """Build from (item, annotator, label) tuples.

        ``categories`` fixes the order of the labels (needed for ordinal data whose natural
        sort is wrong, e.g. "low" < "mid" < "high"); labels outside it are an error.
        """
        rows = list(records)
        items = canonical_order(r[0] for r in rows)
        annotators = canonical_order(r[1] for r in rows)
        if categories is None:
            cats = canonical_order(r[2] for r in rows)
        else:
            cats = tuple(categories)
            if len(set(cats)) != len(cats):
                raise ValueError("categories contain duplicates")
        item_pos = {v: i for i, v in enumerate(items)}
        ann_pos = {v: i for i, v in enumerate(annotators)}
        cat_pos = {v: i for i, v in enumerate(cats)}
        unknown = {r[2] for r in rows} - cat_pos.keys()
        if unknown:
            raise ValueError(f"labels not in categories: {sorted(map(repr, unknown))}")
        item_idx = np.fromiter((item_pos[r[0]] for r in rows), np.intp, len(rows))
        annotator_idx = np.fromiter((ann_pos[r[1]] for r in rows), np.intp, len(rows))
        label_idx = np.fromiter((cat_pos[r[2]] for r in rows), np.intp, len(rows))
        key = item_idx * max(len(annotators), 1) + annotator_idx
        uniq, counts = np.unique(key, return_counts=True)
        if (counts > 1).any():
            first = int(uniq[np.argmax(counts > 1)])
            item, ann = items[first // len(annotators)], annotators[first % len(annotators)]
            raise ValueError(f"annotator {ann!r} rated item {item!r} more than once")
        return cls(items, annotators, cats, item_idx, annotator_idx, label_idx)

    def __len__(self) -> int:
        return len(self.label_idx)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @cached_property
    def value_counts(self) -> IntArray:
        """items x categories: how many annotators gave each label to each item."""
        flat = self.item_idx * self.n_categories + self.label_idx
        counts = np.bincount(flat, minlength=self.n_items * self.n_categories)
        return counts.reshape(self.n_items, self.n_categories).astype(np.intp)

    @cached_property
    def matrix(self) -> IntArray:
        """annotators x items label indices, -1 where the annotator did not rate the item."""
        out = np.full((self.n_annotators, self.n_items), -1, dtype=np.intp)
        out[self.annotator_idx, self.item_idx] = self.label_idx
        return out

    def annotator_position(self, annotator: Hashable) -> int:
        try:
            return self.annotators.index(annotator)
        except ValueError:
            raise ValueError(f"unknown annotator {annotator!r}") from None


def read_ratings_csv(
    path: str | Path,
    *,
    numeric: bool = False,
    categories: Sequence[Hashable] | None = None,
) -> Ratings:
    """Read ratings from a CSV with columns item, annotator, label (extra columns ignored).

    Errors name the line of the file (the header is line 1) and the column, so a bad export
    can be fixed by hand. ``numeric`` parses labels as numbers (interval-level data).
    """
    path = Path(path)
    records: list[tuple[Hashable, Hashable, Hashable]] = []
    seen: dict[tuple[str, str], int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, restkey="\0extra")
        header = [name.strip() for name in (reader.fieldnames or [])]
        if not header:
            raise ValueError(f"{path}: empty file; expected a header item,annotator,label")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}, line 1: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            if row.get("\0extra"):
                raise ValueError(f"{path}, line {line}: more fields than the header has")
            values: dict[str, str] = {}
            for column in REQUIRED_COLUMNS:
                value = (row.get(column) or "").strip()
                if not value:
                    raise ValueError(f"{path}, line {line}, column {column!r}: empty value")
                values[column] = value
            label: Hashable = values["label"]
            if numeric:
                try:
                    label = float(values["label"])
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line}, column 'label': {values['label']!r} is not a number"
                    ) from None
                if not math.isfinite(label):
                    raise ValueError(f"{path}, line {line}, column 'label': not a finite number")
            key = (values["item"], values["annotator"])
            if key in seen:
                raise ValueError(
                    f"{path}, line {line}, column 'annotator': {key[1]!r} already rated item "
                    f"{key[0]!r} on line {seen[key]}"
                )
            seen[key] = line
            records.append((values["item"], values["annotator"], label))
    if not records:
        raise ValueError(f"{path}: no ratings")
    return Ratings.from_records(records, categories=categories)
