"""Point and box prompts in pixel coordinates, shared by every segmentation backend.

Convention (the one SAM, SimpleITK indices and Slicer's IJK all use): a point is ``(x, y)`` with
``x`` = column and ``y`` = row of the image array ``pixels[y, x]``; a box is ``(x0, y0, x1, y1)`` with
inclusive pixel bounds. Keeping one convention here, checked once, is what stops the classic
row/column swap from reaching a backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def _point(value, what: str) -> Point:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"{what} must be an (x, y) pair of numbers, not {value!r}.") from exc
    if not (np.isfinite(x) and np.isfinite(y)):
        raise DDICInputError(f"{what} {value!r} is not finite.")
    return x, y


@dataclass(frozen=True)
class Prompts:
    """Positive/negative points and an optional box, all in pixel coordinates (x = column, y = row).

    A box given corner-to-corner in any order is normalised to ``x0 <= x1, y0 <= y1`` (dragging a box
    from any corner is a normal gesture); a box of zero width or height is an error. At least one
    positive point or a box is required: negative points alone do not say what to segment.
    """

    positive: tuple[Point, ...] = ()
    negative: tuple[Point, ...] = ()
    box: Box | None = None

    def __post_init__(self):
        object.__setattr__(self, "positive", tuple(_point(p, "A positive point") for p in self.positive))
        object.__setattr__(self, "negative", tuple(_point(p, "A negative point") for p in self.negative))
        if self.box is not None:
            try:
                x0, y0, x1, y1 = (float(v) for v in self.box)
            except (TypeError, ValueError) as exc:
                raise DDICInputError(f"A box must be four numbers x0, y0, x1, y1, not {self.box!r}.") from exc
            if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
                raise DDICInputError(f"Box {self.box!r} has a non-finite coordinate.")
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise DDICInputError(f"Box {self.box!r} is empty: it needs a width and a height of at "
                                     "least one pixel. Draw the box around the structure.")
            object.__setattr__(self, "box", (x0, y0, x1, y1))
        if not self.positive and self.box is None:
            raise DDICInputError("Nothing to segment: give at least one positive point (label 1) or a box.")

    @classmethod
    def from_labelled(cls, points: Iterable[Sequence[float]] = (), box: Sequence[float] | None = None
                      ) -> Prompts:
        """From ``(x, y)`` / ``(x, y, label)`` triples (label 1 = positive, the default; 0 = negative)."""
        positive, negative = [], []
        for p in points:
            p = tuple(p)
            if len(p) == 2:
                positive.append(p)
            elif len(p) == 3 and p[2] in (0, 1):
                (positive if int(p[2]) == 1 else negative).append(p[:2])
            else:
                raise DDICInputError(f"A point must be (x, y) or (x, y, label) with label 0 or 1, not {p!r}.")
        return cls(tuple(positive), tuple(negative), None if box is None else tuple(box))

    # --- views used by the backends -------------------------------------------------------------
    @property
    def point_coords(self) -> np.ndarray:
        """(N, 2) float array of (x, y), positives first; shape (0, 2) when there are no points."""
        return np.asarray([*self.positive, *self.negative], dtype=np.float64).reshape(-1, 2)

    @property
    def point_labels(self) -> np.ndarray:
        """(N,) int array, 1 for positive and 0 for negative points, in :attr:`point_coords` order."""
        return np.asarray([1] * len(self.positive) + [0] * len(self.negative), dtype=np.int64)

    def validated(self, shape: tuple[int, int]) -> Prompts:
        """These prompts checked against an image of ``shape`` (rows, cols); the box is clipped to it.

        A point must round to a pixel inside the image. A box may overhang the border (it is clipped,
        as a box drawn past the edge means "up to the edge") but must overlap the image.
        """
        rows, cols = int(shape[0]), int(shape[1])
        for kind, points in (("positive", self.positive), ("negative", self.negative)):
            for x, y in points:
                ix, iy = round(x), round(y)
                if not (0 <= ix < cols and 0 <= iy < rows):
                    raise DDICInputError(
                        f"The {kind} point (x={x:g}, y={y:g}) lies outside the {cols}×{rows} image "
                        f"(x must be 0…{cols - 1}, y 0…{rows - 1}; x is the column, y the row).")
        if self.box is None:
            return self
        x0, y0, x1, y1 = self.box
        cx0, cy0 = max(x0, 0.0), max(y0, 0.0)
        cx1, cy1 = min(x1, cols - 1.0), min(y1, rows - 1.0)
        if cx1 - cx0 < 1 or cy1 - cy0 < 1:
            raise DDICInputError(f"Box {self.box} does not overlap the {cols}×{rows} image "
                                 "(or leaves less than one pixel inside it).")
        return Prompts(self.positive, self.negative, (cx0, cy0, cx1, cy1))

    def pixel_points(self, which: str = "positive") -> list[tuple[int, int]]:
        """Points rounded to pixel indices ``(x, y)``."""
        points = self.positive if which == "positive" else self.negative
        return [(round(x), round(y)) for x, y in points]

    def box_slices(self) -> tuple[slice, slice] | None:
        """``(rows, cols)`` slices of the box's inclusive pixel range (``None`` without a box)."""
        if self.box is None:
            return None
        x0, y0, x1, y1 = self.box
        return (slice(int(np.floor(y0)), int(np.ceil(y1)) + 1), slice(int(np.floor(x0)), int(np.ceil(x1)) + 1))

    def to_dict(self) -> dict:
        return {"positive": [list(p) for p in self.positive], "negative": [list(p) for p in self.negative],
                "box": None if self.box is None else list(self.box)}
