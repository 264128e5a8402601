"""Measurement regions on a 2D frame: axis-aligned pixel boxes and boolean masks.

Why: CNR (method.md eq. 14) compares an ROI with a background; the paper uses square boxes (Fig. 5), Slicer users
draw segments or Markups ROIs. Both become the same thing here, a set of pixels of one (H, W) array, and every
way of getting it wrong (outside the image, empty, too few pixels for a sample SD) fails with one clear message.

Conventions (one source of truth for the CLI, the Slicer layer and the evaluation):

- Pixel index coordinates: ``x`` = column, ``y`` = row of the array ``image[y, x]`` — the (x, y) of
  ``ddic.io.images.read_frame`` pixels, of SAM prompts and of Slicer's IJK (I = column, J = row).
- :class:`PixelBox` ``(x0, y0, x1, y1)`` is **half-open**: columns ``x0 … x1-1`` and rows ``y0 … y1-1``, like
  Python slices (``image[y0:y1, x0:x1]``). ``x1 - x0`` is the width in pixels.
- Physical points use the image geometry of ITK/SimpleITK: ``point = origin + direction @ (spacing * index)``.
  The frame (LPS for SimpleITK, RAS for Slicer nodes) is whatever the geometry is given in: points and
  geometry must share it (:func:`lps_from_ras` converts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError

MIN_REGION_PIXELS = 2
"""A region needs at least two pixels: the sample standard deviation (ddof=1) is undefined for one."""

_EDGE_TOLERANCE = 1e-6  # in pixels: a physical corner on a pixel centre counts that pixel in, despite rounding


@dataclass(frozen=True)
class PixelBox:
    """An axis-aligned box of pixels, ``x0 ≤ x < x1`` (columns) and ``y0 ≤ y < y1`` (rows): half-open."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not float(value).is_integer():
                raise DDICInputError(f"Box coordinate {name}={value!r} must be a whole pixel index.")
            object.__setattr__(self, name, int(value))
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise DDICInputError(
                f"Box {self.as_text()} is empty: it needs x1 > x0 and y1 > y0 (x1, y1 are exclusive, "
                "so a box of one column has x1 = x0 + 1)."
            )

    # construction --------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, name: str = "box") -> PixelBox:
        """``"x0,y0,x1,y1"`` (whole numbers, x1/y1 exclusive) → box; ``name`` goes into the error message."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise DDICInputError(
                f"{name} must be four whole pixel indices x0,y0,x1,y1 (x = column, y = row, x1/y1 exclusive), "
                f"not {text!r}."
            )
        return cls(*values)

    @classmethod
    def around(cls, x: float, y: float, size: int) -> PixelBox:
        """A square of ``size`` × ``size`` pixels centred on pixel (x, y) (for even sizes, the extra column
        and row go to the low side): the square ROIs of the paper's Fig. 5."""
        size = int(size)
        if size < 1:
            raise DDICInputError(f"A square box needs a size of at least 1 pixel, not {size}.")
        x0 = math.floor(x + 0.5) - size // 2
        y0 = math.floor(y + 0.5) - size // 2
        return cls(x0, y0, x0 + size, y0 + size)

    # properties ----------------------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def n_pixels(self) -> int:
        return self.width * self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """``image[box.slices]`` is the box's pixels (rows first, as numpy indexes)."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    def as_text(self) -> str:
        return f"{self.x0},{self.y0},{self.x1},{self.y1}"

    # against an image ----------------------------------------------------------------------------------------
    def inside(self, shape: Sequence[int]) -> bool:
        """True when the whole box lies in an image of ``shape`` (rows, columns)."""
        h, w = int(shape[0]), int(shape[1])
        return 0 <= self.x0 and 0 <= self.y0 and self.x1 <= w and self.y1 <= h

    def clip(self, shape: Sequence[int], name: str = "box") -> PixelBox:
        """The part of the box inside an image of ``shape`` (rows, columns); an error if nothing is left."""
        h, w = int(shape[0]), int(shape[1])
        x0, y0, x1, y1 = max(self.x0, 0), max(self.y0, 0), min(self.x1, w), min(self.y1, h)
        if x1 <= x0 or y1 <= y0:
            raise DDICInputError(
                f"{name} {self.as_text()} lies outside the image of {w}×{h} pixels (x 0…{w - 1}, y 0…{h - 1}; "
                "x = column, y = row, x1/y1 exclusive). Draw it on the image."
            )
        return PixelBox(x0, y0, x1, y1)

    def mask(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean (rows, columns) mask of the box clipped to the image (an error if it misses it)."""
        box = self.clip(shape)
        out = np.zeros((int(shape[0]), int(shape[1])), dtype=bool)
        out[box.slices] = True
        return out


Region = PixelBox | np.ndarray
"""A measurement region: a :class:`PixelBox` or a boolean mask of the image's shape."""


# --------------------------------------------------------------------------------------------------------------
# Physical coordinates
# --------------------------------------------------------------------------------------------------------------


def _geometry(origin, spacing, direction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    origin = np.asarray(origin, dtype=np.float64).ravel()
    spacing = np.asarray(spacing, dtype=np.float64).ravel()
    dim = origin.size
    if dim not in (2, 3) or spacing.size != dim:
        raise DDICInputError(
            f"Image geometry must be 2D or 3D with matching sizes: origin has {origin.size} values, spacing "
            f"{spacing.size}."
        )
    if np.any(~np.isfinite(spacing)) or np.any(spacing <= 0):
        raise DDICInputError(f"Pixel spacing must be positive, got {tuple(spacing)}.")
    direction = np.eye(dim) if direction is None else np.asarray(direction, dtype=np.float64)
    if direction.size != dim * dim:
        raise DDICInputError(f"The direction matrix of a {dim}D image needs {dim * dim} values, got {direction.size}.")
    direction = direction.reshape(dim, dim)
    if abs(np.linalg.det(direction)) < 1e-9:
        raise DDICInputError("The image direction matrix is singular; check the image geometry.")
    return origin, spacing, direction


def continuous_index(points, origin, spacing, direction=None) -> np.ndarray:
    """Physical points (N, D) → continuous pixel indices (N, D), pixel centres at whole numbers.

    Column 0 is x (= I, column), column 1 is y (= J, row), column 2 (3D geometry) the slice index.
    Inverts ``point = origin + direction @ (spacing * index)`` (ITK / SimpleITK / Slicer IJK→RAS).
    """
    origin, spacing, direction = _geometry(origin, spacing, direction)
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if pts.shape[-1] != origin.size:
        raise DDICInputError(
            f"Points have {pts.shape[-1]} coordinates but the image geometry is {origin.size}D; give points in "
            "the same frame and dimension as the geometry."
        )
    return np.linalg.solve(direction, (pts - origin).T).T / spacing


def lps_from_ras(points) -> np.ndarray:
    """RAS (Slicer) ⇄ LPS (ITK, DICOM) points: the first two axes change sign (its own inverse)."""
    pts = np.array(points, dtype=np.float64, copy=True)
    pts[..., :2] *= -1.0
    return pts


def box_from_physical(points, origin, spacing, direction=None, shape: Sequence[int] | None = None,
                      name: str = "box") -> PixelBox:
    """The pixel box whose centres lie within the index-space bounding box of two or more physical points.

    ``points``: (N ≥ 2, D) physical coordinates in mm (e.g. two opposite corners of a Markups ROI, or its eight
    corners), in the frame of the geometry (``origin`` (D,), ``spacing`` (D,), ``direction`` (D, D) or flat;
    D = 2 or 3; for 3D geometry of a one-slice volume the slice index is ignored). A pixel is in when its centre
    is inside the points' index range, edges included. With ``shape`` (rows, columns) the box is clipped to
    the image, and a box entirely outside it is an error.
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if pts.shape[0] < 2:
        raise DDICInputError(f"{name}: give at least two physical corner points, got {pts.shape[0]}.")
    index = continuous_index(pts, origin, spacing, direction)
    lo, hi = index[:, :2].min(axis=0), index[:, :2].max(axis=0)
    x0, y0 = (math.ceil(v - _EDGE_TOLERANCE) for v in lo)
    x1, y1 = (math.floor(v + _EDGE_TOLERANCE) + 1 for v in hi)
    if x1 <= x0 or y1 <= y0:
        raise DDICInputError(
            f"{name}: the physical box spans pixel indices x {lo[0]:.2f}…{hi[0]:.2f}, y {lo[1]:.2f}…{hi[1]:.2f} "
            "and contains no pixel centre; make it larger than one pixel."
        )
    box = PixelBox(x0, y0, x1, y1)
    return box.clip(shape, name) if shape is not None else box


# --------------------------------------------------------------------------------------------------------------
# Regions → pixels
# --------------------------------------------------------------------------------------------------------------


def region_mask(region: Region, shape: Sequence[int], name: str = "region") -> np.ndarray:
    """Boolean (rows, columns) mask of a box (clipped to the image) or a mask (checked), ≥ 2 pixels."""
    shape = (int(shape[0]), int(shape[1]))
    if isinstance(region, PixelBox):
        mask = region.clip(shape, name).mask(shape)
    else:
        mask = np.asarray(region)
        if mask.shape != shape:
            raise DDICInputError(
                f"The {name} mask has shape {mask.shape} but the image has {shape} (rows, columns); draw or "
                "resample the mask on the measured image's grid."
            )
        if mask.dtype != bool:
            if not np.issubdtype(mask.dtype, np.number):
                raise DDICInputError(f"The {name} mask must be boolean or numeric, not {mask.dtype}.")
            mask = mask != 0
    n = int(np.count_nonzero(mask))
    if n < MIN_REGION_PIXELS:
        raise DDICInputError(
            f"The {name} holds {n} pixel{'s' if n != 1 else ''}; at least {MIN_REGION_PIXELS} are needed for a "
            "standard deviation. Draw a larger region."
        )
    return mask


def region_values(image: np.ndarray, region: Region, name: str = "region") -> np.ndarray:
    """The pixel values (float64, 1-D) of ``image`` (H, W) inside ``region``; all finite, at least two."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise DDICInputError(f"Measurements need a 2D grayscale image, got shape {image.shape}.")
    if isinstance(region, PixelBox):
        values = image[region.clip(image.shape, name).slices].astype(np.float64).ravel()
        if values.size < MIN_REGION_PIXELS:
            region_mask(region, image.shape, name)  # raises the "too few pixels" message
    else:
        values = image[region_mask(region, image.shape, name)].astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise DDICInputError(f"The {name} contains non-finite pixel values (NaN or infinity); check the image.")
    return values
