"""Fleiss' kappa and Gwet's AC1 for any number of raters per item, with standard errors.

Both follow Gwet (2014), "Handbook of Inter-Rater Reliability", 4th ed., and the irrCAC
package: observed agreement is the mean over items rated at least twice, the category
prevalences are the mean over all rated items of each item's label shares, so every rated
item counts (no item is dropped for having fewer raters than the others). The variance is
Gwet's linearisation (Gwet 2008, British Journal of Mathematical and Statistical Psychology
61, 29-48) with no finite-population correction; intervals use Student's t with n - 1
degrees of freedom and are capped at 1, as irrCAC reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Coefficient = Literal["fleiss_kappa", "gwet_ac1"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ChanceCorrected:
    """A chance-corrected coefficient with the items it used and its interval."""

    value: float | None
    n_items: int
    n_items_paired: int
    percent_agreement: float | None
    chance_agreement: float | None
    standard_error: float | None
    ci: tuple[float, float] | None
    confidence: float


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def chance_corrected(
    counts: npt.ArrayLike, coefficient: Coefficient, *, confidence: float = 0.95
) -> ChanceCorrected:
    """The coefficient from an items x categories table of rating counts.

    Rows with no rating are ignored. The number of categories (for AC1's chance agreement)
    is the number of columns, so pass every possible category, used or not.
    """
    from scipy import stats

    if coefficient not in ("fleiss_kappa", "gwet_ac1"):
        raise ValueError(f"unknown coefficient {coefficient!r}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    c = np.asarray(counts, dtype=np.float64)
    r = c.sum(axis=1)
    c, r = c[r > 0], r[r > 0]
    n, q = len(r), c.shape[1]
    paired = r >= 2
    n2 = int(paired.sum())
    if n2 == 0 or q < 2:
        return ChanceCorrected(None, n, n2, None, None, None, None, confidence)
    pair_count = np.where(paired, r * (r - 1), 1.0)
    pa_item = np.where(paired, (c * (c - 1)).sum(axis=1) / pair_count, 0.0)
    pa = float(pa_item[paired].mean())
    pi = (c / r[:, None]).mean(axis=0)
    if coefficient == "fleiss_kappa":
        pe = float((pi**2).sum())
        pe_item = (c @ pi) / r
    else:
        pe = float((pi * (1 - pi)).sum() / (q - 1))
        pe_item = (c @ (1 - pi)) / r / (q - 1)
    if pe >= 1:
        return ChanceCorrected(None, n, n2, pa, pe, None, None, confidence)
    value = (pa - pe) / (1 - pe)
    se: float | None = None
    ci: tuple[float, float] | None = None
    if n >= 2:
        item = (n / n2) * (pa_item - pe * paired) / (1 - pe)
        item -= 2 * (1 - value) * (pe_item - pe) / (1 - pe)
        se = math.sqrt(float(((item - value) ** 2).sum()) / (n * (n - 1)))
        t = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1))
        ci = (value - t * se, min(1.0, value + t * se))
    return ChanceCorrected(_finite(value), n, n2, pa, pe, se, ci, confidence)
