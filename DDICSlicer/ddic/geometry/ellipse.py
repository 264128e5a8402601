"""The head ellipse: its parameters, circumference (HC) and least-squares fitting (to points, to an annotation).

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

Finding the ellipse in a frame without an annotation is :mod:`ddic.geometry.skull_detection`'s job; this
module is the record and the fits every part of ``ddic`` shares. Only numpy is used at run time (and
:mod:`ddic.io.images` to read an annotation given as a path).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DDICInputError

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
        return self.circumference * positive_pixel_size(pixel_size_mm)

    # ---- units
    def scaled(self, factor: float) -> Ellipse:
        """The same ellipse with every length (centre included) multiplied by ``factor``."""
        f = float(factor)
        return Ellipse(self.cx * f, self.cy * f, self.a * f, self.b * f, self.angle_deg)

    def to_mm(self, pixel_size_mm: float) -> Ellipse:
        """Pixels → mm (centre measured from the centre of pixel (0, 0), as in HC18)."""
        return self.scaled(positive_pixel_size(pixel_size_mm))

    @classmethod
    def from_mm(cls, ellipse_mm: Ellipse, pixel_size_mm: float) -> Ellipse:
        """mm → pixels (the inverse of :meth:`to_mm`)."""
        return ellipse_mm.scaled(1.0 / positive_pixel_size(pixel_size_mm))

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


def positive_pixel_size(pixel_size_mm: float) -> float:
    """``pixel_size_mm`` as a float, or :class:`DDICInputError` unless it is a positive finite number."""
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
