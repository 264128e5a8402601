"""The head ellipse: its parameters, circumference (HC), least-squares fitting and automatic skull detection.

Conventions (used throughout ``ddic``):

* **Coordinates** are continuous pixel indices of the frame: ``x`` = column (to the right), ``y`` = row
  (downward), the centre of pixel (i, j) at (x=j, y=i). This is SimpleITK's continuous index, so an
  ellipse maps to physical space with the image's ``TransformContinuousIndexToPhysicalPoint``.
* **Semi-axes** ``a ≥ b`` (the constructor swaps them and turns the angle by 90° if needed). In a
  transthalamic frame ``2a`` is the occipito-frontal diameter (OFD, the midline) and ``2b`` the BPD.
* **Angle** ``angle_deg`` is the direction of the major axis ``a``, measured from the image +x axis
  towards the image +y axis (with y pointing down this is *clockwise as displayed*), normalised to
  (−90°, 90°]. So the unit vector ``(cos θ, sin θ)`` of the major axis always points to the right half
  of the frame (straight down for θ = 90°): :meth:`Ellipse.major_axis` — the "right end" of the midline
  that ``anterior_right`` in :mod:`ddic.geometry.head` refers to.
* **HC18.** The challenge describes an ellipse by ``center_x_mm, center_y_mm, semi_axes_a_mm,
  semi_axes_b_mm, angle_rad``; :meth:`Ellipse.to_hc18` / :meth:`Ellipse.from_hc18` convert with the pixel
  size, taking ``angle_rad`` as this same angle in radians (image y down). *[?]* The challenge's own sign
  convention is not verified against real annotations (``anatomy.md`` §9, open item 4): re-drawing a few
  training ellipses over their ``*_Annotation.png`` settles it. Fitting the annotation outline itself
  (:func:`fit_annotation`) never depends on it.
* **HC** is Ramanujan's second approximation of the perimeter, π(a+b)[1 + 3h/(10 + √(4 − 3h))] with
  h = ((a−b)/(a+b))², the HC18 / INTERGROWTH convention (:func:`ramanujan_perimeter`, the one formula for
  every HC in ``ddic``); its relative error is < 1e-9 for axis ratios ≥ 0.5.

Only numpy (fitting) and SimpleITK (image smoothing, in the detector) are used at run time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from ..errors import DDICInputError
from .skull import skull_thickness_from_bpd_mm

MASK_BLOCK_PIXELS = 1 << 20
"""Pixels tested per block by :meth:`Ellipse.mask` (bounds its temporary arrays to ≈ 50 MB)."""

# ---------------------------------------------------------------------------------------------------------
# The ellipse


@dataclass
class Ellipse:
    """An ellipse in frame pixel coordinates (see the module docstring for the conventions)."""

    cx: float
    cy: float
    a: float
    b: float
    angle_deg: float = 0.0

    def __post_init__(self) -> None:
        values = [float(v) for v in (self.cx, self.cy, self.a, self.b, self.angle_deg)]
        if not all(math.isfinite(v) for v in values):
            raise DDICInputError(f"Ellipse parameters must be finite numbers, got {values}.")
        cx, cy, a, b, angle = values
        if a <= 0 or b <= 0:
            raise DDICInputError(f"Ellipse semi-axes must be positive, got a={a}, b={b}.")
        if b > a:
            a, b, angle = b, a, angle + 90.0
        self.cx, self.cy, self.a, self.b = cx, cy, a, b
        self.angle_deg = normalise_angle_deg(angle)

    # ---- derived quantities
    @property
    def angle_rad(self) -> float:
        return math.radians(self.angle_deg)

    @property
    def center(self) -> tuple[float, float]:
        return self.cx, self.cy

    @property
    def major_axis(self) -> np.ndarray:
        """Unit vector (x, y) along the major axis, pointing to the right half of the frame."""
        t = self.angle_rad
        return np.array([math.cos(t), math.sin(t)])

    @property
    def minor_axis(self) -> np.ndarray:
        """Unit vector (x, y): the major axis turned by +90° (towards +y when the midline is horizontal)."""
        t = self.angle_rad
        return np.array([-math.sin(t), math.cos(t)])

    @property
    def axis_ratio(self) -> float:
        """b / a (≈ BPD/OFD, the cephalic index), in (0, 1]."""
        return self.b / self.a

    @property
    def circumference(self) -> float:
        """Perimeter in the ellipse's own units (:func:`ramanujan_perimeter`)."""
        return ramanujan_perimeter(self.a, self.b)

    def hc_mm(self, pixel_size_mm: float) -> float:
        """Head circumference in mm of an ellipse given in pixels of ``pixel_size_mm``."""
        return self.circumference * _positive_pixel_size(pixel_size_mm)

    # ---- units
    def scaled(self, factor: float) -> Ellipse:
        """The same ellipse with every length (centre included) multiplied by ``factor``."""
        f = float(factor)
        return Ellipse(self.cx * f, self.cy * f, self.a * f, self.b * f, self.angle_deg)

    def to_mm(self, pixel_size_mm: float) -> Ellipse:
        """Pixels → mm (centre measured from the centre of pixel (0, 0), as in HC18)."""
        return self.scaled(_positive_pixel_size(pixel_size_mm))

    @classmethod
    def from_mm(cls, ellipse_mm: Ellipse, pixel_size_mm: float) -> Ellipse:
        """mm → pixels (the inverse of :meth:`to_mm`)."""
        return ellipse_mm.scaled(1.0 / _positive_pixel_size(pixel_size_mm))

    def to_hc18(self, pixel_size_mm: float) -> dict[str, float]:
        """The HC18 submission columns (mm and radians; see the module docstring for the angle)."""
        mm = self.to_mm(pixel_size_mm)
        return {"center_x_mm": mm.cx, "center_y_mm": mm.cy, "semi_axes_a_mm": mm.a,
                "semi_axes_b_mm": mm.b, "angle_rad": mm.angle_rad}

    @classmethod
    def from_hc18(cls, row: dict, pixel_size_mm: float) -> Ellipse:
        mm = cls(float(row["center_x_mm"]), float(row["center_y_mm"]), float(row["semi_axes_a_mm"]),
                 float(row["semi_axes_b_mm"]), math.degrees(float(row["angle_rad"])))
        return cls.from_mm(mm, pixel_size_mm)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Ellipse:
        try:
            return cls(float(data["cx"]), float(data["cy"]), float(data["a"]), float(data["b"]),
                       float(data.get("angle_deg", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise DDICInputError(f"Not an ellipse description: {data!r} (need cx, cy, a, b, angle_deg).") from exc

    # ---- geometry
    def to_local(self, points) -> np.ndarray:
        """Points (N, 2) in frame pixels → the ellipse's own axes (major, minor), centred."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2) - [self.cx, self.cy]
        return np.stack([p @ self.major_axis, p @ self.minor_axis], axis=1)

    def points(self, n: int = 360) -> np.ndarray:
        """``n`` points (N, 2) on the ellipse, evenly spaced in the parametric angle."""
        t = np.linspace(0.0, 2.0 * np.pi, int(n), endpoint=False)
        local = np.stack([self.a * np.cos(t), self.b * np.sin(t)], axis=1)
        return local @ np.stack([self.major_axis, self.minor_axis]) + [self.cx, self.cy]

    def distance(self, points) -> np.ndarray:
        """Signed distance (first-order, Sampson) of points to the outline: > 0 outside, < 0 inside."""
        local = self.to_local(points)
        u, v = local[:, 0] / self.a, local[:, 1] / self.b
        f = u * u + v * v - 1.0
        grad = 2.0 * np.hypot(u / self.a, v / self.b)
        return f / np.maximum(grad, 1e-12)

    def contains(self, points, margin: float = 0.0) -> np.ndarray:
        """Whether points lie inside the ellipse grown by ``margin`` (same units) on both semi-axes."""
        local = self.to_local(points)
        a, b = self.a + margin, self.b + margin
        return (local[:, 0] / a) ** 2 + (local[:, 1] / b) ** 2 <= 1.0

    def mask(self, shape: tuple[int, int], margin: float = 0.0) -> np.ndarray:
        """Boolean (H, W) mask of the pixels whose centres lie inside (grown by ``margin`` pixels).

        Evaluated with :meth:`contains` over the ellipse's bounding box only, a block of rows at a time:
        the same test pixel by pixel, but memory stays ≈ one byte per frame pixel (a 4000 × 3000 frame
        needed ≈ 1 GB of coordinate arrays when the whole grid was evaluated at once).
        """
        h, w = int(shape[0]), int(shape[1])
        out = np.zeros((h, w), dtype=bool)
        a, b, t = abs(self.a + margin), abs(self.b + margin), self.angle_rad
        if a == 0 or b == 0:
            return out
        hx = math.hypot(a * math.cos(t), b * math.sin(t)) + 2.0
        hy = math.hypot(a * math.sin(t), b * math.cos(t)) + 2.0
        x0, x1 = max(int(math.floor(self.cx - hx)), 0), min(int(math.ceil(self.cx + hx)) + 1, w)
        y0, y1 = max(int(math.floor(self.cy - hy)), 0), min(int(math.ceil(self.cy + hy)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return out
        xs = np.arange(x0, x1)
        rows = max(1, MASK_BLOCK_PIXELS // xs.size)
        for top in range(y0, y1, rows):
            ys = np.arange(top, min(top + rows, y1))
            xx, yy = np.meshgrid(xs, ys)
            inside = self.contains(np.stack([xx.ravel(), yy.ravel()], axis=1), margin)
            out[ys[0]:ys[-1] + 1, x0:x1] = inside.reshape(ys.size, xs.size)
        return out

    def offset(self, delta: float) -> Ellipse:
        """Both semi-axes grown by ``delta`` (an ellipse approximating the parallel curve at distance delta)."""
        return Ellipse(self.cx, self.cy, self.a + delta, self.b + delta, self.angle_deg)


def normalise_angle_deg(angle: float) -> float:
    """An axis direction in degrees, folded into (−90, 90]."""
    angle = math.fmod(float(angle), 180.0)
    if angle <= -90.0:
        angle += 180.0
    elif angle > 90.0:
        angle -= 180.0
    return angle


def ramanujan_perimeter(a, b):
    """Perimeter of an ellipse with semi-axes a, b (Ramanujan II; the HC18 / IG convention for HC).

    π(a+b)·[1 + 3h/(10 + √(4 − 3h))], h = ((a−b)/(a+b))². Scalars give a float, arrays (broadcast) an
    array; non-positive axes give NaN rather than an exception, so vectorised callers can mask them.
    """
    a_arr = np.asarray(a, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = ((a_arr - b_arr) / (a_arr + b_arr)) ** 2
        perimeter = np.pi * (a_arr + b_arr) * (1.0 + 3.0 * h / (10.0 + np.sqrt(4.0 - 3.0 * h)))
        perimeter = np.where((a_arr > 0) & (b_arr > 0), perimeter, np.nan)
    return float(perimeter) if perimeter.ndim == 0 else perimeter


ramanujan_circumference = ramanujan_perimeter
"""The former name of :func:`ramanujan_perimeter` (kept for existing callers; same function)."""


def semi_axes_for_circumference(hc: float, axis_ratio: float) -> tuple[float, float]:
    """Semi-axes (a, b) of an ellipse with perimeter ``hc`` and ``b/a = axis_ratio`` (for phantoms, tests)."""
    a = float(hc) / ramanujan_perimeter(1.0, float(axis_ratio))
    return a, a * float(axis_ratio)


def _positive_pixel_size(pixel_size_mm: float) -> float:
    value = float(pixel_size_mm)
    if not math.isfinite(value) or value <= 0:
        raise DDICInputError(f"The pixel size must be a positive number of mm, got {pixel_size_mm!r}.")
    return value


# ---------------------------------------------------------------------------------------------------------
# Least-squares fitting


def conics_to_ellipses(coeffs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Conic coefficients (K, 6) of A x² + B xy + C y² + D x + E y + F = 0 → ellipse parameters.

    Returns ``(cx, cy, a, b, angle_deg, valid)`` arrays of length K; ``valid`` is false for conics that
    are not real, non-degenerate ellipses (their other entries are NaN).
    """
    c = np.asarray(coeffs, dtype=np.float64).reshape(-1, 6)
    c = c * np.where(c[:, 0] + c[:, 2] < 0, -1.0, 1.0)[:, None]  # A + C > 0: both eigenvalues positive
    A, B, C, D, E, F = c.T
    det = 4.0 * A * C - B * B
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = (B * E - 2.0 * C * D) / det
        cy = (B * D - 2.0 * A * E) / det
        f0 = F + 0.5 * (D * cx + E * cy)  # the conic's value at its centre
        root = np.sqrt(((A - C) / 2.0) ** 2 + (B / 2.0) ** 2)
        lam_small = (A + C) / 2.0 - root
        lam_large = (A + C) / 2.0 + root
        a = np.sqrt(-f0 / lam_small)
        b = np.sqrt(-f0 / lam_large)
    angle = np.degrees(0.5 * np.arctan2(B, A - C)) + 90.0  # direction of the smaller eigenvalue's vector
    angle = np.where(angle > 90.0, angle - 180.0, angle)
    valid = (det > 0) & (lam_small > 0) & (f0 < 0) & np.isfinite(a) & np.isfinite(b) & (b > 0)
    valid &= np.isfinite(cx) & np.isfinite(cy)
    nan = np.nan
    return (np.where(valid, cx, nan), np.where(valid, cy, nan), np.where(valid, a, nan),
            np.where(valid, b, nan), np.where(valid, angle, nan), valid)


def _direct_conic_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Fitzgibbon–Pilu–Fisher direct ellipse fit in the numerically stable form of Halíř & Flusser.

    Minimises the algebraic distance Σ w·(A x² + B xy + C y² + D x + E y + F)² subject to 4AC − B² = 1,
    which always yields an ellipse for non-degenerate data. Returns the six conic coefficients.
    """
    d1 = np.stack([x * x, x * y, y * y], axis=1)
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)
    if w is not None:
        sw = np.sqrt(w)[:, None]
        d1, d2 = d1 * sw, d2 * sw
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    t = -np.linalg.solve(s3, s2.T)  # raises LinAlgError for collinear points
    m = s1 + s2 @ t
    m = np.array([m[2] / 2.0, -m[1], m[0] / 2.0])  # C⁻¹ M with C the 3×3 ellipse constraint matrix
    eigval, eigvec = np.linalg.eig(m)
    eigvec = np.real(eigvec)
    cond = 4.0 * eigvec[0] * eigvec[2] - eigvec[1] ** 2
    candidates = np.flatnonzero(cond > 0)
    if candidates.size == 0:
        raise np.linalg.LinAlgError("no elliptic solution")
    a1 = eigvec[:, candidates[np.argmin(np.abs(np.real(eigval[candidates])))]]
    return np.concatenate([a1, t @ a1])


def fit_ellipse(points, weights=None, refine: bool = True) -> Ellipse:
    """Least-squares ellipse through points (N, 2) (x, y) in pixels.

    The direct algebraic fit (Fitzgibbon et al. 1999; Halíř & Flusser 1998) on centred, scaled points
    gives the ellipse; with ``refine`` a few Levenberg–Marquardt steps then minimise the (Sampson)
    geometric distances, which removes the algebraic fit's bias towards small ellipses on short arcs and
    noisy points. ``weights`` (N,) ≥ 0 weight the points. Raises :class:`DDICInputError` for fewer than 5
    points or points that determine no ellipse (collinear, a hyperbola, …).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise DDICInputError(f"Ellipse fitting needs points as an (N, 2) array of (x, y), got shape {p.shape}.")
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    keep = np.all(np.isfinite(p), axis=1)
    if w is not None:
        if w.shape[0] != p.shape[0]:
            raise DDICInputError(f"{w.shape[0]} weights for {p.shape[0]} points.")
        keep &= np.isfinite(w) & (w > 0)
        w = w[keep]
    p = p[keep]
    unique = np.unique(np.round(p, 9), axis=0).shape[0] if p.size else 0
    if unique < 5:
        raise DDICInputError(
            f"An ellipse needs at least 5 distinct points, got {unique}. "
            "Fit from ≥ 5 points spread around the skull outline."
        )
    mean = p.mean(axis=0)
    scale = float(np.sqrt(np.mean(np.sum((p - mean) ** 2, axis=1))))
    if scale <= 0:
        raise DDICInputError("All points coincide; an ellipse needs points spread around the skull.")
    q = (p - mean) / scale
    try:
        coeffs = _direct_conic_fit(q[:, 0], q[:, 1], None if w is None else w / w.mean())
    except np.linalg.LinAlgError as exc:
        raise DDICInputError(
            f"The {len(p)} points determine no ellipse (they are collinear or otherwise degenerate). "
            "Fit from ≥ 5 points spread around the skull outline instead."
        ) from exc
    cx, cy, a, b, angle, valid = conics_to_ellipses(coeffs[None])
    if not valid[0]:
        raise DDICInputError(
            f"The {len(p)} points determine no ellipse (degenerate fit). "
            "Fit from ≥ 5 points spread around the skull outline instead."
        )
    params = np.array([cx[0], cy[0], a[0], b[0], math.radians(angle[0])])
    if refine and len(p) > 5:
        params = _refine_geometric(q, w, params)
    cx, cy, a, b, theta = params
    return Ellipse(cx * scale + mean[0], cy * scale + mean[1], a * scale, b * scale, math.degrees(theta))


def _sampson_residuals(q: np.ndarray, params: np.ndarray) -> np.ndarray:
    cx, cy, a, b, t = params
    c, s = math.cos(t), math.sin(t)
    dx, dy = q[:, 0] - cx, q[:, 1] - cy
    u = (dx * c + dy * s) / a
    v = (-dx * s + dy * c) / b
    f = u * u + v * v - 1.0
    grad = 2.0 * np.hypot(u / a, v / b)
    return f / np.maximum(grad, 1e-12)


def _refine_geometric(q: np.ndarray, w: np.ndarray | None, params: np.ndarray, iterations: int = 20
                      ) -> np.ndarray:
    """Levenberg–Marquardt on (cx, cy, a, b, θ) minimising Σ w·d² with d the Sampson distance."""
    sw = np.ones(len(q)) if w is None else np.sqrt(w / w.mean())
    x = params.astype(np.float64).copy()
    r = _sampson_residuals(q, x) * sw
    cost = float(r @ r)
    lam = 1e-3
    eps = 1e-7
    for _ in range(iterations):
        jac = np.empty((len(q), 5))
        for k in range(5):
            dx = np.zeros(5)
            dx[k] = eps
            jac[:, k] = (_sampson_residuals(q, x + dx) * sw - r) / eps
        jtj, jtr = jac.T @ jac, jac.T @ r
        improved = False
        for _ in range(8):
            step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jtr)
            trial = x + step
            if trial[2] <= 0 or trial[3] <= 0:
                lam *= 10.0
                continue
            r_trial = _sampson_residuals(q, trial) * sw
            cost_trial = float(r_trial @ r_trial)
            if cost_trial < cost:
                x, r, cost_old, cost = trial, r_trial, cost, cost_trial
                lam = max(lam / 10.0, 1e-9)
                improved = True
                break
            lam *= 10.0
        if not improved or abs(cost_old - cost) <= 1e-12 * max(cost_old, 1e-30):
            break
    return x


# ---------------------------------------------------------------------------------------------------------
# HC18 annotations


def annotation_points(mask_image) -> np.ndarray:
    """The (x, y) pixel coordinates of an annotation's outline (the drawn pixels' border).

    Accepts a (H, W) or (H, W, C) array, a :class:`ddic.io.images.Frame` or a path. Drawn pixels are those
    above half the image's maximum. A filled ellipse works too: only its border pixels are used.
    """
    pixels = _annotation_array(mask_image)
    peak = float(pixels.max()) if pixels.size else 0.0
    drawn = pixels > peak / 2.0 if peak > 0 else np.zeros(pixels.shape, dtype=bool)
    # keep pixels with a background 4-neighbour: a 1–2 px outline keeps (nearly) all its pixels, a filled
    # ellipse keeps its border
    padded = np.pad(drawn, 1, constant_values=False)
    interior = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2]
                & padded[1:-1, 2:])
    border = drawn & ~interior
    rows, cols = np.nonzero(border)
    return np.stack([cols, rows], axis=1).astype(np.float64)


def fit_annotation(mask_image) -> Ellipse:
    """The ellipse of an HC18 ``*_Annotation.png`` (a thin 0/255 outline), in pixels of that image."""
    points = annotation_points(mask_image)
    name = _describe(mask_image)
    if len(points) == 0:
        raise DDICInputError(
            f"The annotation {name} is empty (no drawn outline pixels). Use the matching *_Annotation.png "
            "of HC18 (a white ellipse outline on black) or leave the frame out."
        )
    try:
        return fit_ellipse(points)
    except DDICInputError as exc:
        raise DDICInputError(f"The annotation {name} holds no usable ellipse outline: {exc}") from exc


def _annotation_array(mask_image) -> np.ndarray:
    from ..io.images import Frame, read_frame

    if isinstance(mask_image, Frame):
        return mask_image.pixels
    if isinstance(mask_image, np.ndarray):
        array = np.asarray(mask_image, dtype=np.float64)
        if array.ndim == 3 and array.shape[-1] in (3, 4):
            array = array[..., :3].max(axis=-1)
        if array.ndim != 2:
            raise DDICInputError(f"An annotation must be a 2D image, got an array of shape {array.shape}.")
        return array
    return read_frame(mask_image).pixels


def _describe(mask_image) -> str:
    from ..io.images import Frame

    if isinstance(mask_image, Frame) and mask_image.path is not None:
        return str(mask_image.path)
    if isinstance(mask_image, np.ndarray):
        return f"image ({mask_image.shape[0]}×{mask_image.shape[1]})"
    return str(mask_image)


# ---------------------------------------------------------------------------------------------------------
# Automatic skull detection

DETECTION_SPACING_MM = 0.5
"""Working pixel size of the detector: finer frames are smoothed and resampled to it (a skull echo is
2–5 mm thick, so 0.5 mm keeps it 4–10 px wide while an 800×540 frame shrinks to a few hundred pixels)."""
RIDGE_SIGMA_MM = 1.0
"""Scale of the Hessian ridge filter (≈ the half-thickness of the skull echo)."""
DETECTION_HC_RANGE_MM = (100.0, 400.0)
DETECTION_AXIS_RATIO_RANGE = (0.6, 0.95)
INLIER_TOLERANCE_MM = 1.5
MIN_COVERAGE = 0.4
"""A detection needs a bright echo along at least this fraction of the 36 ten-degree sectors of the
ellipse (skull echoes drop out where the beam runs along them, so full coverage is not required)."""
ECHO_OFFSET_MM = 4.0
ECHO_CONTRAST = 0.1
RANSAC_HYPOTHESES = 2400
RANSAC_KEEP = 8
CENTRE_PEAKS = 2
"""Head-centre candidates from normal voting; each gets its own RANSAC on the ridge points facing it."""
"""The best distinct RANSAC ellipses (by inlier weight) that are refined and ranked by echo evidence."""
MAX_CANDIDATES = 2500
OUTER_SECTORS = 72
"""``boundary="outer"``: the centre-line ellipse is cut into this many sectors (5°, parametric angle) whose
mean intensity profiles locate the skull's specular echo (see :func:`_outer_skull`)."""
OUTER_SEARCH_MM = 4.0
"""Profiles reach this far in and out of the centre line (the bone and scalp band is ≈ 5 mm thick)."""
OUTER_PROFILE_SMOOTHING_MM = 0.2
OUTER_MIN_BEAM_COS = 0.5
"""Sectors whose normal is within 60° of the beam (vertical) show the specular bone echo; the others
(the beam runs along the skull) are left out."""
OUTER_MIN_SECTORS = 4
"""Sectors needed on each side (near and far); with fewer the outer boundary is the centre line grown
by half the bone thickness."""
OUTER_RESIDUAL_MM = 1.0

_FAIL_ADVICE = ("Fit from ≥ 5 points on the skull instead (e.g. mark points on the outer skull outline "
                "and use fit_ellipse), or give the HC18 annotation.")


class SkullDetection(NamedTuple):
    """An automatic skull fit: the ellipse (frame pixels), a confidence in [0, 1] and its diagnostics."""

    ellipse: Ellipse
    confidence: float
    coverage: float  # fraction of the 36 ten-degree sectors of the ellipse that are a bright echo
    residual_mm: float  # RMS distance of the inlier points to the ellipse
    n_points: int  # inlier ridge points
    hc_mm: float


def detect_skull_ellipse(frame_pixels, pixel_size_mm: float, *, boundary: str = "outer",
                         seed: int = 0) -> SkullDetection:
    """Find the skull echo of a transthalamic US frame and fit an ellipse to it (no annotation needed).

    1. The frame is smoothed and resampled to :data:`DETECTION_SPACING_MM` and scaled to its 1–99.5 %
       intensity percentiles; pixels near the edge of the imaged sector (or of the frame) are ignored.
    2. **Bright ridges**: the Hessian at :data:`RIDGE_SIGMA_MM` gives ridge strength max(0, −λ₁ − |λ₂|)
       (bright lines, not blobs); non-maximum suppression across the ridge keeps one-pixel centre lines;
       the strongest :data:`MAX_CANDIDATES` centre-line pixels are the candidate skull points.
    3. **Centre votes**: each candidate votes, ∝ its strength, along its ridge normal at the distances a
       head's semi-axes allow; the strongest :data:`CENTRE_PEAKS` maxima of the smoothed vote map are
       likely head centres (skull points face the centre, clutter does not agree on one).
    4. **RANSAC**: exact conics through random 5-point samples (drawn ∝ ridge strength) of all
       candidates, and separately of the candidates facing each likely centre (a much cleaner set), kept
       only when plausible as a head (HC in :data:`DETECTION_HC_RANGE_MM`, b/a in
       :data:`DETECTION_AXIS_RATIO_RANGE`, centre inside the frame) and scored by the summed strength of
       all candidates within :data:`INLIER_TOLERANCE_MM`; the :data:`RANSAC_KEEP` best distinct ellipses
       of each run are refitted on their inliers.
    5. **Echo evidence** ranks them: along 36 sectors the ellipse must be brighter than the curves
       :data:`ECHO_OFFSET_MM` inside and outside it (see :func:`_echo_evidence`); the winner is refitted
       with geometric refinement (:func:`fit_ellipse`).
    6. **Checks**: plausibility again, and echo coverage ≥ :data:`MIN_COVERAGE` (skull echoes drop out
       where the beam runs along them, so full coverage is not required; random speckle ridges never
       reach it).
    7. **Outer surface** (``boundary="outer"``): per sector, the brightest point of the skull echo is
       the first bone surface along the beam — outer on the near side, inner on the far side, where one
       Wong-law bone thickness is added; a robust fit of a growth plus a centre shift to these offsets
       moves the centre line onto the outer skull (:func:`_outer_skull`). Assumes the probe at the top
       of the frame (HC18 and the phantom).

    ``boundary="outer"`` (the default) returns the outer skull surface — the HC18 / INTERGROWTH HC
    convention and the ellipse :class:`ddic.geometry.head.CanonicalHeadTransform` expects — located from
    the bone's specular echo on the near and far side and the bone thickness (see :func:`_outer_skull`);
    ``"centre"`` returns the centre line of the skull echo (whose depth in the bone differs between the
    near and the far side: ≈ 2–5 % below the outer HC on the phantom).
    *[?]* That HC18's annotations follow the outer surface is to be confirmed on real frames.

    ``confidence`` = coverage × exp(−½ (rms / tolerance)²). Raises :class:`DDICInputError` with advice when
    no plausible skull ellipse is found.
    """
    if boundary not in ("centre", "outer"):
        raise DDICInputError(f"boundary must be 'centre' or 'outer', got {boundary!r}.")
    pixel_size = _positive_pixel_size(pixel_size_mm)
    frame = _grayscale(frame_pixels)
    work, spacing = _working_image(frame, pixel_size)
    scale = spacing / pixel_size  # working pixel → frame pixel
    lo, hi = np.percentile(work, [1.0, 99.5])
    if not hi > lo:
        raise DDICInputError("The frame is blank (no intensity variation); no skull can be detected. "
                             + _FAIL_ADVICE)
    image = np.clip((work - lo) / (hi - lo), 0.0, 1.0)
    valid = _interior_of_sector(work, lo, margin_px=math.ceil(3.0 * RIDGE_SIGMA_MM / spacing) + 1)

    sigma = max(RIDGE_SIGMA_MM / spacing, 1.0)
    strength, normal = _ridges(image, sigma)
    strength[~valid] = 0.0
    centre_line = _non_max_suppression(strength, normal) & (strength > 0)
    ys, xs = np.nonzero(centre_line)
    values = strength[ys, xs]
    if values.size < 5:
        raise DDICInputError("No bright skull echo found in the frame. " + _FAIL_ADVICE)
    order = np.argsort(values)[::-1][:MAX_CANDIDATES]
    pts = np.stack([xs[order], ys[order]], axis=1).astype(np.float64)
    wts = values[order] / values[order].max()
    normals = normal[ys[order], xs[order]]

    tol = INLIER_TOLERANCE_MM / spacing
    h, w = image.shape
    rng = np.random.default_rng(seed)
    hypotheses = _ransac(pts, wts, tol, spacing, (w, h), rng)
    for centre in _centre_votes(pts, normals, wts, spacing, image.shape):
        near = _facing(pts, normals, centre, spacing)
        if near.sum() >= 10:
            hypotheses += _ransac(pts[near], wts[near], tol, spacing, (w, h), rng, all_points=(pts, wts))
    if not hypotheses:
        raise DDICInputError("No plausible head ellipse (HC 100–400 mm, axis ratio 0.6–0.95) among the "
                             "bright echoes of the frame. " + _FAIL_ADVICE)
    g, _, _ = _gaussian_kernels(max(0.5 / spacing, 0.5))  # 0.5 mm: tames speckle, barely widens the echo
    smooth = _convolve_axis(_convolve_axis(image, g, 1), g, 0)
    best = None
    for hypothesis in hypotheses:
        ellipse = _refit(hypothesis, pts, wts, tol, refine=False)  # algebraic refits rank well enough
        if not _plausible(ellipse.hc_mm(spacing), ellipse.axis_ratio):
            continue
        evidence, _ = _echo_evidence(smooth, ellipse, spacing)
        if best is None or evidence > best[0]:
            best = (evidence, ellipse)
    if best is not None:  # the winner gets the geometric refinement
        ellipse = _refit(best[1], pts, wts, tol)
        if not _plausible(ellipse.hc_mm(spacing), ellipse.axis_ratio):
            ellipse = best[1]
    else:
        e = _refit(hypotheses[0], pts, wts, tol)
        raise DDICInputError(
            f"The best skull candidate is implausible as a head (HC {e.hc_mm(spacing):.0f} mm, axis ratio "
            f"{e.axis_ratio:.2f}). " + _FAIL_ADVICE)
    _, coverage = _echo_evidence(smooth, ellipse, spacing)
    inliers = np.abs(ellipse.distance(pts)) < tol
    residual_px = float(np.sqrt(np.mean(ellipse.distance(pts[inliers]) ** 2))) if inliers.any() else tol
    residual_mm = residual_px * spacing
    if coverage < MIN_COVERAGE:
        raise DDICInputError(
            f"The skull echo found covers only {coverage:.0%} of the head outline (need "
            f"{MIN_COVERAGE:.0%}). " + _FAIL_ADVICE)
    confidence = coverage * math.exp(-0.5 * (residual_mm / INLIER_TOLERANCE_MM) ** 2)
    in_frame = ellipse.scaled(scale)
    if boundary == "outer":
        in_frame = _outer_skull(frame, in_frame, pixel_size, valid, scale)
    return SkullDetection(ellipse=in_frame, confidence=float(confidence), coverage=float(coverage),
                          residual_mm=residual_mm, n_points=int(inliers.sum()),
                          hc_mm=in_frame.hc_mm(pixel_size))


def _refit(ellipse: Ellipse, pts: np.ndarray, wts: np.ndarray, tol: float, rounds: int = 3,
           refine: bool = True) -> Ellipse:
    """Refit (weighted least squares, see :func:`fit_ellipse`) on the points within ``tol``, ``rounds``
    times."""
    for _ in range(rounds):
        inliers = np.abs(ellipse.distance(pts)) < tol
        if inliers.sum() < 6:
            break
        try:
            ellipse = fit_ellipse(pts[inliers], wts[inliers], refine=refine)
        except DDICInputError:
            break
    return ellipse


def _echo_evidence(smooth: np.ndarray, ellipse: Ellipse, spacing: float) -> tuple[float, float]:
    """How much of ``ellipse`` is a bright echo in the (lightly smoothed, normalised) image.

    Along 36 ten-degree sectors (parametric angle) the contrast is the mean of the image on the ellipse
    minus the mean on the parallel curves :data:`ECHO_OFFSET_MM` inside and outside. Returns
    (evidence, coverage): evidence = mean over sectors of the contrast clipped to [0, 2·ECHO_CONTRAST]
    (so a few very bright echoes, e.g. a maternal wall, cannot outweigh a whole skull), used to rank
    candidates; coverage = fraction of sectors with contrast ≥ :data:`ECHO_CONTRAST` (random speckle
    ridges never give that).
    """
    offset = ECHO_OFFSET_MM / spacing
    if ellipse.b <= offset:
        return 0.0, 0.0
    n = 36 * 20
    on = sample_bilinear(smooth, *ellipse.points(n).T)
    inner = sample_bilinear(smooth, *ellipse.offset(-offset).points(n).T)
    outer_pts = ellipse.offset(offset).points(n)
    outer = sample_bilinear(smooth, *outer_pts.T)
    h, w = smooth.shape
    seen = (outer_pts[:, 0] >= 0) & (outer_pts[:, 0] <= w - 1) & (outer_pts[:, 1] >= 0) & \
        (outer_pts[:, 1] <= h - 1)
    contrast = np.where(seen, on - 0.5 * (inner + outer), 0.0).reshape(36, 20).mean(axis=1)
    evidence = float(np.mean(np.clip(contrast, 0.0, 2.0 * ECHO_CONTRAST)))
    return evidence, float(np.mean(contrast >= ECHO_CONTRAST))


def _plausible(hc_mm, ratio):
    lo, hi = DETECTION_HC_RANGE_MM
    rlo, rhi = DETECTION_AXIS_RATIO_RANGE
    return (hc_mm >= lo) & (hc_mm <= hi) & (ratio >= rlo) & (ratio <= rhi)


def _grayscale(frame_pixels) -> np.ndarray:
    array = np.asarray(frame_pixels, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3] @ np.array([0.299, 0.587, 0.114])
    if array.ndim != 2:
        raise DDICInputError(f"Skull detection needs a 2D grayscale frame, got shape {array.shape}.")
    if min(array.shape) < 16:
        raise DDICInputError(f"The frame ({array.shape[1]}×{array.shape[0]} px) is too small for skull "
                             "detection.")
    return np.nan_to_num(array)


def _working_image(frame: np.ndarray, pixel_size: float) -> tuple[np.ndarray, float]:
    """The frame smoothed and resampled to the detector's working spacing (never upsampled).

    Working pixel (i, j) sits at frame pixel (i, j)·spacing/pixel_size, so coordinates scale exactly.
    """
    if pixel_size >= DETECTION_SPACING_MM * 0.95:
        return frame, pixel_size
    import SimpleITK as sitk

    spacing = DETECTION_SPACING_MM
    image = sitk.GetImageFromArray(frame.astype(np.float32))
    image.SetSpacing((pixel_size, pixel_size))
    image = sitk.SmoothingRecursiveGaussian(image, 0.5 * spacing)  # anti-aliasing
    h, w = frame.shape
    size = [int((w - 1) * pixel_size / spacing) + 1, int((h - 1) * pixel_size / spacing) + 1]
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, (0.0, 0.0), (spacing, spacing),
                        (1.0, 0.0, 0.0, 1.0), 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).astype(np.float64), spacing


def _box_mean(mask: np.ndarray, radius: int) -> np.ndarray:
    """Mean of ``mask`` over a (2r+1)² window (outside the image counts as 0), via an integral image."""
    m = np.pad(mask.astype(np.float64), radius + 1)
    c = m.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s[: mask.shape[0], : mask.shape[1]] / (k * k)


def _interior_of_sector(work: np.ndarray, low: float, margin_px: int) -> np.ndarray:
    """Pixels at least ``margin_px`` inside the imaged area (the sector of a B-mode capture, whose
    outside is uniform black) and inside the frame: ridge responses at those borders are not skull."""
    imaged = work > max(low, float(work.min())) + 1e-6
    # close small speckle holes inside the sector before measuring the distance to its border
    imaged = _box_mean(imaged, 2) > 0.3
    return _box_mean(imaged, margin_px) > 0.999


def _gaussian_kernels(sigma: float):
    radius = math.ceil(4.0 * sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    g1 = -x / sigma**2 * g
    g2 = (x * x / sigma**4 - 1.0 / sigma**2) * g
    return g, g1, g2


def _convolve_axis(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Correlation with a symmetric/antisymmetric 1D kernel along ``axis`` (edge values extended)."""
    r = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    padded = np.pad(image, pad, mode="edge")
    out = np.zeros_like(image)
    n = image.shape[axis]
    for k, weight in enumerate(kernel[::-1]):  # convolution: kernel reversed
        sl = [slice(None), slice(None)]
        sl[axis] = slice(k, k + n)
        out += weight * padded[tuple(sl)]
    return out


def _ridges(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Bright-ridge strength (scale-normalised) and the unit normal across the ridge, per pixel."""
    g, g1, g2 = _gaussian_kernels(sigma)
    ixx = _convolve_axis(_convolve_axis(image, g2, 1), g, 0)
    iyy = _convolve_axis(_convolve_axis(image, g, 1), g2, 0)
    ixy = _convolve_axis(_convolve_axis(image, g1, 1), g1, 0)
    half_trace = 0.5 * (ixx + iyy)
    root = np.sqrt((0.5 * (ixx - iyy)) ** 2 + ixy**2)
    lam1, lam2 = half_trace - root, half_trace + root  # lam1 ≤ lam2
    strength = np.maximum(0.0, -lam1 - np.abs(lam2)) * sigma**2
    # eigenvector of lam1: (ixy, lam1 − ixx) or (lam1 − iyy, ixy), whichever is better conditioned
    v1 = np.stack([ixy, lam1 - ixx], axis=-1)
    v2 = np.stack([lam1 - iyy, ixy], axis=-1)
    use2 = np.sum(v2 * v2, axis=-1) > np.sum(v1 * v1, axis=-1)
    v = np.where(use2[..., None], v2, v1)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    v = np.where(norm > 1e-12, v / np.maximum(norm, 1e-12), np.array([1.0, 0.0]))
    return strength, v  # v[..., 0] = x component, v[..., 1] = y component


def _non_max_suppression(strength: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Pixels whose ridge strength is a maximum across the ridge (± one pixel along the normal)."""
    h, w = strength.shape
    yy, xx = np.mgrid[0:h, 0:w]
    keep = np.ones((h, w), dtype=bool)
    for sign in (1.0, -1.0):
        nx = np.clip(np.rint(xx + sign * normal[..., 0]).astype(int), 0, w - 1)
        ny = np.clip(np.rint(yy + sign * normal[..., 1]).astype(int), 0, h - 1)
        keep &= strength >= strength[ny, nx]
    return keep


def _five_point_conics(samples: np.ndarray) -> np.ndarray:
    """(K, 5, 2) point sets → (K, 6) conics through them (null vector of the 5×6 design matrix)."""
    x, y = samples[..., 0], samples[..., 1]
    design = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], axis=-1)
    _, _, vt = np.linalg.svd(design, full_matrices=True)
    return vt[:, -1, :]


def _ransac(pts, wts, tol, spacing, frame_wh, rng, keep: int = RANSAC_KEEP, all_points=None
            ) -> list[Ellipse]:
    """Plausible ellipses through random 5-point samples of ``pts``, the ``keep`` best distinct ones by
    the summed weight of their inlier points (among ``all_points`` = (points, weights) if given), best
    first."""
    score_pts, score_wts = all_points if all_points is not None else (pts, wts)
    mean = pts.mean(axis=0)
    scale = float(np.sqrt(np.mean(np.sum((pts - mean) ** 2, axis=1)))) or 1.0
    q = (pts - mean) / scale
    prob = wts / wts.sum()
    w, h = frame_wh
    chunk = 400
    found_scores, found_params = [], []
    for start in range(0, RANSAC_HYPOTHESES, chunk):
        k = min(chunk, RANSAC_HYPOTHESES - start)
        idx = rng.choice(len(q), size=(k, 5), p=prob)  # a repeated point only wastes the hypothesis
        conics = _five_point_conics(q[idx])
        cx, cy, a, b, angle, valid = conics_to_ellipses(conics)
        cx, cy, a, b = cx * scale + mean[0], cy * scale + mean[1], a * scale, b * scale
        with np.errstate(invalid="ignore"):
            hc = ramanujan_perimeter(a, b) * spacing
            valid &= _plausible(hc, b / a)
            valid &= (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
        sel = np.flatnonzero(valid)
        if sel.size == 0:
            continue
        found_scores.append(_inlier_scores(score_pts, score_wts, cx[sel], cy[sel], a[sel], b[sel], angle[sel],
                                           tol))
        found_params.append(np.stack([cx[sel], cy[sel], a[sel], b[sel], angle[sel]], axis=1))
    if not found_scores:
        return []
    scores, params = np.concatenate(found_scores), np.concatenate(found_params)
    chosen: list[np.ndarray] = []
    for i in np.argsort(scores)[::-1]:  # the best first, skipping repeats of an ellipse already chosen
        p = params[i]
        if all(math.hypot(p[0] - c[0], p[1] - c[1]) >= 3 * tol or abs(p[2] - c[2]) >= 3 * tol
               or abs(p[3] - c[3]) >= 3 * tol for c in chosen):
            chosen.append(p)
            if len(chosen) >= keep:
                break
    return [Ellipse(*p) for p in chosen]


def _head_radius_range_px(spacing: float) -> tuple[float, float]:
    """Smallest semi-minor and largest semi-major axis (working pixels) of a plausible head ellipse."""
    lo, hi = DETECTION_HC_RANGE_MM
    rlo, rhi = DETECTION_AXIS_RATIO_RANGE
    b_min = semi_axes_for_circumference(lo, rlo)[1]
    a_max = semi_axes_for_circumference(hi, rhi)[0]
    return b_min / spacing, a_max / spacing


def _centre_votes(pts, normals, wts, spacing, shape, peaks: int = CENTRE_PEAKS) -> list[np.ndarray]:
    """Likely head centres: every ridge point votes (∝ its strength) along its normal, both ways, at the
    distances a head's semi-axes allow; the ``peaks`` strongest maxima of the smoothed vote map (at least
    15 mm apart). Skull points face the centre (exactly at the ends of the axes, roughly elsewhere), so
    their votes pile up there while clutter's spread out."""
    h, w = shape
    r_min, r_max = _head_radius_range_px(spacing)
    radii = np.arange(r_min, r_max, 1.0)
    acc = np.zeros(h * w)
    for sign in (1.0, -1.0):
        vx = np.rint(pts[:, 0, None] + sign * radii[None, :] * normals[:, 0, None]).astype(int)
        vy = np.rint(pts[:, 1, None] + sign * radii[None, :] * normals[:, 1, None]).astype(int)
        ok = (vx >= 0) & (vx < w) & (vy >= 0) & (vy < h)
        weights = np.broadcast_to(wts[:, None], vx.shape)[ok]
        acc += np.bincount((vy * w + vx)[ok], weights=weights, minlength=h * w)
    g, _, _ = _gaussian_kernels(max(3.0 / spacing, 1.0))
    acc = _convolve_axis(_convolve_axis(acc.reshape(h, w), g, 1), g, 0)
    centres: list[np.ndarray] = []
    separation = 15.0 / spacing
    for index in np.argsort(acc.ravel())[::-1][: 50 * peaks * peaks]:
        c = np.array([index % w, index // w], dtype=np.float64)
        if all(np.hypot(*(c - other)) >= separation for other in centres):
            centres.append(c)
            if len(centres) >= peaks:
                break
    return centres


def _facing(pts, normals, centre, spacing, max_angle_deg: float = 35.0) -> np.ndarray:
    """Points at a head-like distance from ``centre`` whose ridge normal points at it (± max_angle)."""
    r_min, r_max = _head_radius_range_px(spacing)
    d = centre - pts
    r = np.hypot(d[:, 0], d[:, 1])
    cos = np.abs(np.sum(d * normals, axis=1)) / np.maximum(r, 1e-9)
    return (r >= r_min) & (r <= r_max) & (cos >= math.cos(math.radians(max_angle_deg)))


def _inlier_scores(pts, wts, cx, cy, a, b, angle_deg, tol) -> np.ndarray:
    """Summed weight of the points within ``tol`` (Sampson distance) of each of K ellipses → (K,)."""
    t = np.radians(angle_deg)[:, None]
    dx, dy = pts[None, :, 0] - cx[:, None], pts[None, :, 1] - cy[:, None]
    u = (dx * np.cos(t) + dy * np.sin(t)) / a[:, None]
    v = (-dx * np.sin(t) + dy * np.cos(t)) / b[:, None]
    f = u * u + v * v - 1.0
    grad = 2.0 * np.hypot(u / a[:, None], v / b[:, None])
    near = np.abs(f) < tol * np.maximum(grad, 1e-12)
    return near.astype(np.float64) @ wts


def _outer_skull(frame: np.ndarray, ellipse: Ellipse, pixel_size: float, valid: np.ndarray,
                 scale: float) -> Ellipse:
    """The outer skull surface, from the centre-line ellipse (frame pixels) of the skull echo.

    Physics (``shared/docs/anatomy.md`` §3.1, §4; the phantom's renderer does the same): the brightest part of
    a skull echo is the specular reflection of the *first* bone surface the beam meets — the outer
    surface on the side near the probe, the inner surface on the far side; the second surface is
    weaker (bone attenuation) and the scalp above the near-side bone is echogenic too, so the echo's
    centre line sits at a different depth in the bone on each side and its half-height edges include
    the scalp. Here, along the ellipse normals of :data:`OUTER_SECTORS` sectors, the mean profile of the
    frame (± :data:`OUTER_SEARCH_MM`) gives the brightest point of each sector; sectors facing the probe
    (normal within 60° of the beam, the probe at the top of the frame as in HC18) put the outer surface
    there, sectors facing away put it one bone thickness further out (Wong 2018 law,
    :func:`ddic.geometry.skull.skull_thickness_from_bpd_mm`, with BPD(outer–inner) ≈ 2·b of the centre
    line). Sectors along the beam (no specular echo) are left out. A robust least-squares fit of
    offset = δ + n·s (a uniform growth δ and a centre shift s) to the sector offsets gives the outer
    ellipse. With too few sectors on either side it falls back to the centre line grown by half the
    bone thickness.
    """
    thickness_mm = float(skull_thickness_from_bpd_mm(2.0 * ellipse.b * pixel_size))
    fallback = ellipse.offset(0.5 * thickness_mm / pixel_size)
    per_sector = 10
    n = OUTER_SECTORS * per_sector
    points = ellipse.points(n)
    local = ellipse.to_local(points)
    n_local = np.stack([local[:, 0] / ellipse.a**2, local[:, 1] / ellipse.b**2], axis=1)
    n_local /= np.maximum(np.linalg.norm(n_local, axis=1, keepdims=True), 1e-12)
    normals = n_local @ np.stack([ellipse.major_axis, ellipse.minor_axis])  # outward, frame axes
    step_mm = 0.1
    steps_mm = np.arange(-OUTER_SEARCH_MM, OUTER_SEARCH_MM + 0.5 * step_mm, step_mm)
    xs = points[:, 0, None] + normals[:, 0, None] * steps_mm[None, :] / pixel_size
    ys = points[:, 1, None] + normals[:, 1, None] * steps_mm[None, :] / pixel_size
    h, w = frame.shape
    inside = np.all((xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1), axis=1)
    vh, vw = valid.shape
    vi = np.clip(np.rint(ys / scale).astype(int), 0, vh - 1)
    vj = np.clip(np.rint(xs / scale).astype(int), 0, vw - 1)
    inside &= np.all(valid[vi, vj], axis=1)  # the whole profile inside the imaged sector
    profiles = sample_bilinear(frame, xs.ravel(), ys.ravel()).reshape(xs.shape)
    g, _, _ = _gaussian_kernels(OUTER_PROFILE_SMOOTHING_MM / step_mm)
    r = len(g) // 2
    rows = []
    for k in range(OUTER_SECTORS):
        sel = slice(k * per_sector, (k + 1) * per_sector)
        if inside[sel].sum() < per_sector // 2:
            continue
        normal = normals[sel][inside[sel]].mean(axis=0)
        normal /= max(float(np.linalg.norm(normal)), 1e-12)
        facing = float(normal[1])  # beam direction ≈ +y: < 0 faces the probe (near side), > 0 away
        if abs(facing) < OUTER_MIN_BEAM_COS:
            continue
        profile = np.convolve(profiles[sel][inside[sel]].mean(axis=0), g, mode="same")
        i = r + int(np.argmax(profile[r:len(profile) - r]))  # ignore the zero-padded ends
        peak = steps_mm[i]
        if 0 < i < len(profile) - 1:  # parabolic sub-sample peak
            curvature = profile[i - 1] - 2.0 * profile[i] + profile[i + 1]
            if curvature < 0:
                peak += 0.5 * (profile[i - 1] - profile[i + 1]) / curvature * step_mm
        rows.append((normal[0], normal[1], peak + (thickness_mm if facing > 0 else 0.0)))
    table = np.array(rows).reshape(-1, 3)

    def both_sides(keep: np.ndarray) -> bool:  # near and far sectors: growth and shift separable
        facing = table[keep, 1]
        return bool(np.sum(facing < 0) >= OUTER_MIN_SECTORS and np.sum(facing > 0) >= OUTER_MIN_SECTORS)

    keep = np.ones(len(table), dtype=bool)
    if not both_sides(keep):
        return fallback
    design = np.stack([np.ones(len(table)), table[:, 0], table[:, 1]], axis=1)
    for _ in range(4):  # drop sectors whose peak is another echo (residual beyond the skull's own scale)
        solution = np.linalg.lstsq(design[keep], table[keep, 2], rcond=None)[0]
        residual = np.abs(table[:, 2] - design @ solution)
        keep = residual <= max(OUTER_RESIDUAL_MM, 2.5 * float(np.median(residual)))
        if not both_sides(keep):
            return fallback
    delta, sx, sy = np.linalg.lstsq(design[keep], table[keep, 2], rcond=None)[0] / pixel_size
    return Ellipse(ellipse.cx + sx, ellipse.cy + sy, ellipse.a + delta, ellipse.b + delta, ellipse.angle_deg)


def sample_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2D array at continuous (x = column, y = row) positions (clamped to it)."""
    h, w = image.shape
    xs = np.clip(np.asarray(xs, dtype=np.float64), 0.0, w - 1.0)
    ys = np.clip(np.asarray(ys, dtype=np.float64), 0.0, h - 1.0)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 2)
    fx, fy = xs - x0, ys - y0
    return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
            + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])
