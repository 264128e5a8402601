"""T2-weighted fetal MRI of the phantom (anatomy.md §3.2, §5); the FeTA files are written by ``feta_files``.

Why: the MRI domain needs images whose anatomy is *known* and can be paired with the ultrasound rendering
of the same label map. The model is the single-shot fast spin echo (HASTE / SS-FSE) of clinical fetal MRI:

1. *Contrast.* Each tissue has a proton density and a T2 (FaBiAN's 1.5 T table for GM / WM / CSF,
   design values for the rest, GA-dependent WM, thalamic and basal-ganglia T2, a T2-bright subplate
   band under the cortex until ≈ 28–30 w); signal S = PD·exp(−TE/T2) with TE drawn per image.
2. *Partial volume.* Signal is computed on the ``supersample``× finer label grid and area-averaged in plane;
   through-plane, 1-mm sub-planes across the slice thickness are averaged (3 for a 3-mm slice).
3. *Optional slice tilt.* The plane z(x, y) = z0 + x·tan τx + y·tan τy is assembled from labels rendered at
   0.75-mm offset levels.
4. *Bias field.* Smooth multiplicative (second-order polynomial in x, y, z), at most ±5–20 %.
5. *HASTE blur.* k-space truncation at the acquisition resolution (coarser along phase, raised-cosine
   roll-off), half-Fourier zero filling (or homodyne, at random) and the T2 decay over the echo train,
   exp(−ESP·|n|/T2) for phase line n.
6. *Noise.* Complex Gaussian, σ = WM signal / SNR, then magnitude: Rician (Rayleigh where there is no signal).

Intensities are in signal units (CSF ≈ 0.9–1, skull ≈ 0), float32. Arrays are (rows, cols) = (y, x) per
slice and (Z, Y, X) for volumes; physical frames are documented on :class:`VolumeInfo`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX, CANONICAL_SPACING_MM
from ..labels import BRAIN_LABELS, HEAD_LABELS, Label
from . import biometry as bio
from .anatomy import AnatomyParams, PhantomMetadata, mode_downsample, phantom_metadata, pixel_axes, render_labels

L = Label
Range = tuple[float, float]


# --------------------------------------------------------------------------------------------------
# Tissue relaxation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tissue:
    pd: float
    t2_ms: float

    def signal(self, te_ms: float) -> float:
        return self.pd * math.exp(-te_ms / self.t2_ms) if self.pd > 0 else 0.0


CSF = Tissue(1.0, 2000.0)  # FaBiAN tissue_to_MR.m, 1.5 T [S]
CORTEX = Tissue(0.80, 162.0)  # FaBiAN GM T2 [S]; PD [D] → 0.45 of CSF at TE 100 (§3.2 table 0.40–0.50)
SUBPLATE = Tissue(0.95, 450.0)  # [D] 0.75–0.85 of CSF (§3.2)
STATIC_TISSUES = {
    L.BACKGROUND: Tissue(0.0, 1.0),
    L.AMNIOTIC_FLUID: Tissue(1.0, 2500.0),
    L.MATERNAL_WALL: Tissue(0.70, 70.0),  # [D] 0.2–0.4 (muscle / myometrium)
    L.SCALP: Tissue(0.85, 120.0),  # [D] 0.3–0.5
    L.SKULL: Tissue(0.20, 60.0),  # [D] ≈ 0.05, signal void
    L.EXTRA_AXIAL_CSF: CSF, L.LATERAL_VENTRICLE: CSF, L.CAVUM_SEPTUM_PELLUCIDUM: CSF, L.THIRD_VENTRICLE: CSF,
    L.SYLVIAN_FISSURE: CSF, L.AMBIENT_CISTERN: CSF,
    L.CORTEX: CORTEX,
    L.CHOROID_PLEXUS: Tissue(0.75, 130.0),  # [D] 0.35–0.5, dark within bright CSF
    L.GERMINAL_MATRIX: Tissue(0.70, 110.0),  # [D] 0.30–0.35, darkest brain tissue
    L.FALX: Tissue(0.60, 120.0),  # [D] 0.3
}
WM_PD, THALAMUS_PD, BASAL_GANGLIA_PD = 0.90, 0.78, 0.80  # [D], T2 from biometry (GA-dependent)


def tissue_table(ga_effective_weeks: float) -> dict[int, Tissue]:
    """(PD, T2) of every label at this maturation (anatomy.md §3.2; WM T2 300 → 220 ms, thalami darken)."""
    table = {int(k): v for k, v in STATIC_TISSUES.items()}
    table[int(L.WHITE_MATTER)] = Tissue(WM_PD, float(bio.wm_t2_ms(ga_effective_weeks)))
    table[int(L.THALAMUS)] = Tissue(THALAMUS_PD, float(bio.thalamus_t2_ms(ga_effective_weeks)))
    table[int(L.BASAL_GANGLIA)] = Tissue(BASAL_GANGLIA_PD, float(bio.basal_ganglia_t2_ms(ga_effective_weeks)))
    return table


def signal_lut(ga_effective_weeks: float, te_ms: float) -> np.ndarray:
    """Signal per label id (256 entries) for a T2-weighted spin echo at ``te_ms``."""
    lut = np.zeros(256, dtype=np.float32)
    for label, tissue in tissue_table(ga_effective_weeks).items():
        lut[label] = tissue.signal(te_ms)
    return lut


# --------------------------------------------------------------------------------------------------
# Acquisition settings
# --------------------------------------------------------------------------------------------------

MASKS = ("none", "head", "brain")


@dataclass(frozen=True)
class MRIConfig:
    """Ranges the acquisition is drawn from (anatomy.md §5; [D] unless sourced there)."""

    te_ms: Range = (80.0, 140.0)  # §3.2: TE ~ U(80, 140) ms
    snr: Range = (15.0, 40.0)  # WM SNR ≈ 15–40
    add_noise: bool = True
    bias_amplitude: Range = (0.05, 0.20)  # ±5–20 %
    haste_blur: bool = True
    read_resolution_mm: Range = (0.9, 1.2)  # clinical in-plane 0.5–1.1 mm, FaBiAN 1.1 mm
    phase_resolution: Range = (0.65, 0.85)  # FaBiAN phase resolution 0.7
    partial_fourier: Range = (0.55, 0.65)  # half-Fourier ≈ 55–60 % of k-space
    homodyne_probability: float = 0.5  # else zero-filled half-Fourier (extra blur along phase)
    echo_spacing_ms: Range = (4.0, 10.0)  # 4.08 ms (1.5 T HASTE) … 10 ms (3 T SS-FSE)
    echo_train_t2_ms: float = 200.0  # effective T2 of the k-space decay filter (≈ brain tissue)
    kspace_taper: float = 0.3  # raised-cosine roll-off over the outer 30 % of the acquired k range (raw filter)
    tilt_deg_max: float = 0.0  # > 0: random plane tilt about both in-plane axes, U(−max, max)
    supersample: int = 4
    mask: str = "none"  # "brain" / "head": zero signal outside (brain-extracted data); noise still added


@dataclass(frozen=True)
class MRIAcquisition:
    """The realised settings of one image or volume (deterministic per seed)."""

    seed: int
    te_ms: float
    snr: float
    noise_sigma: float
    bias_amplitude: float
    bias_coefficients: tuple[float, ...]  # for x, y, z, x², y², z², xy, xz, yz in [−1, 1] box coordinates
    read_resolution_mm: float
    phase_resolution_mm: float
    partial_fourier: float
    homodyne: bool  # phase-corrected half-Fourier recon: for the real-valued phantom ≡ full k-space
    echo_spacing_ms: float
    echo_train_t2_ms: float
    kspace_taper: float
    phase_axis: str  # "x" (columns) or "y" (rows)
    tilt_deg: tuple[float, float]  # about the y axis (z grows with x), about the x axis (z grows with y)
    slice_thickness_mm: float
    supersample: int
    mask: str
    haste_blur: bool
    add_noise: bool

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bias_coefficients"] = list(self.bias_coefficients)
        out["tilt_deg"] = list(self.tilt_deg)
        return out


def sample_acquisition(params: AnatomyParams, seed: int, slice_thickness_mm: float,
                       config: MRIConfig | None = None) -> MRIAcquisition:
    cfg = config or MRIConfig()
    if cfg.mask not in MASKS:
        raise DDICInputError(f"MRIConfig.mask must be one of {MASKS}, not {cfg.mask!r}")
    if int(cfg.supersample) < 1:
        raise DDICInputError(f"MRIConfig.supersample must be ≥ 1, not {cfg.supersample}")
    if slice_thickness_mm <= 0:
        raise DDICInputError(f"slice thickness must be positive, not {slice_thickness_mm} mm")
    rng = np.random.default_rng([int(seed), 0x4D52])
    te = float(rng.uniform(*cfg.te_ms))
    snr = float(rng.uniform(*cfg.snr))
    wm = tissue_table(params.ga_effective_weeks)[int(L.WHITE_MATTER)].signal(te)
    amp = float(rng.uniform(*cfg.bias_amplitude))
    coef = rng.standard_normal(9)
    coef = coef / np.sum(np.abs(coef))
    read = float(rng.uniform(*cfg.read_resolution_mm))
    phase = read / float(rng.uniform(*cfg.phase_resolution))
    pf = float(rng.uniform(*cfg.partial_fourier))
    esp = float(rng.uniform(*cfg.echo_spacing_ms))
    axis = "y" if rng.random() < 0.5 else "x"
    tilt = (0.0, 0.0)
    if cfg.tilt_deg_max > 0:
        tilt = (float(rng.uniform(-cfg.tilt_deg_max, cfg.tilt_deg_max)),
                float(rng.uniform(-cfg.tilt_deg_max, cfg.tilt_deg_max)))
    homodyne = bool(rng.random() < cfg.homodyne_probability)
    return MRIAcquisition(
        seed=int(seed), te_ms=te, snr=snr, noise_sigma=float(wm / snr), bias_amplitude=amp,
        bias_coefficients=tuple(float(c) for c in coef), read_resolution_mm=read, phase_resolution_mm=phase,
        partial_fourier=pf, homodyne=homodyne, echo_spacing_ms=esp, echo_train_t2_ms=float(cfg.echo_train_t2_ms),
        kspace_taper=float(cfg.kspace_taper), phase_axis=axis,
        tilt_deg=tilt, slice_thickness_mm=float(slice_thickness_mm), supersample=int(cfg.supersample),
        mask=cfg.mask, haste_blur=bool(cfg.haste_blur), add_noise=bool(cfg.add_noise),
    )


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def tissue_signal(fine_labels: np.ndarray, params: AnatomyParams, acq: MRIAcquisition,
                  spacing_mm: tuple[float, float]) -> np.ndarray:
    """Noise-free T2w signal of a (fine) label map, with the subplate band and the mask applied."""
    ga_eff = params.ga_effective_weeks
    signal = signal_lut(ga_eff, acq.te_ms)[fine_labels]
    subplate = float(bio.subplate_thickness_mm(ga_eff))
    cortex = fine_labels == L.CORTEX
    if subplate > 0.05 and cortex.any():
        dist = ndimage.distance_transform_edt(~cortex, sampling=spacing_mm)
        band = (fine_labels == L.WHITE_MATTER) & (dist <= subplate)
        signal[band] = SUBPLATE.signal(acq.te_ms)
    if acq.mask != "none":
        keep = np.zeros(256, dtype=bool)
        keep[[int(x) for x in (BRAIN_LABELS if acq.mask == "brain" else HEAD_LABELS)]] = True
        signal[~keep[fine_labels]] = 0.0
    return signal


def block_mean(fine: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return fine.astype(np.float32, copy=True)
    h, w = fine.shape[0] // factor, fine.shape[1] // factor
    return fine.reshape(h, factor, w, factor).mean(axis=(1, 3)).astype(np.float32)


def bias_field(acq: MRIAcquisition, x: np.ndarray, y: np.ndarray, z: float, half_extent: tuple[float, float, float]
               ) -> np.ndarray:
    """Smooth multiplicative field 1 + amp·Σ c·monomial, |field − 1| ≤ amp over the box (x, y, z in mm)."""
    hx, hy, hz = (max(h, 1e-6) for h in half_extent)
    X, Y, Z = x[None, :] / hx, y[:, None] / hy, z / hz
    c = acq.bias_coefficients
    f = c[0] * X + c[1] * Y + c[2] * Z + c[3] * X**2 + c[4] * Y**2 + c[5] * Z**2 + c[6] * X * Y + \
        c[7] * X * Z + c[8] * Y * Z
    return (1.0 + acq.bias_amplitude * f).astype(np.float32)


def _taper(f: np.ndarray, k_max: float, fraction: float) -> np.ndarray:
    """1 up to (1 − fraction)·k_max, raised-cosine roll-off to 0 at k_max (a scanner's raw-data filter)."""
    if fraction <= 0:
        return np.ones_like(f)
    start = (1.0 - fraction) * k_max
    x = np.clip((np.abs(f) - start) / (k_max - start), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def haste_kspace_filter(shape: tuple[int, int], spacing_mm: tuple[float, float], acq: MRIAcquisition) -> np.ndarray:
    """Real k-space weights of one HASTE slice (rows, cols in ``np.fft`` order).

    Truncation to the acquired resolution (read: ``read_resolution_mm``, phase: ``phase_resolution_mm``) with a
    raised-cosine roll-off (``kspace_taper``, against Gibbs ringing), half-Fourier (zero-filled: lines below
    −(2·pf − 1)·k_max missing; homodyne: the phantom is real, so the phase-corrected reconstruction recovers
    the full symmetric k-space) and the echo-train decay exp(−ESP·|n|/T2) of phase line n
    (n = 0 at the effective TE)."""
    sy, sx = spacing_mm
    fy, fx = np.fft.fftfreq(shape[0], d=sy), np.fft.fftfreq(shape[1], d=sx)
    if acq.phase_axis == "y":
        f_phase, f_read, fov_phase = fy[:, None], fx[None, :], shape[0] * sy
    else:
        f_phase, f_read, fov_phase = fx[None, :], fy[:, None], shape[1] * sx
    k_read, k_phase = 0.5 / acq.read_resolution_mm, 0.5 / acq.phase_resolution_mm
    keep = (np.abs(f_read) <= k_read) & (np.abs(f_phase) <= k_phase)
    if not acq.homodyne:
        keep &= f_phase >= -(2 * acq.partial_fourier - 1) * k_phase
    lines = np.abs(f_phase) * fov_phase
    weight = np.exp(-acq.echo_spacing_ms * lines / acq.echo_train_t2_ms) * \
        _taper(f_read, k_read, acq.kspace_taper) * _taper(f_phase, k_phase, acq.kspace_taper)
    return np.where(keep, weight, 0.0)


def acquire(signal: np.ndarray, spacing_mm: tuple[float, float], acq: MRIAcquisition,
            rng: np.random.Generator) -> np.ndarray:
    """Blur (if enabled) and add complex noise, return the magnitude image (float32)."""
    img = signal.astype(np.complex128)
    if acq.haste_blur:
        img = np.fft.ifft2(np.fft.fft2(img) * haste_kspace_filter(signal.shape, spacing_mm, acq))
    if acq.add_noise and acq.noise_sigma > 0:
        img = img + acq.noise_sigma * (rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape))
    return np.abs(img).astype(np.float32)


class _PlaneRenderer:
    """Fine-grid labels and signal of (possibly tilted) planes, caching offset levels across slices."""

    LEVEL_MM = 0.75

    def __init__(self, params: AnatomyParams, acq: MRIAcquisition, spacing_mm: tuple[float, float],
                 shape: tuple[int, int]):
        self.params, self.acq = params, acq
        ss = acq.supersample
        self.fine_spacing = (spacing_mm[0] / ss, spacing_mm[1] / ss)
        self.fine_shape = (shape[0] * ss, shape[1] * ss)
        self.fx, self.fy = pixel_axes(self.fine_spacing, self.fine_shape)
        tx, ty = (math.tan(math.radians(t)) for t in acq.tilt_deg)
        self.tilt = (tx, ty)
        self.cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def _level(self, z: float):
        key = round(z, 4)
        if key not in self.cache:
            labels = render_labels(self.params, self.fine_spacing, self.fine_shape, z, supersample=1)
            self.cache[key] = (labels, tissue_signal(labels, self.params, self.acq, self.fine_spacing))
        return self.cache[key]

    def plane(self, z0: float) -> tuple[np.ndarray, np.ndarray]:
        tx, ty = self.tilt
        if tx == 0.0 and ty == 0.0:
            labels, signal = self._level(z0)
            if len(self.cache) > 8:
                self.cache.clear()  # untilted planes are not revisited
            return labels, signal
        z = z0 + self.fx[None, :] * tx + self.fy[:, None] * ty
        level = np.round(z / self.LEVEL_MM).astype(np.int64)
        labels = np.empty(self.fine_shape, dtype=np.uint8)
        signal = np.empty(self.fine_shape, dtype=np.float32)
        for lev in np.unique(level):
            sel = level == lev
            lab, sig = self._level(float(lev) * self.LEVEL_MM)
            labels[sel], signal[sel] = lab[sel], sig[sel]
        lowest = (float(level.min()) - 1) * self.LEVEL_MM
        for key in [k for k in self.cache if k < lowest]:
            del self.cache[key]
        return labels, signal

    def slab(self, z_centre: float, thickness: float) -> tuple[np.ndarray, np.ndarray]:
        """(labels at the central plane, signal averaged over the slice thickness) on the output grid."""
        n = max(1, int(round(thickness / 1.0)))
        n += (n + 1) % 2  # odd: the central plane is one of the sub-planes
        offsets = z_centre + ((np.arange(n) + 0.5) / n - 0.5) * thickness
        total = np.zeros(self.fine_shape, dtype=np.float64)
        centre_labels = None
        for i, z in enumerate(offsets):
            labels, signal = self.plane(float(z))
            total += signal
            if i == n // 2:
                centre_labels = labels
        ss = self.acq.supersample
        return mode_downsample(centre_labels, ss), block_mean((total / n).astype(np.float32), ss)


# --------------------------------------------------------------------------------------------------
# Public renderers
# --------------------------------------------------------------------------------------------------


class SliceInfo(NamedTuple):
    acquisition: MRIAcquisition
    metadata: PhantomMetadata


class MRISlice(NamedTuple):
    image: np.ndarray  # (H, W) float32
    labels: np.ndarray  # (H, W) uint8 Label ids of the central plane
    info: SliceInfo


def render_mri_slice(params: AnatomyParams, seed: int, size: int = CANONICAL_SIZE_PX,
                     spacing_mm: float = CANONICAL_SPACING_MM, slice_offset_mm: float = 0.0,
                     slice_thickness_mm: float = 1.0, config: MRIConfig | None = None) -> MRISlice:
    """The canonical paired T2w slice (default 128×128 at 1.094 mm, the TT plane), with its labels.

    The default thickness (1 mm) mimics the SR-reconstructed / atlas slices of the DDIC MRI domain
    (method.md §5); pass 3 mm for a raw HASTE-like slice and ``MRIConfig(mask="brain")`` for
    brain-extracted images.
    """
    acq = sample_acquisition(params, seed, slice_thickness_mm, config)
    shape = (int(size), int(size))
    spacing = (float(spacing_mm), float(spacing_mm))
    renderer = _PlaneRenderer(params, acq, spacing, shape)
    labels, signal = renderer.slab(float(slice_offset_mm), slice_thickness_mm)
    x, y = pixel_axes(spacing, shape)
    half = 0.5 * shape[1] * spacing[1], 0.5 * shape[0] * spacing[0], max(params.head_height_mm, 1.0)
    signal = signal * bias_field(acq, x, y, float(slice_offset_mm), half)
    image = acquire(signal, spacing, acq, np.random.default_rng([int(seed), 0x4E4F]))
    return MRISlice(image, labels, SliceInfo(acq, phantom_metadata(params, spacing_mm, shape, slice_offset_mm)))


# LPS direction of the phantom's index axes: columns → anterior, rows → fetal left, slices → superior
PHANTOM_DIRECTION_LPS = (0.0, 1.0, 0.0,
                         -1.0, 0.0, 0.0,
                         0.0, 0.0, 1.0)


@dataclass(frozen=True)
class VolumeInfo:
    """Physical frame of a phantom volume (ITK conventions, LPS mm).

    Index (i, j, k) = (column, row, slice); columns run posterior → anterior, rows run from the fetal right
    to the left, slices inferior → superior (``PHANTOM_DIRECTION_LPS``). The head centre at the TT plane is
    the physical origin (0, 0, 0); ``slice_offsets_mm`` are the slice centres relative to the TT plane.
    """

    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]
    slice_offsets_mm: tuple[float, ...]
    slice_thickness_mm: float
    acquisition: MRIAcquisition
    metadata: PhantomMetadata

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping (i, j, k, 1) to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.direction).reshape(3, 3) @ np.diag(self.spacing_xyz)
        m[:3, 3] = self.origin_xyz
        return m

    def to_dict(self) -> dict:
        return {"spacing_xyz": list(self.spacing_xyz), "origin_xyz": list(self.origin_xyz),
                "direction": list(self.direction), "slice_offsets_mm": list(self.slice_offsets_mm),
                "slice_thickness_mm": self.slice_thickness_mm, "acquisition": self.acquisition.to_dict(),
                "metadata": self.metadata.to_dict()}


class MRIVolume(NamedTuple):
    volume: np.ndarray  # (Z, Y, X) float32
    labels: np.ndarray  # (Z, Y, X) uint8 Label ids (central plane of each slice)
    info: VolumeInfo


def default_volume_shape(params: AnatomyParams, spacing_xyz: tuple[float, float, float]) -> tuple[int, int, int]:
    """(Z, Y, X) covering the head plus 15 mm of fluid in plane and ±90 % of its height (odd slice count,
    so the TT plane is the central slice)."""
    fov = 2.0 * (params.skull_a_mm + params.scalp_thickness_mm + 15.0)
    ny = nx = int(math.ceil(fov / min(spacing_xyz[0], spacing_xyz[1]) / 2.0)) * 2
    nz = 2 * int(math.ceil(0.9 * params.head_height_mm / spacing_xyz[2])) + 1
    return nz, ny, nx


def render_mri_volume(params: AnatomyParams, seed: int, spacing_mm: tuple[float, float, float] = (0.8, 0.8, 3.0),
                      n_slices: int | None = None, shape: tuple[int, int] | None = None,
                      slice_thickness_mm: float | None = None, config: MRIConfig | None = None,
                      slice_shift_mm: float = 0.0) -> MRIVolume:
    """A stack of axial T2w slices around the TT plane (a HASTE-like stack: 0.8 × 0.8 mm in plane, 3-mm
    slices without gap by default, anatomy.md §5).

    ``spacing_mm`` is (x, y, z) in ITK order; ``shape`` the in-plane (rows, cols); ``n_slices`` the slice
    count (default: ±90 % of the head height); ``slice_thickness_mm`` defaults to the z spacing;
    ``slice_shift_mm`` moves the whole stack. Labels are those of each slice's central plane.
    """
    sx, sy, sz = (float(s) for s in spacing_mm)
    if min(sx, sy, sz) <= 0:
        raise DDICInputError(f"spacing_mm must be positive (x, y, z), got {spacing_mm}")
    nz, ny, nx = default_volume_shape(params, (sx, sy, sz))
    if shape is not None:
        ny, nx = int(shape[0]), int(shape[1])
    if n_slices is not None:
        nz = int(n_slices)
    if nz < 1 or ny < 2 or nx < 2:
        raise DDICInputError(f"volume shape must be at least 1×2×2, got {(nz, ny, nx)}")
    thickness = sz if slice_thickness_mm is None else float(slice_thickness_mm)
    acq = sample_acquisition(params, seed, thickness, config)
    renderer = _PlaneRenderer(params, acq, (sy, sx), (ny, nx))
    rng = np.random.default_rng([int(seed), 0x4E4F])
    offsets = (np.arange(nz) - (nz - 1) / 2.0) * sz + float(slice_shift_mm)
    x, y = pixel_axes((sy, sx), (ny, nx))
    half = 0.5 * nx * sx, 0.5 * ny * sy, max(0.5 * nz * sz, 1.0)
    volume = np.zeros((nz, ny, nx), dtype=np.float32)
    labels = np.zeros((nz, ny, nx), dtype=np.uint8)
    for k, z in enumerate(offsets):
        lab, signal = renderer.slab(float(z), thickness)
        signal = signal * bias_field(acq, x, y, float(z), half)
        volume[k] = acquire(signal, (sy, sx), acq, rng)
        labels[k] = lab
    direction = np.asarray(PHANTOM_DIRECTION_LPS).reshape(3, 3)
    centre_index = np.array([(nx - 1) / 2.0 * sx, (ny - 1) / 2.0 * sy, (nz - 1) / 2.0 * sz - slice_shift_mm])
    origin = tuple(float(v) for v in -(direction @ centre_index))
    info = VolumeInfo(spacing_xyz=(sx, sy, sz), origin_xyz=origin, direction=PHANTOM_DIRECTION_LPS,
                      slice_offsets_mm=tuple(float(o) for o in offsets), slice_thickness_mm=thickness,
                      acquisition=acq, metadata=phantom_metadata(params, (sy, sx), (ny, nx), 0.0))
    return MRIVolume(volume, labels, info)
