"""From per-image rows to the summary: mean ± SD per method and metric, pairwise tests, the CNR table.

Conventions (the statistics themselves are :mod:`ddic.metrics.statistics`'):

- Every metric of :data:`METRICS` is summarised per method over the frames (non-finite values counted apart).
  Metrics measured on the source US as well (CNR, gCNR, SSIM, Dice, width errors) get a ``us`` row: the
  baseline every translation is compared with — the paper's CNR table, US 1.37 ± 1.24 → DDIC 2.61 ± 1.75.
- Pairwise tests between every two groups with at least two finite values (US included where it exists):
  Welch (as the paper), paired t and Wilcoxon (the methods see the same frames), Holm-adjusted within each
  (metric, test) family. Differences are *a − b* in the listed order (US, CycleGAN, DDIB, DDIC, Paired MRI —
  the phantom's own MRI, present with paired truth: the ceiling of each metric).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError
from ..metrics import compare_methods, format_mean_sd, summarize
from .methods import PAIRED_MRI, display_name, display_order

US = "us"


@dataclass(frozen=True)
class Metric:
    key: str  # per_image.csv column on the method's output
    label: str
    better: str | None  # "higher", "lower" or None (signed errors)
    us_key: str | None = None  # the same number on the source US, if it exists
    paired: bool = False  # needs --paired truth
    plot: bool = True
    reference: bool = True  # the paired-MRI reference has this number too


METRICS = (
    Metric("mi_ksg", "MI with the US (KSG, nats)", "higher"),
    Metric("mi_hist", "MI with the US (histogram, nats)", "higher", plot=False),
    Metric("psnr", "PSNR vs the US (dB)", "higher"),
    Metric("cnr", "CNR (distal ventricle vs parenchyma)", "higher", us_key="cnr_us"),
    Metric("gcnr", "gCNR", "higher", us_key="gcnr_us"),
    Metric("ssim", "SSIM vs the paired MRI", "higher", us_key="ssim_us", paired=True),
    Metric("dice", "Ventricle Dice", "higher", us_key="dice_us", paired=True),
    Metric("width_abs_error_mm", "|Atrium width error| (mm)", "lower", us_key="width_abs_error_us_mm", paired=True),
    Metric("width_error_mm", "Atrium width error (mm, measured − truth)", None, us_key="width_error_us_mm",
           paired=True, plot=False),
    Metric("us_round_trip_rmse", "US round trip RMSE (trust number)", "lower", plot=False, reference=False),
    Metric("seconds", "Seconds per frame", "lower", plot=False, reference=False),
)


def active_metrics(paired: bool) -> list[Metric]:
    return [m for m in METRICS if paired or not m.paired]


def _value(row: dict, key: str) -> float:
    value = row.get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def grouped_values(rows: list[dict], methods, frames, metric: Metric) -> dict[str, list[float]]:
    """{group: values aligned on ``frames``}: ``us`` first (when the metric has a US twin), then the methods."""
    by_key = {(r["method"], r["frame"]): r for r in rows}
    groups: dict[str, list[float]] = {}
    first = methods[0] if methods else None
    if metric.us_key is not None and first is not None:
        groups[US] = [_value(by_key.get((first, f), {}), metric.us_key) for f in frames]
    for method in display_order(methods):
        if method == PAIRED_MRI and not metric.reference:
            continue
        groups[method] = [_value(by_key.get((method, f), {}), metric.key) for f in frames]
    return groups


def summarize_metrics(rows: list[dict], methods, frames, paired: bool) -> list[dict]:
    """One record per metric: its per-group summaries and pairwise tests (module docstring)."""
    records = []
    for metric in active_metrics(paired):
        groups = grouped_values(rows, methods, frames, metric)
        summaries = {g: summarize(v) for g, v in groups.items()}
        testable = {g: v for g, v in groups.items() if summaries[g].n >= 2}
        pairwise, note = [], ""
        if len(testable) >= 2 and metric.key != "seconds":
            try:
                with warnings.catch_warnings():  # nearly constant groups (e.g. gCNR = 1 everywhere): p is
                    warnings.simplefilter("ignore", RuntimeWarning)  # reported as computed, without a warning
                    pairwise = compare_methods(testable)
            except DDICInputError as exc:
                note = f"no tests: {exc}"
        elif metric.key != "seconds":
            note = "no tests: fewer than two groups with at least two finite values"
        records.append({"metric": metric, "groups": groups, "summaries": summaries, "pairwise": pairwise,
                        "note": note})
    return records


SUMMARY_COLUMNS = ("metric", "label", "group", "n", "mean", "sd", "median", "min", "max", "n_undefined",
                   "n_inf", "mean_sd")
PAIRWISE_COLUMNS = ("metric", "a", "b", "test", "n", "mean_difference", "statistic", "pvalue", "pvalue_holm",
                    "effect_size", "effect_value")


def summary_rows(records: list[dict]) -> list[dict]:
    out = []
    for rec in records:
        metric = rec["metric"]
        for group, s in rec["summaries"].items():
            out.append({"metric": metric.key, "label": metric.label, "group": group, "n": s.n, "mean": s.mean,
                        "sd": s.sd, "median": s.median, "min": s.min, "max": s.max,
                        "n_undefined": s.n_nonfinite - s.n_posinf, "n_inf": s.n_posinf,
                        "mean_sd": format_mean_sd(s, 3)})
    return out


def pairwise_rows(records: list[dict]) -> list[dict]:
    out = []
    for rec in records:
        for comparison in rec["pairwise"]:
            for test, result in comparison.results.items():
                name, value = next(iter(result.effect_sizes.items()), ("", math.nan))
                out.append({"metric": rec["metric"].key, "a": comparison.a, "b": comparison.b, "test": test,
                            "n": min(result.n_a, result.n_b), "mean_difference": result.mean_difference,
                            "statistic": result.statistic, "pvalue": result.pvalue,
                            "pvalue_holm": comparison.holm_pvalues.get(test), "effect_size": name,
                            "effect_value": value})
    return out


def _p_against(rec: dict, group: str, test: str) -> float:
    for comparison in rec["pairwise"]:
        if {comparison.a, comparison.b} == {US, group} and test in comparison.results:
            return float(comparison.results[test].pvalue)
    return math.nan


CNR_COLUMNS = ("group", "name", "n", "cnr", "gcnr", "cnr_mean", "cnr_sd", "gcnr_mean", "gcnr_sd", "p_welch",
               "p_paired_t", "p_wilcoxon", "gcnr_p_paired_t")


def cnr_table(records: list[dict]) -> list[dict]:
    """The paper's CNR comparison: the US, then each method — CNR and gCNR mean ± SD and p against the US
    (unadjusted: each method is compared with the US once; the adjusted ones are in pairwise.csv)."""
    by_key = {rec["metric"].key: rec for rec in records}
    cnr, gcnr = by_key.get("cnr"), by_key.get("gcnr")
    if cnr is None or US not in cnr["summaries"] or cnr["summaries"][US].n == 0:
        return []
    table = []
    for group, s in cnr["summaries"].items():
        g = gcnr["summaries"].get(group) if gcnr else None
        table.append({
            "group": group, "name": display_name(group), "n": s.n, "cnr": format_mean_sd(s, 2),
            "gcnr": format_mean_sd(g, 2) if g is not None else "n/a", "cnr_mean": s.mean, "cnr_sd": s.sd,
            "gcnr_mean": g.mean if g is not None else math.nan, "gcnr_sd": g.sd if g is not None else math.nan,
            "p_welch": math.nan if group == US else _p_against(cnr, group, "welch"),
            "p_paired_t": math.nan if group == US else _p_against(cnr, group, "paired_t"),
            "p_wilcoxon": math.nan if group == US else _p_against(cnr, group, "wilcoxon"),
            "gcnr_p_paired_t": math.nan if group == US or gcnr is None else _p_against(gcnr, group, "paired_t"),
        })
    return table


def records_json(records: list[dict]) -> dict:
    """The summary records as JSON-ready dicts (values per group kept, so the plots can be redrawn)."""
    out = {}
    for rec in records:
        metric = rec["metric"]
        out[metric.key] = {
            "label": metric.label, "better": metric.better, "us_column": metric.us_key,
            "summary": {g: {**s.to_dict(), "mean_sd": format_mean_sd(s, 3)} for g, s in rec["summaries"].items()},
            "pairwise": [c.to_dict() for c in rec["pairwise"]], "note": rec["note"],
            "values": {g: [float(v) for v in np.asarray(vals, dtype=float)] for g, vals in rec["groups"].items()},
        }
    return out
