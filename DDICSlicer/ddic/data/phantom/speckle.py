"""Speckle formation in the beam (depth × line) domain: point-spread function, convolution, analytic signal.

The convolution model of ``shared/docs/anatomy.md`` §4.2 (steps 3, 7, 8): a map of random scatterer
amplitudes sampled along the beams is convolved laterally with a Gaussian beam profile whose width grows
away from the focus, and axially with the RF pulse, a Gaussian-modulated cosine at the centre frequency
(h(r) = exp(−r²/2σ²)·cos(2π·2r/λ), pulse-echo). The envelope is the modulus of the analytic signal along
depth, computed from the one-sided spectrum — the same operation as ``scipy.signal.hilbert`` on the RF
lines, folded into the axial convolution so that the RF is never formed twice.

The scatterer map itself is made here too (:func:`diffuse_scatterers`): one Gaussian amplitude per beam
sample at its tissue's level, under a smooth multiplicative texture (:func:`smooth_field`, non-Rayleigh
tissue), so that everything that decides the speckle's statistics lives in one module.

Scaling: a specular sample of amplitude 1 on every line gives a peak envelope of 1 (kernel peak 1, lateral
kernel of unit sum); i.i.d. Gaussian scatterers of standard deviation :meth:`BeamPsf.diffuse_std` per
sample give fully developed speckle (Rayleigh envelope, mean/SD = 1.91) with a mean envelope of 1 at every
depth, whatever the grid and the PSF. So tissue levels in dB mean the same at every frequency and depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

SOUND_SPEED_MM_PER_US = 1.54  # c = 1540 m/s
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
RAYLEIGH_SNR = math.sqrt(math.pi / (4.0 - math.pi))  # 1.913: mean/SD of a Rayleigh envelope
_WORKERS = 2


def wavelength_mm(frequency_mhz: float) -> float:
    return SOUND_SPEED_MM_PER_US / float(frequency_mhz)


@dataclass(frozen=True)
class Psf:
    """The imaging point-spread function of one acquisition (all lengths in mm).

    ``axial_fwhm_mm``: FWHM of the pulse-echo envelope along the beam.
    ``lateral_fwhm_focus_mm``: FWHM of the beam profile at the focus (≈ λ·F#; narrower with harmonics).
    Away from the focus the lateral FWHM grows as FWHM_f·√(1 + ((z − z_f)/z_R)²).
    ``sidelobe_db``, ``sidelobe_width``: a wide lateral tail (``sidelobe_width`` × the main lobe) whose peak
    is ``sidelobe_db`` below the main lobe's (side-lobe clutter, anatomy.md §4.2 step 6d).
    """

    frequency_mhz: float
    axial_fwhm_mm: float
    lateral_fwhm_focus_mm: float
    focus_depth_mm: float
    rayleigh_length_mm: float
    sidelobe_db: float = -35.0
    sidelobe_width: float = 4.0

    @property
    def wavelength_mm(self) -> float:
        return wavelength_mm(self.frequency_mhz)

    @property
    def axial_sigma_mm(self) -> float:
        return self.axial_fwhm_mm / FWHM_PER_SIGMA

    def lateral_fwhm_mm(self, depth_mm):
        """Lateral FWHM (mm) of the main lobe at ``depth_mm`` below the transducer face."""
        z = np.asarray(depth_mm, dtype=np.float64)
        return self.lateral_fwhm_focus_mm * np.sqrt(1.0 + ((z - self.focus_depth_mm) / self.rayleigh_length_mm) ** 2)

    def axial_kernel(self, dr_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """The sampled RF pulse (peak 1) and its sample offsets, over ±4σ."""
        sigma = self.axial_sigma_mm
        half = max(1, int(math.ceil(4.0 * sigma / dr_mm)))
        offsets = np.arange(-half, half + 1)
        r = offsets * dr_mm
        kernel = np.exp(-0.5 * (r / sigma) ** 2) * np.cos(2.0 * math.pi * 2.0 * r / self.wavelength_mm)
        return kernel, offsets


def analytic_from_rfft(spectrum: np.ndarray, n: int, axis: int = 0) -> np.ndarray:
    """The analytic signal (length ``n`` along ``axis``) of a real signal given by its ``rfft``."""
    spectrum = np.moveaxis(spectrum, axis, 0)
    full = np.zeros((n,) + spectrum.shape[1:], dtype=np.result_type(spectrum.dtype, np.complex64))
    half = n // 2
    full[0] = spectrum[0]
    if n % 2 == 0:
        full[1:half] = 2.0 * spectrum[1:half]
        full[half] = spectrum[half]
    else:
        full[1:half + 1] = 2.0 * spectrum[1:half + 1]
    out = sfft.ifft(full, axis=0, overwrite_x=True, workers=_WORKERS)
    return np.moveaxis(out, 0, axis)


def analytic_signal(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Analytic signal of a real array along ``axis`` (equals ``scipy.signal.hilbert``)."""
    x = np.asarray(x)
    return analytic_from_rfft(sfft.rfft(x, axis=axis, workers=_WORKERS), x.shape[axis], axis)


class BeamPsf:
    """The PSF discretised on one beam grid: ``n_depth`` samples of ``dr_mm`` × ``n_lines`` lines.

    ``line_spacing_mm`` (one value per depth sample) is the arc length between neighbouring lines at that
    depth (r·Δθ for a sector), so the lateral kernel, in lines, follows both the beam width and the fan.
    """

    def __init__(self, psf: Psf, dr_mm: float, depth_mm: np.ndarray, line_spacing_mm: np.ndarray,
                 n_lines: int):
        self.psf = psf
        self.dr_mm = float(dr_mm)
        depth_mm = np.asarray(depth_mm, dtype=np.float64)
        self.n_depth = len(depth_mm)
        self.n_lines = int(n_lines)
        # axial: RF pulse, zero-padded so that the circular convolution does not wrap
        kernel, offsets = psf.axial_kernel(self.dr_mm)
        self.n_fft_depth = sfft.next_fast_len(self.n_depth + 2 * len(kernel), real=True)
        placed = np.zeros(self.n_fft_depth)
        placed[offsets % self.n_fft_depth] = kernel
        self.axial_transfer = sfft.rfft(placed).astype(np.complex64)
        axial_power = float(np.sum(np.abs(analytic_signal(placed)) ** 2))  # Σ|g|², g = analytic pulse
        # lateral: main lobe + wide side-lobe tail, Gaussian in the line index, depth dependent
        self.n_fft_lines = sfft.next_fast_len(self.n_lines, real=True)
        k = sfft.rfftfreq(self.n_fft_lines)  # cycles per line
        sigma = psf.lateral_fwhm_mm(depth_mm) / FWHM_PER_SIGMA / np.asarray(line_spacing_mm, np.float64)
        self.lateral_sigma_lines = sigma
        tail_width = float(psf.sidelobe_width)
        eps = tail_width * 10.0 ** (psf.sidelobe_db / 20.0)  # tail peak = eps / width of the main peak
        g = lambda s: np.exp(-2.0 * (math.pi * s[:, None] * k[None, :]) ** 2)  # noqa: E731
        transfer = (1.0 - eps) * g(sigma) + eps * g(tail_width * sigma)
        self.lateral_transfer = transfer.astype(np.float32)
        weights = np.full(len(k), 2.0)
        weights[0] = 1.0
        if self.n_fft_lines % 2 == 0:
            weights[-1] = 1.0
        lateral_power = (transfer ** 2 * weights).sum(axis=1) / self.n_fft_lines  # Σ h² by Parseval
        self.unit_power = axial_power * lateral_power  # E|analytic|² per unit scatterer variance

    def diffuse_std(self) -> np.ndarray:
        """Per-depth standard deviation of Gaussian scatterers that gives a mean envelope of 1."""
        return np.sqrt((4.0 / math.pi) / self.unit_power).astype(np.float32)

    def __call__(self, scatterers: np.ndarray) -> np.ndarray:
        """Analytic signal (complex64, n_depth × n_lines) of a real scatterer map of the same shape."""
        s = np.asarray(scatterers, dtype=np.float32)
        if s.shape != (self.n_depth, self.n_lines):
            raise ValueError(f"scatterer map {s.shape} does not match the PSF grid {(self.n_depth, self.n_lines)}")
        lat = sfft.rfft(s, n=self.n_fft_lines, axis=1, workers=_WORKERS)
        lat *= self.lateral_transfer
        s = sfft.irfft(lat, n=self.n_fft_lines, axis=1, workers=_WORKERS)[:, : self.n_lines]
        del lat
        spectrum = sfft.rfft(s, n=self.n_fft_depth, axis=0, workers=_WORKERS)
        spectrum *= self.axial_transfer[:, None]
        return analytic_from_rfft(spectrum, self.n_fft_depth, axis=0)[: self.n_depth]


def autocovariance_fwhm(values: np.ndarray, axis: int) -> float:
    """FWHM, in samples, of the normalised autocovariance of ``values`` along ``axis``, averaged over the
    other axis (the speckle size when ``values`` is the envelope or intensity of a speckle region)."""
    x = np.asarray(values, dtype=np.float64)
    x = np.moveaxis(x, axis, 0)
    x = x - x.mean(axis=0, keepdims=True)
    n = x.shape[0]
    spec = np.fft.rfft(x, n=2 * n, axis=0)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=2 * n, axis=0)[:n]
    ac = ac.reshape(n, -1).sum(axis=1) / (n - np.arange(n))  # unbiased for the overlap
    ac = ac / ac[0]
    below = np.nonzero(ac < 0.5)[0]
    if len(below) == 0:
        return float("inf")
    k = int(below[0])
    half = (k - 1) + (ac[k - 1] - 0.5) / (ac[k - 1] - ac[k])
    return 2.0 * half


# ---------------------------------------------------------------------------------------------------------
# The scatterer map


def _upsample_linear(coarse: np.ndarray, shape: tuple[int, int], step: tuple[float, float]) -> np.ndarray:
    """Separable linear interpolation of a coarse grid (node k at k·step) onto a full grid."""
    out = coarse
    for axis, (n, st) in enumerate(zip(shape, step)):
        pos = np.arange(n) / st
        i0 = np.minimum(pos.astype(np.int64), out.shape[axis] - 2)
        w = (pos - i0).astype(np.float32)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i0 + 1, axis=axis)
        w = w[:, None] if axis == 0 else w[None, :]
        out = a + (b - a) * w
    return out.astype(np.float32, copy=False)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], step: tuple[float, float],
                 sigma: tuple[float, float], complex_valued: bool = False) -> np.ndarray:
    """Unit-RMS Gaussian random field, smoothed with ``sigma`` (coarse units) on a grid of ``step`` samples."""
    coarse_shape = (int(math.ceil(shape[0] / step[0])) + 2, int(math.ceil(shape[1] / step[1])) + 2)
    parts = []
    for _ in range(2 if complex_valued else 1):
        noise = rng.standard_normal(coarse_shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, sigma, mode="wrap")
        noise /= max(float(noise.std()), 1e-12)
        parts.append(noise)
    if complex_valued:
        coarse = (parts[0] + 1j * parts[1]).astype(np.complex64) / np.float32(math.sqrt(2.0))
        return (_upsample_linear(coarse.real.copy(), shape, step)
                + 1j * _upsample_linear(coarse.imag.copy(), shape, step)).astype(np.complex64)
    return _upsample_linear(parts[0], shape, step)


def diffuse_scatterers(backscatter_db: np.ndarray, textured: np.ndarray, std: np.ndarray,
                       texture_db: float, texture_correlation_mm: float, samples_per_mm: tuple[float, float],
                       rng: np.random.Generator) -> np.ndarray:
    """The diffuse scatterer map of a beam grid (float32, the shape of ``backscatter_db``).

    ``backscatter_db``: each sample's tissue level (dB re the skull echo); ``textured``: where the smooth
    texture field of ``texture_db`` SD and ``texture_correlation_mm`` correlation modulates it;
    ``std`` (broadcast): :meth:`BeamPsf.diffuse_std`, so that a level of 0 dB gives a mean envelope of 1;
    ``samples_per_mm``: the grid's sampling along depth and across lines (the texture's coarse grid has a
    node every mm, or every sample where samples are farther apart). The texture is drawn before the
    scatterers.
    """
    shape = backscatter_db.shape
    amplitude = np.power(np.float32(10.0), backscatter_db / np.float32(20.0))
    if texture_db > 0:
        step = (max(1.0, samples_per_mm[0]), max(1.0, samples_per_mm[1]))
        field_ = smooth_field(rng, shape, step, (texture_correlation_mm / 2.0,) * 2)
        texture = np.power(np.float32(10.0), field_ * np.float32(texture_db / 20.0))
        amplitude = np.where(textured, amplitude * texture, amplitude)
        del field_, texture
    scatter = rng.standard_normal(shape, dtype=np.float32)
    scatter *= amplitude * std
    return scatter
