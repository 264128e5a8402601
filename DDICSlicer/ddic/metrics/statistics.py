"""Comparing methods on per-image metric values: summaries, Welch / paired tests, effect sizes, Holm correction.

Why these tests: the paper compares methods with a two-sided Welch (unequal-variance) t-test, which assumes
independent samples. Every method is run on the *same* test images, so the paired tests (paired t, Wilcoxon
signed-rank) are the appropriate ones (sam-metrics.md §6.3); both are reported so the paper's numbers can be
reproduced and the right ones read. Several methods compared pairwise make several tests: p-values are
Holm-adjusted within each family (one metric, one test, all method pairs).

Conventions (one source of truth for the evaluation report):

- Differences and effect sizes are *a − b* (first method minus second).
- Non-finite values (a PSNR of +∞ for identical images, a NaN where a metric was undefined) cannot enter a
  t-test: Welch drops them per method; the paired tests drop every image where either value is non-finite.
  The counts used are in each result (``n_a``, ``n_b``) and :class:`Summary` counts the dropped ones.
- Effect sizes: Cohen's d with the pooled SD, √(((n₁−1)s₁² + (n₂−1)s₂²)/(n₁+n₂−2)), and Hedges' g = J·d with
  the exact small-sample factor J = Γ(ν/2) / (√(ν/2) Γ((ν−1)/2)), ν = n₁+n₂−2, alongside Welch; d_z = mean of
  the differences / their SD (ddof = 1) alongside the paired t; the matched-pairs rank-biserial correlation
  r = (W⁺ − W⁻)/(W⁺ + W⁻) alongside Wilcoxon (zero differences dropped, as the test does).
- SDs are sample SDs (ddof = 1); "mean ± SD" is written with :func:`format_mean_sd`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..errors import DDICInputError

TESTS = ("welch", "paired_t", "wilcoxon")
TEST_NAMES = {"welch": "Welch's unequal-variance t-test (two-sided)", "paired_t": "paired t-test (two-sided)",
              "wilcoxon": "Wilcoxon signed-rank test (two-sided)"}


# --------------------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Mean, SD (ddof = 1), median, range of the finite values; ``n_nonfinite`` counts the others
    (``n_posinf`` of them +∞, e.g. PSNR of identical images)."""

    n: int
    mean: float
    sd: float
    median: float
    min: float
    max: float
    n_nonfinite: int = 0
    n_posinf: int = 0

    def to_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "median": self.median, "min": self.min,
                "max": self.max, "n_nonfinite": self.n_nonfinite, "n_posinf": self.n_posinf}

    def format(self, digits: int = 2) -> str:
        return format_mean_sd(self, digits)


def _floats(values, name: str = "values") -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"The {name} must be a list of numbers: {exc}") from exc


def summarize(values) -> Summary:
    """:class:`Summary` of a list of per-image values (non-finite ones counted, not used)."""
    v = _floats(values)
    finite = v[np.isfinite(v)]
    n = int(finite.size)
    nan = math.nan
    return Summary(
        n=n, mean=float(finite.mean()) if n else nan, sd=float(finite.std(ddof=1)) if n > 1 else nan,
        median=float(np.median(finite)) if n else nan, min=float(finite.min()) if n else nan,
        max=float(finite.max()) if n else nan, n_nonfinite=int(v.size - n), n_posinf=int(np.sum(v == np.inf)),
    )


def format_mean_sd(values_or_summary, digits: int = 2) -> str:
    """``"mean ± SD"`` with ``digits`` decimals; ``"n/a"`` without finite values; ``"mean (n = 1)"`` for one
    value; a note like ``"[+2 inf]"`` when +∞ values were left out."""
    s = values_or_summary if isinstance(values_or_summary, Summary) else summarize(values_or_summary)
    if s.n == 0:
        text = "n/a"
    elif s.n == 1:
        text = f"{s.mean:.{digits}f} (n = 1)"
    else:
        text = f"{s.mean:.{digits}f} ± {s.sd:.{digits}f}"
    if s.n_posinf:
        text += f" [+{s.n_posinf} inf]"
    other = s.n_nonfinite - s.n_posinf
    if other:
        text += f" [{other} undefined]"
    return text


# --------------------------------------------------------------------------------------------------------------
# Effect sizes
# --------------------------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float:
    if den == 0.0:
        return math.nan if num == 0.0 else math.copysign(math.inf, num)
    return num / den


def cohens_d(a, b) -> float:
    """(mean a − mean b) / pooled SD (module docstring)."""
    a, b = _finite(a), _finite(b)
    _need(a, b, 2)
    n1, n2 = a.size, b.size
    pooled = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    return _ratio(float(a.mean() - b.mean()), pooled)


def hedges_correction(df: float) -> float:
    """The exact small-sample factor J(ν) = Γ(ν/2) / (√(ν/2) Γ((ν−1)/2)) of Hedges' g."""
    from scipy.special import gammaln

    if df <= 1:
        return math.nan
    return math.exp(gammaln(df / 2.0) - gammaln((df - 1.0) / 2.0)) / math.sqrt(df / 2.0)


def hedges_g(a, b) -> float:
    """Cohen's d times J(n₁ + n₂ − 2)."""
    a, b = _finite(a), _finite(b)
    return cohens_d(a, b) * hedges_correction(a.size + b.size - 2)


def cohens_dz(a, b) -> float:
    """Paired effect size: mean(a − b) / SD(a − b) (ddof = 1), over pairs where both are finite."""
    diff = _paired_diff(a, b)
    if diff.size < 2:
        raise DDICInputError(f"d_z needs at least 2 complete pairs, got {diff.size}.")
    return _ratio(float(diff.mean()), float(diff.std(ddof=1)))


def rank_biserial(a, b) -> float:
    """Matched-pairs rank-biserial correlation (W⁺ − W⁻)/(W⁺ + W⁻) of the non-zero differences a − b."""
    from scipy.stats import rankdata

    diff = _paired_diff(a, b)
    diff = diff[diff != 0]
    if diff.size == 0:
        return math.nan
    ranks = rankdata(np.abs(diff))
    return float((ranks[diff > 0].sum() - ranks[diff < 0].sum()) / ranks.sum())


# --------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------


def _finite(values) -> np.ndarray:
    v = _floats(values)
    return v[np.isfinite(v)]


def _need(a: np.ndarray, b: np.ndarray, minimum: int) -> None:
    if a.size < minimum or b.size < minimum:
        raise DDICInputError(f"The test needs at least {minimum} finite values per method, got {a.size} and {b.size}.")


def complete_pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    """The images where both methods' values are finite (paired tests), as two aligned arrays."""
    a, b = _floats(a, "first values"), _floats(b, "second values")
    if a.size != b.size:
        raise DDICInputError(
            f"Paired tests need one value per image for both methods; got {a.size} and {b.size} values."
        )
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _paired_diff(a, b) -> np.ndarray:
    a, b = complete_pairs(a, b)
    return a - b


@dataclass(frozen=True)
class PairTest:
    """One two-sided test of method a against method b."""

    test: str  # one of TESTS
    statistic: float
    pvalue: float
    n_a: int
    n_b: int
    mean_difference: float  # a − b (paired: mean of the differences)
    df: float | None = None
    ci_low: float | None = None  # 95 % CI of the mean difference (t-tests)
    ci_high: float | None = None
    effect_sizes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"test": self.test, "description": TEST_NAMES[self.test], "statistic": self.statistic,
                "pvalue": self.pvalue, "df": self.df, "n_a": self.n_a, "n_b": self.n_b,
                "mean_difference": self.mean_difference, "ci95_mean_difference": [self.ci_low, self.ci_high],
                "effect_sizes": dict(self.effect_sizes)}


def welch_test(a, b) -> PairTest:
    """Welch's unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``), non-finite values dropped."""
    from scipy.stats import ttest_ind

    a, b = _finite(a), _finite(b)
    _need(a, b, 2)
    res = ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return PairTest(test="welch", statistic=float(res.statistic), pvalue=float(res.pvalue), n_a=a.size,
                      n_b=b.size, mean_difference=float(a.mean() - b.mean()), df=float(res.df),
                      ci_low=float(ci.low), ci_high=float(ci.high),
                      effect_sizes={"cohens_d": cohens_d(a, b), "hedges_g": hedges_g(a, b)})


def paired_t_test(a, b) -> PairTest:
    """Paired t-test (``scipy.stats.ttest_rel``) on the images where both values are finite."""
    from scipy.stats import ttest_rel

    a, b = complete_pairs(a, b)
    diff = a - b
    if diff.size < 2:
        raise DDICInputError(f"The paired t-test needs at least 2 complete pairs, got {diff.size}.")
    res = ttest_rel(a, b)
    ci = res.confidence_interval(0.95)
    return PairTest(test="paired_t", statistic=float(res.statistic), pvalue=float(res.pvalue), n_a=diff.size,
                      n_b=diff.size, mean_difference=float(diff.mean()), df=float(res.df),
                      ci_low=float(ci.low), ci_high=float(ci.high), effect_sizes={"d_z": cohens_dz(a, b)})


def wilcoxon_test(a, b) -> PairTest:
    """Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped); p = NaN if all are 0."""
    import warnings

    from scipy.stats import wilcoxon

    diff = _paired_diff(a, b)
    if diff.size < 1:
        raise DDICInputError("The Wilcoxon test needs at least 1 complete pair.")
    if np.all(diff == 0):
        statistic, pvalue = math.nan, math.nan
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy's note on small samples / exact distribution
            res = wilcoxon(diff)
        statistic, pvalue = float(res.statistic), float(res.pvalue)
    return PairTest(test="wilcoxon", statistic=statistic, pvalue=pvalue, n_a=diff.size, n_b=diff.size,
                      mean_difference=float(diff.mean()), effect_sizes={"rank_biserial": rank_biserial(a, b)})


TEST_FUNCTIONS = {"welch": welch_test, "paired_t": paired_t_test, "wilcoxon": wilcoxon_test}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order. NaN p-values stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


# --------------------------------------------------------------------------------------------------------------
# Several methods
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseComparison:
    """All requested tests of method ``a`` against method ``b`` on one metric, with Holm-adjusted p-values."""

    a: str
    b: str
    results: dict  # test name → PairTest
    holm_pvalues: dict  # test name → adjusted p (within the family of all pairs for that test)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "difference": "a - b",
                "tests": {name: {**r.to_dict(), "pvalue_holm": self.holm_pvalues.get(name)}
                          for name, r in self.results.items()}}


def compare_methods(values: Mapping[str, Sequence[float]], tests: Sequence[str] = TESTS) -> list[PairwiseComparison]:
    """Every pair of methods (in the mapping's order: (m1, m2), (m1, m3), (m2, m3), …) with each test of
    ``tests``; values are per image, aligned across methods (the same images in the same order)."""
    names = list(values)
    if len(names) < 2:
        raise DDICInputError(f"Comparing methods needs at least two, got {names}.")
    unknown = [t for t in tests if t not in TEST_FUNCTIONS]
    if unknown:
        raise DDICInputError(f"Unknown test(s) {unknown}; choose from {list(TESTS)}.")
    pairs = list(combinations(names, 2))
    raw = [{t: TEST_FUNCTIONS[t](values[a], values[b]) for t in tests} for a, b in pairs]
    adjusted = {t: holm([r[t].pvalue for r in raw]) for t in tests}
    return [PairwiseComparison(a=a, b=b, results=r, holm_pvalues={t: adjusted[t][i] for t in tests})
            for i, ((a, b), r) in enumerate(zip(pairs, raw))]
