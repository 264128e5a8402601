"""B-mode ultrasound renderer of the digital fetal-head phantom (``shared/docs/anatomy.md`` §3.1, §4, §7.1).

:func:`render_ultrasound` turns any phantom label map (2D, :class:`~ddic.data.labels.Label` ids, isotropic
spacing) plus its outer-skull ellipse into an HC18-like frame: 800 × 540 px, a curvilinear sector with its
apex at the top, black outside the sector, a pixel size in HC18's range (0.052–0.326 mm). It also returns
the scan-converted label map (the US ground truth), the HC18 annotation image (the skull ellipse outline),
and the frame ↔ label-map geometry, so that a paired canonical image can be made from the same labels.
:func:`~ddic.data.phantom.hc18_files.write_hc18_case` writes a case in the HC18 layout.

Pipeline (all in the polar beam domain, depth × line, then scan conversion; anatomy.md §4.2):

1. *Geometry.* A convex probe of radius R with a sector of 60–80°; the head (random in-plane rotation of
   ±25°, a 180° turn, a mirror — the plane seen from either side —, lateral offset, depth) lies below a
   layered maternal wall and a gap of amniotic fluid. The label map is sampled along the beams.
2. *Scatterers.* One Gaussian amplitude per sample, scaled by the tissue's backscatter
   (:mod:`ddic.data.phantom.echogenicity`), with a low-frequency multiplicative texture in soft tissue.
3. *Specular interfaces* at impedance changes along each beam, R·|cos θ_inc|^n (bright skull where it is
   perpendicular to the beam, faint where tangent), coherent so lines stay crisp.
4. *Propagation losses.* Two-way attenuation (2·Σα·f0·dr) and the transmission loss of every interface
   (1 − R²): posterior shadowing behind the bone, darker far field, enhancement behind fluid.
5. *Near-field artefacts.* Ring-down copies of the proximal skull echo; haze inside the head from the
   *first* skull crossing to the midline — extra scatterers under a blotchy envelope (≈ 3 mm × 1–2 beam
   widths), +3…+8 dB over parenchyma at the bone, decaying onto a floor and fading out at the midline — so
   the proximal hemisphere is obscured (anechoic structures filled in, lower contrast); maternal-wall
   reverberation at 2× and 3× depth, only in fluid; side-lobe clutter (a wide, weak lateral PSF tail);
   electronic noise ≈ 90 dB below the skull echo as received, amplified by the TGC with depth.
6. *PSF and envelope* (:mod:`ddic.data.phantom.speckle`): lateral Gaussian growing away from the focus,
   axial Gaussian-modulated cosine at f0, envelope of the analytic signal along depth.
7. *TGC, auto-gain, log compression* to 8 bits over a 45–65 dB dynamic range, gamma.
8. *Scan conversion* (bilinear) to 800 × 540 px; optional light smoothing.

Where each stage lives (each module says why it is apart):

* :mod:`~ddic.data.phantom.acquisition` — the settings' ranges and every random choice of a frame (step 1's
  pose and window included), recorded in an :class:`~ddic.data.phantom.acquisition.Acquisition`;
* :mod:`~ddic.data.phantom.scan_geometry` — the coordinate systems (label map, probe "world", beam grid,
  frame) and the maps between them, the head ellipse, the labels along the beams (step 1);
* :mod:`~ddic.data.phantom.echogenicity` — each tissue's backscatter, impedance and attenuation (step 2);
* :mod:`~ddic.data.phantom.speckle` — the scatterer map, its texture, the PSF and envelope (steps 2, 6);
* :mod:`~ddic.data.phantom.echoes` — specular echoes, shadowing, ring-down, reverberation, haze (3–5);
* :mod:`~ddic.data.phantom.beams` — the beam-domain pipeline in order, TGC and log compression (2–7);
* :mod:`~ddic.data.phantom.scan_conversion` — frame, labels and annotation on the frame grid (step 8);
* :mod:`~ddic.data.phantom.hc18_files` — :func:`~ddic.data.phantom.hc18_files.write_hc18_case` /
  :func:`~ddic.data.phantom.hc18_files.write_hc18_csv`, the HC18 layout;
* this module — the entry point: input checks, the stages in order, the :class:`UltrasoundFrame`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import DDICInputError
from ..labels import Label
from . import echogenicity as eg
from .acquisition import Acquisition, UltrasoundSettings, sample_acquisition
from .beams import BeamData, simulate_beams
from .scan_conversion import draw_ellipse_outline, scan_convert
from .scan_geometry import FRAME_HEIGHT_PX, FRAME_WIDTH_PX, FrameGeometry, HeadEllipse, HeadPlacement, frame_geometry


@dataclass
class UltrasoundFrame:
    """One rendered HC18-like frame and its ground truth."""

    image: np.ndarray  # (540, 800) uint8, 0 outside the sector
    labels: np.ndarray  # (540, 800) uint8 Label ids, 0 outside the sector
    annotation: np.ndarray  # (540, 800) uint8, the skull ellipse outline 0/255 (HC18 *_Annotation.png)
    sector_mask: np.ndarray  # (540, 800) bool
    geometry: FrameGeometry
    acquisition: Acquisition
    seed: int | None = None
    beam: BeamData | None = field(default=None, repr=False)

    @property
    def pixel_size_mm(self) -> float:
        return self.geometry.pixel_size_mm

    @property
    def head_circumference_mm(self) -> float:
        return self.geometry.head_circumference_mm


# ---------------------------------------------------------------------------------------------------------
# Input checks


def _check_labels(labels) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        try:
            labels = np.asarray(labels)
        except Exception as exc:  # noqa: BLE001 - anything unconvertible is a user input problem
            raise DDICInputError(f"The label map must be a 2D array, got {type(labels).__name__}.") from exc
    if labels.ndim != 2:
        raise DDICInputError(f"The label map must be 2D (rows, cols), got shape {labels.shape}. Render one "
                             "slice at a time.")
    if min(labels.shape) < 2:
        raise DDICInputError(f"The label map is too small: shape {labels.shape}.")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise DDICInputError(f"The label map must hold integer Label ids (uint8), got dtype {labels.dtype}.")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi > max(int(v) for v in Label):
        raise DDICInputError(f"Label ids must lie in 0…{max(int(v) for v in Label)} (ddic.data.labels.Label), "
                             f"got {lo}…{hi}.")
    return np.ascontiguousarray(labels, dtype=np.uint8)


def _check_spacing(spacing_mm) -> float:
    values = np.atleast_1d(np.asarray(spacing_mm, dtype=object))
    try:
        values = np.asarray([float(v) for v in values.ravel()])
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"The label spacing must be a positive number of mm, got {spacing_mm!r}.") from exc
    if values.size not in (1, 2) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DDICInputError(f"The label spacing must be a positive number of mm, got {spacing_mm!r}.")
    if values.size == 2 and abs(values[0] - values[1]) > 1e-6 * values.max():
        raise DDICInputError(f"The label spacing must be isotropic, got {tuple(values)}; resample first.")
    return float(values[0])


def _check_seed(seed) -> np.random.Generator:
    if isinstance(seed, bool):
        raise DDICInputError(f"The seed must be a non-negative integer, got {seed!r}.")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"The seed must be a non-negative integer, got {seed!r}.") from exc


# ---------------------------------------------------------------------------------------------------------
# Rendering


def render_ultrasound(labels, spacing_mm, ellipse, seed, settings: UltrasoundSettings | None = None
                      ) -> UltrasoundFrame:
    """Render one HC18-like B-mode frame of a phantom label map (see the module docstring).

    ``labels``: 2D integer array of :class:`~ddic.data.labels.Label` ids; ``spacing_mm``: its isotropic
    pixel spacing; ``ellipse``: its outer-skull :class:`~ddic.data.phantom.scan_geometry.HeadEllipse` (mm of
    the label map, or a mapping / 5-sequence of the same fields); ``seed``: the frame is a deterministic
    function of the inputs and the seed.
    """
    labels = _check_labels(labels)
    spacing = _check_spacing(spacing_mm)
    ellipse = HeadEllipse.coerce(ellipse)
    settings = (settings or UltrasoundSettings()).validate()
    rng = _check_seed(seed)
    n_ids = max(eg.RENDER_ONLY_IDS) + 1
    acq = sample_acquisition(settings, rng, ellipse, n_ids)
    placement = HeadPlacement((ellipse.center_x_mm, ellipse.center_y_mm), acq.head_center_world_mm,
                              math.radians(acq.rotation_deg), acq.mirrored)
    ids = eg.render_ids(labels, spacing)
    beam = simulate_beams(acq, placement, labels, ids, spacing, rng)
    image, frame_labels, sector = scan_convert(acq, placement, labels, spacing, beam)
    geometry = frame_geometry(acq, placement, ellipse, spacing)
    annotation = draw_ellipse_outline((FRAME_HEIGHT_PX, FRAME_WIDTH_PX), geometry.center_x_px,
                                      geometry.center_y_px, geometry.semi_axis_a_px, geometry.semi_axis_b_px,
                                      geometry.angle_deg)
    return UltrasoundFrame(image=image, labels=frame_labels, annotation=annotation, sector_mask=sector,
                           geometry=geometry, acquisition=acq, seed=seed if isinstance(seed, int) else None,
                           beam=beam if settings.keep_beam_data else None)
