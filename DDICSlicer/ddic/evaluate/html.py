"""``report.html``: one self-contained page (tables, figures embedded as base64 PNG) that opens in any browser.

Why self-contained: a report is mailed, attached to an issue or opened from a zip; relative image links
break there. The CSV and JSON files beside it are linked relatively (they are data, not part of the page).
Every value is HTML-escaped; numbers are formatted here, once.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .. import __version__
from .methods import display_name

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.note{color:#7a4b00;background:#fff6e0;padding:.4em .8em;border-radius:4px}
img{max-width:100%;border:1px solid #eee}small{color:#666}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _num(value, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value) if value not in (None, "") else "–"
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def _p(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return f'<p class="note">{_e(alt)}: not drawn (see the notes).</p>'
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def summary_table(records: list[dict]) -> str:
    groups: list[str] = []
    for rec in records:
        for g in rec["summaries"]:
            if g not in groups:
                groups.append(g)
    groups.sort(key=lambda g: g != "us")  # the US baseline first, then the methods in the paper's order
    rows = []
    for rec in records:
        metric = rec["metric"]
        arrow = {"higher": " ↑", "lower": " ↓"}.get(metric.better or "", "")
        cells = [_e(metric.label) + arrow]
        for g in groups:
            s = rec["summaries"].get(g)
            cells.append(_e(s.format(3)) if s is not None else "")
        rows.append(cells)
    return _table(["Metric"] + [_e(display_name(g)) for g in groups], rows)


def cnr_section(table: list[dict]) -> str:
    if not table:
        return '<p class="note">No CNR: the frames have no head geometry for the atlas squares.</p>'
    rows = [[_e(r["name"]), str(r["n"]), _e(r["cnr"]), _e(r["gcnr"]), _p(r["p_welch"]), _p(r["p_paired_t"]),
             _p(r["p_wilcoxon"]), _p(r["gcnr_p_paired_t"])] for r in table]
    return (_table(["Image", "n", "CNR (mean ± SD)", "gCNR (mean ± SD)", "p vs US, Welch", "p vs US, paired t",
                    "p vs US, Wilcoxon", "gCNR p vs US, paired t"], rows)
            + "<p><small>Same atlas squares on the US and every pseudo-MRI (ROI in the distal lateral-ventricle "
              "atrium, background in the adjacent parenchyma). p unadjusted; Holm-adjusted values in "
              "pairwise.csv.</small></p>")


def pairwise_section(pairwise: list[dict]) -> str:
    if not pairwise:
        return "<p>No pairwise tests (fewer than two groups with at least two values).</p>"
    rows = []
    for r in pairwise:
        rows.append([_e(r["metric"]), _e(f"{display_name(r['a'])} − {display_name(r['b'])}"), _e(r["test"]),
                     str(r["n"]), _num(r["mean_difference"]), _p(r["pvalue"]), _p(r["pvalue_holm"]),
                     _e(r["effect_size"]) + " " + _num(r["effect_value"], 2)])
    return _table(["Metric", "Difference", "Test", "n", "Mean difference", "p", "p (Holm)", "Effect size"], rows,
                  left=3)


def fid_section(fid: dict) -> str:
    if not fid or "methods" not in fid:
        note = (fid or {}).get("note", "FID/KID not computed.")
        return f'<p class="note">{_e(note)}</p>'
    rows = []
    for method, refs in fid["methods"].items():
        for ref, c in refs.items():
            rows.append([_e(display_name(method)), _e(ref), str(c["n_generated"]), str(c["n_reference"]),
                         _num(c["fid"], 2), f"{_num(c['fid_ci'][0], 2)} – {_num(c['fid_ci'][1], 2)}",
                         _num(c["kid"], 4), f"{_num(c['kid_ci'][0], 4)} – {_num(c['kid_ci'][1], 4)}"])
    return (_table(["Method", "Reference set", "N", "N ref", "FID", "FID 95 % CI", "KID", "KID 95 % CI"], rows,
                   left=2)
            + f"<p><small>Extractor: {_e(fid['extractor'])}. FID is strongly biased at small N: compare only at "
              "equal N with the same extractor.</small></p>")


def render(report: dict, records: list[dict], cnr: list[dict], pairwise: list[dict], figures: dict,
           files: list[str]) -> str:
    """The page's HTML text."""
    run = report["run"]
    info_rows = [
        ["Test set", _e(f"{report['test_set']['root']} ({report['test_set']['kind']}, "
                        f"{report['test_set']['frames']} frames)")],
        ["Paired truth", _e(report.get("paired") or "none")],
        ["Methods", _e(", ".join(display_name(m) for m in report["methods"]))],
        ["Translation", _e(", ".join(f"{k} = {v}" for k, v in run["translation"].items()))],
        ["Models", _e("; ".join(f"{display_name(m)}: " + ", ".join(f"{k} {v}" for k, v in ids.items())
                                for m, ids in report["models"].items()))],
        ["Outputs", _e("; ".join(f"{display_name(m)}: {i['translated']} translated, {i['cached']} cached"
                                 + (f" on {i['device']}" if i.get("device") else "")
                                 for m, i in report["translation"].items()))],
        ["Run", _e(f"ddic {__version__}, {run['started']}, {run['seconds']:.1f} s")],
    ]
    notes = "".join(f"<li>{_e(n)}</li>" for n in report["notes"])
    links = " · ".join(f'<a href="{_e(f)}">{_e(f)}</a>' for f in files)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>DDIC evaluation — {_e(report['test_set']['root'])}</title><style>{STYLE}</style></head><body>",
        "<h1>DDIC evaluation report</h1>", _table(["", ""], info_rows),
        (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""),
        "<h2>Summary (mean ± SD over frames)</h2>", summary_table(records),
        "<h2>Contrast: US vs pseudo-MRI</h2>", cnr_section(cnr),
        "<h2>Box plots</h2>", _image(figures.get("box_plots"), "box plots"),
        "<h2>Image grid</h2>", _image(figures.get("image_grid"), "image grid"),
        ("<p><small>Yellow: the ventricle segmentation (offline backend, atlas prompts); red / cyan: the CNR ROI "
         "and background squares.</small></p>"),
        "<h2>FID / KID</h2>", fid_section(report.get("fid") or {}),
        "<h2>Pairwise tests</h2>", pairwise_section(pairwise),
        f"<h2>Files</h2><p>{links}</p>",
        "<p><small>Research use only; not a medical device. Phantom results describe synthetic data.</small></p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)
