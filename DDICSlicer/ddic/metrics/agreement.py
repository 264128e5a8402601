"""Proportions with confidence intervals and agreement between raters, for the reader study.

Why Wilson: the reader study reports percentages of a few dozen to a few hundred ratings, some near 0 % or
100 %; the Wald interval p ± z√(p(1−p)/n) collapses to a point there and undercovers. Wilson's score interval
(Wilson 1927) is the set of p the score test does not reject, stays inside [0, 1] and covers well at small n.

Why Fleiss' kappa: with several readers each rating every image yes/no, Fleiss' κ (Fleiss 1971) measures their
agreement beyond chance for any number of raters (Cohen's κ is for two).

- Wilson: centre (p̂ + z²/2n)/(1 + z²/n), half-width z/(1 + z²/n)·√(p̂(1−p̂)/n + z²/4n²), z the two-sided normal
  quantile of ``confidence``; n = 0 gives (NaN, NaN).
- Fleiss: counts n_ij (subject i, category j), every subject rated by the same number n ≥ 2 of raters;
  P_i = (Σ_j n_ij² − n) / (n(n − 1)), P̄ = mean P_i, p_j = Σ_i n_ij / (N n), P̄_e = Σ_j p_j²,
  κ = (P̄ − P̄_e) / (1 − P̄_e). Undefined (NaN) when P̄_e = 1 (every rating in one category: agreement is
  perfect but chance agreement is too).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DDICInputError

CONFIDENCE = 0.95


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion successes / n (module docstring)."""
    from scipy.stats import norm

    successes, n = int(successes), int(n)
    if n < 0 or successes < 0 or successes > n:
        raise DDICInputError(f"A proportion needs 0 ≤ successes ≤ n, got {successes} of {n}.")
    if not 0.0 < confidence < 1.0:
        raise DDICInputError(f"confidence must lie strictly between 0 and 1, not {confidence}.")
    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not 1e-16 off by rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def fleiss_kappa(counts) -> float:
    """Fleiss' κ from an (N subjects × k categories) table of rating counts (module docstring)."""
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 2:
        raise DDICInputError(f"Fleiss' kappa needs a subjects × categories table (≥ 2 categories), got {table.shape}.")
    if np.any(table < 0) or np.any(table != np.round(table)):
        raise DDICInputError("Fleiss' kappa needs whole, non-negative rating counts.")
    raters = table.sum(axis=1)
    n = raters[0]
    if np.any(raters != n):
        raise DDICInputError("Fleiss' kappa needs every subject rated by the same number of raters.")
    if n < 2:
        raise DDICInputError(f"Agreement needs at least 2 raters per subject, got {int(n)}.")
    per_subject = (np.sum(table * table, axis=1) - n) / (n * (n - 1))
    p_bar = float(per_subject.mean())
    p_j = table.sum(axis=0) / table.sum()
    p_e = float(np.sum(p_j * p_j))
    if math.isclose(p_e, 1.0):
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def binary_counts(ratings) -> np.ndarray:
    """(subjects × raters) yes/no ratings (bool or 0/1) → (subjects × 2) counts [no, yes] for :func:`fleiss_kappa`."""
    r = np.asarray(ratings)
    if r.ndim != 2:
        raise DDICInputError(f"Ratings must be a subjects × raters table, got shape {r.shape}.")
    yes = (r != 0).sum(axis=1)
    return np.column_stack([r.shape[1] - yes, yes])
