"""Frame ⇄ canonical head grid, from the skull ellipse.

The canonical image (:mod:`ddic.geometry.canonical`) is S×S pixels over a fixed 128 × 1.094 mm field of
view (spacing 140.03 mm / S), with the **head centre at the image centre**, the **midline (major axis)
horizontal**, the **occiput left and the frontal end right**. A :class:`CanonicalHeadTransform` is the
rigid map (rotation, possibly a mirror, translation; no scaling: both sides are in mm) between that grid
and one frame, built from the frame's skull ellipse:

* canonical physical space: mm, origin at the head centre, x posterior → anterior, y down the image;
  canonical pixel (u, v) of an S×S grid sits at ``((u, v) − (S−1)/2) · spacing``.
* frame physical space: the frame's SimpleITK geometry (origin, direction) with its pixel spacing, or
  ``pixel_size_mm`` when given (PNG frames carry no spacing; HC18's comes from its CSV). Pixels must be
  square.
* the transform ``T(p) = c + M p`` (a SimpleITK ``AffineTransform``) maps canonical physical points to
  frame physical points: ``c`` is the ellipse centre; M's columns are the canonical x axis (the major
  axis, pointing to the frontal end) and y axis (the minor axis) in the frame.

**Orientation.** The major axis fixes the midline up to 180°. ``anterior_right=True`` puts the frame's
"right end" of the major axis (the end ``Ellipse.major_axis`` points to: the right half of the frame,
straight down for a vertical midline) at the canonical right (frontal); ``False`` turns the head by 180°.
Left as ``None`` it is guessed by :func:`guess_anterior` and otherwise defaults to ``True``; the source of
the decision is kept in ``orientation_source`` ("given", "heuristic", "default"). The map is a pure
rotation unless ``mirror=True``, which also flips the canonical y axis (e.g. to bring the near-field
hemisphere to the top: see :meth:`CanonicalHeadTransform.near_field_side`).

``to_model`` / ``to_frame`` resample linearly with SimpleITK and have the same signatures as
:class:`ddic.geometry.square_fit.SquareFit`, which this replaces when a head ellipse is known.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError
from ..io.images import Frame
from .canonical import CANONICAL_FIELD_OF_VIEW_MM, CANONICAL_SIZE_PX, HEAD_MASK_MARGIN_MM, spacing_for_size
from .ellipse import Ellipse
from .image_filters import sample_bilinear

ORIENTATION_SOURCES = ("given", "heuristic", "default")
DEFAULT_ANTERIOR_RIGHT = True
"""*[decision]* When neither the caller nor the heuristic decides, the frontal end is taken to be the
right end of the major axis (HC18 does not annotate the orientation). Recorded as ``default``."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where a frame's pixels lie: (H, W), origin, square pixel size (mm) and 2×2 direction."""

    shape: tuple[int, int]
    origin: tuple[float, float] = (0.0, 0.0)
    pixel_size_mm: float = 1.0
    direction: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 1.0)

    @classmethod
    def of_frame(cls, frame: Frame, pixel_size_mm: float | None = None) -> FrameGeometry:
        image = frame.image2d
        if pixel_size_mm is None:
            sx, sy = image.GetSpacing()
            if not math.isclose(sx, sy, rel_tol=1e-4):
                raise DDICInputError(
                    f"The frame's pixels are not square (spacing {sx:g} × {sy:g} mm); the head transform needs "
                    "square pixels. Resample the frame to square pixels first or give its pixel size.")
            pixel_size_mm = sx
        pixel_size_mm = float(pixel_size_mm)
        if not math.isfinite(pixel_size_mm) or pixel_size_mm <= 0:
            raise DDICInputError(f"The pixel size must be a positive number of mm, got {pixel_size_mm!r}.")
        return cls(shape=tuple(int(v) for v in frame.shape), origin=tuple(float(v) for v in image.GetOrigin()),
                   pixel_size_mm=pixel_size_mm, direction=tuple(float(v) for v in image.GetDirection()))

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=np.float64).reshape(2, 2)

    def index_to_physical(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(self.origin) + (self.pixel_size_mm * np.asarray(xy, dtype=np.float64)) @ \
            self.direction_matrix.T

    def physical_to_index(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, dtype=np.float64) - np.asarray(self.origin)) @ self.direction_matrix / \
            self.pixel_size_mm  # direction matrices are orthonormal: inverse = transpose

    def reference_image(self):
        import SimpleITK as sitk

        h, w = self.shape
        image = sitk.Image(w, h, sitk.sitkFloat32)
        image.SetOrigin(self.origin)
        image.SetSpacing((self.pixel_size_mm, self.pixel_size_mm))
        image.SetDirection(self.direction)
        return image

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "origin": list(self.origin), "pixel_size_mm": self.pixel_size_mm,
                "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, data: dict) -> FrameGeometry:
        return cls(shape=tuple(int(v) for v in data["shape"]), origin=tuple(float(v) for v in data["origin"]),
                   pixel_size_mm=float(data["pixel_size_mm"]),
                   direction=tuple(float(v) for v in data["direction"]))


def canonical_reference(size: int):
    """The SimpleITK reference image of the S×S canonical grid (head centre at physical (0, 0))."""
    import SimpleITK as sitk

    size = int(size)
    if size < 2:
        raise DDICInputError(f"The canonical grid needs at least 2 pixels a side, got {size}.")
    spacing = spacing_for_size(size)
    half = spacing * (size - 1) / 2.0
    grid = sitk.Image(size, size, sitk.sitkFloat32)
    grid.SetSpacing((spacing, spacing))
    grid.SetOrigin((-half, -half))
    return grid


class CanonicalHeadTransform:
    """The map between one frame and the canonical head grid (see the module docstring)."""

    def __init__(self, frame: Frame | None, ellipse: Ellipse, *, size: int = CANONICAL_SIZE_PX,
                 anterior_right: bool | None = None, mirror: bool = False, pixel_size_mm: float | None = None,
                 geometry: FrameGeometry | None = None, orientation_source: str | None = None):
        if frame is None and geometry is None:
            raise DDICInputError("A head transform needs the frame (or its geometry).")
        self.frame = frame
        self.geometry = geometry if geometry is not None else FrameGeometry.of_frame(frame, pixel_size_mm)
        if frame is not None and tuple(frame.shape) != tuple(self.geometry.shape):
            raise DDICInputError(f"The frame is {frame.shape} but the transform was made for "
                                 f"{self.geometry.shape}.")
        self.ellipse = ellipse
        self.size = int(size)
        canonical_reference(self.size)  # validates the size
        if anterior_right is None:
            guess = guess_anterior(frame.pixels, ellipse) if frame is not None else None
            anterior_right = DEFAULT_ANTERIOR_RIGHT if guess is None else guess
            source = "default" if guess is None else "heuristic"
        else:
            source = "given"
        if orientation_source is not None:
            if orientation_source not in ORIENTATION_SOURCES:
                raise DDICInputError(f"orientation_source must be one of {ORIENTATION_SOURCES}.")
            source = orientation_source
        self.anterior_right = bool(anterior_right)
        self.mirror = bool(mirror)
        self.orientation_source = source
        self.centre, self.matrix = self._frame_axes()

    # ---- the map
    def _frame_axes(self) -> tuple[np.ndarray, np.ndarray]:
        g = self.geometry
        direction = g.direction_matrix
        centre = g.index_to_physical(np.array([self.ellipse.cx, self.ellipse.cy]))
        major = direction @ self.ellipse.major_axis
        minor = direction @ self.ellipse.minor_axis
        sx = 1.0 if self.anterior_right else -1.0
        sy = sx * (-1.0 if self.mirror else 1.0)
        return centre, np.stack([sx * major, sy * minor], axis=1)  # columns: canonical x, y in the frame

    @property
    def spacing_mm(self) -> float:
        return spacing_for_size(self.size)

    @property
    def translation(self) -> np.ndarray:
        return self.centre

    def sitk_transform(self):
        """The SimpleITK transform canonical physical → frame physical (what ``Resample`` needs)."""
        import SimpleITK as sitk

        t = sitk.AffineTransform(2)
        t.SetMatrix(tuple(float(v) for v in self.matrix.ravel()))
        t.SetTranslation(tuple(float(v) for v in self.centre))
        t.SetCenter((0.0, 0.0))
        return t

    def canonical_reference(self, size: int | None = None):
        return canonical_reference(self.size if size is None else size)

    # ---- images
    def to_model(self, pixels: np.ndarray | None = None, size: int | None = None,
                 fill: float | None = None) -> np.ndarray:
        """Frame pixels (default: the frame's own) → (S, S) float32 on the canonical grid (linear).

        ``size`` defaults to the transform's; the field of view stays 128 × 1.094 mm whatever S is.
        Canonical pixels outside the frame get ``fill`` (default: the frame's minimum).
        """
        import SimpleITK as sitk

        if pixels is None:
            if self.frame is None:
                raise DDICInputError("This transform was loaded without its frame; pass the frame's pixels.")
            pixels = self.frame.pixels
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.shape != tuple(self.geometry.shape):
            raise DDICInputError(f"Pixels of shape {pixels.shape} do not match the frame's {self.geometry.shape}.")
        source = sitk.GetImageFromArray(pixels)
        source.CopyInformation(self.geometry.reference_image())
        fill = float(np.min(pixels)) if fill is None else float(fill)
        out = sitk.Resample(source, self.canonical_reference(size), self.sitk_transform(), sitk.sitkLinear,
                            fill, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(out)

    def to_frame(self, model_pixels: np.ndarray, fill: float | None = None) -> np.ndarray:
        """(S, S) canonical pixels (any S) → the frame's grid (H, W) float32 (linear).

        Frame pixels outside the canonical field of view get ``fill`` (default: the model pixels' minimum).
        """
        import SimpleITK as sitk

        model_pixels = np.asarray(model_pixels, dtype=np.float32)
        if model_pixels.ndim != 2 or model_pixels.shape[0] != model_pixels.shape[1]:
            raise DDICInputError(f"Canonical pixels must be a square 2D array, got shape {model_pixels.shape}.")
        source = sitk.GetImageFromArray(model_pixels)
        source.CopyInformation(canonical_reference(model_pixels.shape[0]))
        fill = float(np.min(model_pixels)) if fill is None else float(fill)
        out = sitk.Resample(source, self.geometry.reference_image(), self.sitk_transform().GetInverse(),
                            sitk.sitkLinear, fill, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(out)

    # ---- points (markups)
    def point_to_canonical(self, xy, size: int | None = None) -> np.ndarray:
        """Frame pixel coordinates (x, y) — one (2,) or many (N, 2) — → canonical pixel coordinates."""
        pts, single = _as_points(xy)
        size = self.size if size is None else int(size)
        spacing = spacing_for_size(size)
        physical = self.geometry.index_to_physical(pts)
        canonical_mm = (physical - self.centre) @ self.matrix  # M is orthogonal: M⁻¹ = Mᵀ
        out = canonical_mm / spacing + (size - 1) / 2.0
        return out[0] if single else out

    def point_to_frame(self, uv, size: int | None = None) -> np.ndarray:
        """Canonical pixel coordinates (u, v) — (2,) or (N, 2) — → frame pixel coordinates (x, y)."""
        pts, single = _as_points(uv)
        size = self.size if size is None else int(size)
        spacing = spacing_for_size(size)
        canonical_mm = (pts - (size - 1) / 2.0) * spacing
        physical = self.centre + canonical_mm @ self.matrix.T
        out = self.geometry.physical_to_index(physical)
        return out[0] if single else out

    # ---- the head in canonical space
    def canonical_ellipse(self, size: int | None = None) -> Ellipse:
        """The skull ellipse on the canonical grid: centred, major axis horizontal."""
        size = self.size if size is None else int(size)
        factor = self.geometry.pixel_size_mm / spacing_for_size(size)
        c = (size - 1) / 2.0
        return Ellipse(c, c, self.ellipse.a * factor, self.ellipse.b * factor, 0.0)

    def head_mask(self, size: int | None = None, margin_mm: float = 0.0) -> np.ndarray:
        """Boolean (S, S): canonical pixels inside the skull ellipse grown by ``margin_mm``."""
        size = self.size if size is None else int(size)
        return self.canonical_ellipse(size).mask((size, size), margin=margin_mm / spacing_for_size(size))

    def head_image(self, pixels: np.ndarray | None = None, size: int | None = None,
                   margin_mm: float = HEAD_MASK_MARGIN_MM) -> np.ndarray:
        """The canonical ultrasound image of the head: resampled, zero outside the skull ellipse + margin.

        The one preprocessing of every canonical US image — ``ddic prepare hc18`` (training data), the
        phantom's paired US and translation — so the models see the same thing at training and at use:
        pixels outside the frame and farther than ``margin_mm`` outside the skull (maternal tissue,
        amniotic fluid, sector edges) are 0.
        """
        size = self.size if size is None else int(size)
        canonical = self.to_model(pixels, size=size, fill=0.0)
        canonical[~self.head_mask(size, margin_mm=margin_mm)] = 0.0
        return canonical

    def head_fits(self) -> bool:
        """Whether the whole skull ellipse lies inside the canonical field of view."""
        return 2.0 * self.ellipse.a * self.geometry.pixel_size_mm <= CANONICAL_FIELD_OF_VIEW_MM

    def near_field_side(self) -> str:
        """Where the frame's top (the transducer side of a B-mode frame; the near-field hemisphere) ends
        up in the canonical image: "top" or "bottom" (by the sign of the frame's up direction along
        the canonical y axis)."""
        up = self.geometry.direction_matrix @ np.array([0.0, -1.0])
        v = float(up @ self.matrix[:, 1])
        return "top" if v <= 0 else "bottom"

    # ---- manifests
    def to_dict(self) -> dict:
        return {
            "kind": "canonical_head", "version": 1, "size": self.size, "spacing_mm": self.spacing_mm,
            "ellipse": self.ellipse.to_dict(), "anterior_right": self.anterior_right, "mirror": self.mirror,
            "orientation_source": self.orientation_source, "frame": self.geometry.to_dict(),
            "matrix": [float(v) for v in self.matrix.ravel()],
            "translation_mm": [float(v) for v in self.centre],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict | str, frame: Frame | None = None) -> CanonicalHeadTransform:
        """Rebuild from :meth:`to_dict` (or its JSON); ``frame`` gives ``to_model`` its default pixels."""
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict) or data.get("kind") != "canonical_head":
            raise DDICInputError("Not a canonical head transform description (kind 'canonical_head').")
        try:
            geometry = FrameGeometry.from_dict(data["frame"])
            transform = cls(frame, Ellipse.from_dict(data["ellipse"]), size=int(data["size"]),
                            anterior_right=bool(data["anterior_right"]), mirror=bool(data.get("mirror", False)),
                            geometry=geometry, orientation_source=data.get("orientation_source", "given"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DDICInputError(f"Incomplete canonical head transform description: {exc}.") from exc
        return transform


def _as_points(xy) -> tuple[np.ndarray, bool]:
    pts = np.asarray(xy, dtype=np.float64)
    single = pts.ndim == 1
    pts = pts.reshape(-1, 2) if pts.size else pts.reshape(0, 2)
    if pts.shape[-1] != 2:
        raise DDICInputError(f"Points must be (x, y) pairs, got shape {np.shape(xy)}.")
    return pts, single


# ---------------------------------------------------------------------------------------------------------
# Orientation heuristic

ANTERIOR_MARGIN = 0.35
"""Minimum difference of the two sides' CSP contrast (in units of the head's intensity spread) for
:func:`guess_anterior` to decide; below it the answer is ``None``."""


def _band_mean(pixels: np.ndarray, ellipse: Ellipse, t_range, s_range, side: float) -> float:
    """Mean intensity over the head-axis box t ∈ t_range·a (along the major axis, on ``side`` ±1),
    s ∈ s_range·b (across it), sampled bilinearly; NaN where the box leaves the frame."""
    h, w = pixels.shape
    t = np.linspace(*t_range, 24) * ellipse.a * side
    s = np.linspace(*s_range, 7) * ellipse.b
    tt, ss = np.meshgrid(t, s)
    pts = (np.stack([tt.ravel(), ss.ravel()], axis=1) @ np.stack([ellipse.major_axis, ellipse.minor_axis])
           + [ellipse.cx, ellipse.cy])
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    if inside.mean() < 0.8:
        return float("nan")
    return float(np.mean(sample_bilinear(pixels.astype(np.float64), pts[inside, 0], pts[inside, 1])))


def anterior_scores(frame_pixels, ellipse: Ellipse) -> tuple[float, float]:
    """The CSP contrast on the +major-axis ("right") and −major-axis ("left") ends (see guess_anterior)."""
    pixels = np.asarray(frame_pixels, dtype=np.float64)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        pixels = pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
    if pixels.ndim != 2:
        raise DDICInputError(f"Orientation guessing needs a 2D frame, got shape {pixels.shape}.")
    inside = ellipse.mask(pixels.shape, margin=-0.1 * ellipse.b)
    spread = float(np.std(pixels[inside])) if inside.sum() > 20 else 0.0
    if spread <= 1e-9:
        return 0.0, 0.0
    scores = []
    for side in (1.0, -1.0):
        midline = _band_mean(pixels, ellipse, (0.2, 0.55), (-0.06, 0.06), side)
        flank_a = _band_mean(pixels, ellipse, (0.2, 0.55), (0.25, 0.4), side)
        flank_b = _band_mean(pixels, ellipse, (0.2, 0.55), (-0.4, -0.25), side)
        values = [midline, flank_a, flank_b]
        if any(math.isnan(v) for v in values):
            scores.append(0.0)
            continue
        scores.append((0.5 * (flank_a + flank_b) - midline) / spread)
    return scores[0], scores[1]


def guess_anterior(frame_pixels, ellipse: Ellipse, margin: float = ANTERIOR_MARGIN) -> bool | None:
    """Guess whether the frontal end of the head is the "right" end of the major axis (True), the other
    end (False), or ``None`` when the image does not tell.

    Heuristic *[decision; weak — always overridable]*: in the transthalamic plane the cavum septi
    pellucidi (CSP) is a fluid-filled, dark box **on the midline in the anterior third** of the head,
    while behind the thalami the midline shows the bright echo of the falx / interhemispheric fissure.
    For each end of the major axis the mean intensity of a narrow midline band (±6 % of b) between 20 %
    and 55 % of the semi-axis from the centre is compared with the two parallel bands 25–40 % of b to
    either side; the CSP side is the one whose midline is darker than its flanks. The side scores are
    divided by the intensity spread inside the head; their difference must exceed ``margin`` to decide.
    Frames without a visible CSP (off-plane, shadowed, a blank phantom) give ``None``.
    """
    right, left = anterior_scores(frame_pixels, ellipse)
    if right - left > margin:
        return True
    if left - right > margin:
        return False
    return None
