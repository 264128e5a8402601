"""The report's figures: box plots like the paper's Fig. 4 and an image grid like its Fig. 3.

matplotlib (the optional ``eval`` extra) is imported only here, with the non-interactive Agg backend, so an
evaluation runs on a server without a display; without matplotlib the figures are skipped with a note.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DDICInputError
from ..io.atomic import atomic_path
from .methods import display_name

GROUP_COLOURS = {"us": "#9e9e9e", "cyclegan": "#e69f00", "ddib": "#56b4e9", "ddic": "#009e73",
                 "paired_mri": "#f0e442"}
OUTLINE_COLOUR = "#ffd400"
ROI_COLOUR = "#ff3030"
BACKGROUND_COLOUR = "#00dcff"
GRID_FRAMES = 6
"""Rows of the image grid (the first frames by name)."""


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise DDICInputError("The figures need matplotlib: pip install matplotlib (or: pip install "
                             "'ddicslicer[eval]').") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def box_plots(records: list[dict], path: Path) -> Path | None:
    """One panel per plotted metric, the groups (US where measured, then the methods) side by side."""
    plt = _pyplot()
    panels = [r for r in records if r["metric"].plot and any(s.n for s in r["summaries"].values())]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, rec in zip(axes.ravel(), panels):
        groups = [g for g, s in rec["summaries"].items() if s.n]
        data = [np.asarray(rec["groups"][g], dtype=float) for g in groups]
        data = [d[np.isfinite(d)] for d in data]
        parts = ax.boxplot(data, patch_artist=True, widths=0.6, showmeans=True,
                           meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                      "markersize": 4})
        for patch, group in zip(parts["boxes"], groups):
            patch.set_facecolor(GROUP_COLOURS.get(group, "#cc79a7"))
        ax.set_xticks(range(1, len(groups) + 1), [display_name(g) for g in groups])
        better = rec["metric"].better
        ax.set_title(rec["metric"].label + (f" ({better} is better)" if better else ""), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def image_grid(rows: list[dict], columns: list[str], path: Path) -> Path | None:
    """Rows = frames, columns = ``columns`` (``us`` then methods in the paper's order). Each row dict holds
    ``name`` and per column ``images[col]`` (2D, 0…255), optionally ``masks[col]`` (the ventricle segmentation,
    drawn as an outline) and ``boxes`` (ROI and background squares, drawn on every panel)."""
    plt = _pyplot()
    if not rows or not columns:
        return None
    n_rows, n_cols = len(rows), len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows), squeeze=False)
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    for r, row in enumerate(rows):
        for c, col in enumerate(columns):
            ax = axes[r, c]
            image = row["images"].get(col)
            ax.set_xticks([])
            ax.set_yticks([])
            if image is None:
                ax.axis("off")
                continue
            ax.imshow(np.clip(image, 0, 255), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            mask = row.get("masks", {}).get(col)
            if mask is not None and np.any(mask):
                edge = np.ma.masked_where(~_outline(mask), np.ones(mask.shape))
                ax.imshow(edge, cmap=ListedColormap([OUTLINE_COLOUR]), vmin=0, vmax=1, interpolation="nearest")
            for box, colour in zip(row.get("boxes", ()), (ROI_COLOUR, BACKGROUND_COLOUR)):
                ax.add_patch(Rectangle((box.x0 - 0.5, box.y0 - 0.5), box.width, box.height, fill=False,
                                       edgecolor=colour, linewidth=0.8))
            if r == 0:
                ax.set_title(display_name(col), fontsize=10)
            if c == 0:
                ax.set_ylabel(row["name"], fontsize=8)
    fig.tight_layout(pad=0.3)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
