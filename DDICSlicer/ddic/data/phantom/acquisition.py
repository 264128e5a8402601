"""What one phantom ultrasound frame draws: the settings' ranges and the acquisition drawn from them.

Why apart from the physics: every random *choice* of a frame is made here, in one fixed order from the
frame's generator — the probe and PSF, the head's pose in the sector, the maternal wall, the window and
pixel size, tissue jitter, artefact strengths, TGC and display — and recorded in an :class:`Acquisition`
that the later stages only read (they draw from the same generator only the random fields themselves:
texture, scatterers, haze, noise). So a frame's look can be logged (``to_dict``), explained and tuned
from the record.
Defaults follow ``shared/docs/anatomy.md`` §4.2–4.3.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ...errors import DDICInputError
from .scan_geometry import FRAME_HEIGHT_PX, FRAME_WIDTH_PX, HC18_PIXEL_SIZE_RANGE_MM, HeadEllipse, ellipse_points
from .speckle import Psf, wavelength_mm

Range = tuple[float, float]
_SCALP_MARGIN_MM = 5.0  # room kept around the outer-skull ellipse for the scalp


@dataclass(frozen=True)
class UltrasoundSettings:
    """Ranges from which each frame draws its acquisition (uniform; ``(v, v)`` fixes a value).

    Defaults follow anatomy.md §4.2–4.3 ([D] design values unless sourced there). Probabilities are in
    [0, 1]. ``keep_beam_data`` keeps the polar-domain envelope and labels on the frame (tests, tuning).
    """

    # probe and PSF
    frequency_mhz: Range = (2.0, 5.0)
    axial_fwhm_wavelengths: Range = (1.1, 1.4)  # pulse-echo envelope FWHM ≈ 0.45–0.6 mm at 3.5 MHz
    f_number: Range = (2.0, 3.0)  # lateral FWHM at the focus = λ·F#
    focus_depth_mm: Range = (50.0, 110.0)
    rayleigh_length_mm: Range = (20.0, 40.0)
    harmonic_probability: float = 0.5  # harmonic imaging: lateral PSF 1.4× narrower, less near-field clutter
    sidelobe_db: Range = (-40.0, -30.0)
    probe_radius_mm: Range = (40.0, 60.0)
    sector_angle_deg: Range = (60.0, 80.0)
    scan_depth_mm: Range = (120.0, 200.0)
    min_lines: int = 192
    max_lines: int = 512
    # placement
    wall_thickness_mm: Range = (10.0, 40.0)
    amniotic_gap_mm: Range = (3.0, 25.0)
    min_head_depth_mm: float = 20.0
    far_wall_probability: float = 0.5
    far_wall_gap_mm: Range = (5.0, 40.0)
    rotation_deg: Range = (-25.0, 25.0)  # midline tilt from horizontal
    turn_probability: float = 0.5  # 180° turn: occiput on the other side
    mirror_probability: float = 0.5  # the plane seen from the other side: the other hemisphere proximal
    lateral_offset_fraction: Range = (-0.15, 0.15)  # head centre, of the sector width at its depth
    head_width_fraction: Range = (0.45, 0.85)  # OFD / frame width (sets the pixel size)
    # tissue
    backscatter_jitter_db: float = 3.0  # per tissue, per frame, ± uniform
    skull_attenuation_scale: Range = (0.7, 1.3)
    skull_impedance_mrayl: Range = (2.5, 4.0)
    specular_exponent: Range = (1.0, 2.0)
    texture_db: Range = (1.0, 3.0)  # non-Rayleigh texture: SD of a smooth multiplicative field
    texture_correlation_mm: Range = (2.0, 5.0)
    # artefacts
    haze_db: Range = (3.0, 8.0)
    haze_decay_mm: Range = (10.0, 15.0)
    haze_floor: Range = (0.3, 0.5)  # haze kept (amplitude fraction) through the proximal hemisphere
    haze_width_beams: Range = (1.0, 2.0)  # lateral size of the haze blotches, in focal beam widths
    ringdown_probability: float = 0.6
    ringdown_spacing_mm: Range = (1.0, 3.0)
    ringdown_factor: Range = (0.2, 0.45)
    wall_reverberation_db: Range = (-30.0, -20.0)
    noise_floor_db: Range = (-120.0, -110.0)  # re the unattenuated skull echo: ≈ 90 dB below it as received
    # display
    tgc_alpha_db_cm_mhz: Range = (0.4, 0.6)
    tgc_jitter: Range = (0.8, 1.2)
    tgc_knot_sd_db: float = 1.5
    dynamic_range_db: Range = (45.0, 65.0)
    parenchyma_grey: Range = (60.0, 110.0)  # auto-gain target for the median brain-tissue grey
    gamma: Range = (0.8, 1.2)
    smoothing_probability: float = 0.5
    smoothing_px: Range = (0.4, 0.9)
    keep_beam_data: bool = False

    def validate(self) -> "UltrasoundSettings":
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                if len(value) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
                    raise DDICInputError(f"Ultrasound setting {f.name} must be a (low, high) pair of numbers, "
                                         f"got {value!r}.")
                if value[0] > value[1]:
                    raise DDICInputError(f"Ultrasound setting {f.name}: low {value[0]} > high {value[1]}.")
            elif f.name.endswith("_probability") and not 0.0 <= float(value) <= 1.0:
                raise DDICInputError(f"Ultrasound setting {f.name} must be in [0, 1], got {value!r}.")
        positive = ("frequency_mhz", "axial_fwhm_wavelengths", "f_number", "focus_depth_mm", "rayleigh_length_mm",
                    "probe_radius_mm", "scan_depth_mm", "dynamic_range_db", "gamma", "texture_correlation_mm",
                    "haze_decay_mm", "haze_width_beams", "ringdown_spacing_mm", "skull_impedance_mrayl",
                    "head_width_fraction")
        for name in positive:
            if getattr(self, name)[0] <= 0:
                raise DDICInputError(f"Ultrasound setting {name} must be positive, got {getattr(self, name)!r}.")
        if not 10.0 <= self.sector_angle_deg[0] <= self.sector_angle_deg[1] <= 120.0:
            raise DDICInputError(f"sector_angle_deg must lie in [10, 120] degrees, got {self.sector_angle_deg}.")
        if not 0 < self.min_lines <= self.max_lines:
            raise DDICInputError(f"Need 0 < min_lines ≤ max_lines, got {self.min_lines}, {self.max_lines}.")
        if not (0.0 <= self.parenchyma_grey[0] and self.parenchyma_grey[1] < 255.0):
            raise DDICInputError(f"parenchyma_grey must lie in [0, 255), got {self.parenchyma_grey}.")
        return self


@dataclass(frozen=True)
class Acquisition:
    """Everything one frame drew from :class:`UltrasoundSettings` (JSON-able through :meth:`to_dict`)."""

    frequency_mhz: float
    harmonic: bool
    axial_fwhm_mm: float
    f_number: float
    lateral_fwhm_focus_mm: float
    focus_depth_mm: float
    rayleigh_length_mm: float
    sidelobe_db: float
    probe_radius_mm: float
    sector_angle_deg: float
    n_lines: int
    scan_depth_mm: float
    simulated_depth_mm: float
    dr_mm: float
    wall_thickness_mm: float
    wall_wave: tuple[float, float, float]  # amplitude mm, angular frequency per rad, phase
    wall_layers: tuple[float, float, float]  # skin mm, fat and muscle fractions of the rest
    amniotic_gap_mm: float
    far_wall_depth_mm: float | None
    rotation_deg: float  # in-plane rotation label map → probe (after the mirror), clockwise as displayed
    mirrored: bool
    head_center_world_mm: tuple[float, float]  # (x lateral, z below the sector apex)
    head_axis_world_deg: float  # direction of the ellipse's major axis (the midline) in the world
    pixel_size_mm: float
    window_origin_mm: tuple[float, float]  # world (x, z) of the frame's top-left corner
    backscatter_jitter_db: tuple[float, ...]  # per id 0…max render id
    skull_attenuation_scale: float
    skull_impedance_mrayl: float
    specular_exponent: float
    texture_db: float
    texture_correlation_mm: float
    haze_db: float
    haze_decay_mm: float
    haze_floor: float
    haze_width_beams: float
    ringdown: bool
    ringdown_spacing_mm: float
    ringdown_factor: float
    wall_reverberation_db: float
    noise_floor_db: float
    tgc_alpha_db_cm_mhz: float
    tgc_knots_db: tuple[float, ...]
    dynamic_range_db: float
    parenchyma_grey: float
    gamma: float
    smoothing_px: float  # 0: none

    def psf(self) -> Psf:
        return Psf(self.frequency_mhz, self.axial_fwhm_mm, self.lateral_fwhm_focus_mm, self.focus_depth_mm,
                   self.rayleigh_length_mm, self.sidelobe_db)

    def to_dict(self) -> dict:
        return asdict(self)


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo if lo == hi else float(rng.uniform(lo, hi))


def sample_acquisition(settings: UltrasoundSettings, rng: np.random.Generator, ellipse: HeadEllipse,
                       n_ids: int) -> Acquisition:
    """Draw one frame's :class:`Acquisition` for the head ``ellipse`` (``n_ids``: tissue ids to jitter).

    The head is placed below the wall and amniotic gap, inside the sector with a scalp margin (moved
    deeper and more central until it fits), and the frame's window and pixel size are chosen so that the
    whole head is in view at an HC18 pixel size.
    """
    s = settings
    f0 = _draw(rng, s.frequency_mhz)
    harmonic = bool(rng.random() < s.harmonic_probability)
    lam = wavelength_mm(f0)
    axial = _draw(rng, s.axial_fwhm_wavelengths) * lam
    f_number = _draw(rng, s.f_number)
    lateral = lam * f_number / (1.4 if harmonic else 1.0)
    focus = _draw(rng, s.focus_depth_mm)
    z_r = _draw(rng, s.rayleigh_length_mm)
    sidelobe = _draw(rng, s.sidelobe_db) - (5.0 if harmonic else 0.0)
    radius = _draw(rng, s.probe_radius_mm)
    sector = math.radians(_draw(rng, s.sector_angle_deg))
    # head pose
    rotation = math.radians(_draw(rng, s.rotation_deg))
    if rng.random() < s.turn_probability:
        rotation += math.pi
    mirrored = bool(rng.random() < s.mirror_probability)
    beta = (-ellipse.angle_rad if mirrored else ellipse.angle_rad) + rotation  # world angle of the major axis
    a, b = ellipse.semi_axis_a_mm, ellipse.semi_axis_b_mm
    half_x = math.sqrt((a * math.cos(beta)) ** 2 + (b * math.sin(beta)) ** 2)
    half_z = math.sqrt((a * math.sin(beta)) ** 2 + (b * math.cos(beta)) ** 2)
    wall = _draw(rng, s.wall_thickness_mm)
    wall_wave = (_draw(rng, (0.0, 2.0)), _draw(rng, (1.0, 5.0)), _draw(rng, (0.0, 2 * math.pi)))
    skin = _draw(rng, (1.5, 2.5))
    wall_layers = (min(skin, 0.3 * wall), _draw(rng, (0.15, 0.4)), _draw(rng, (0.25, 0.45)))
    gap = _draw(rng, s.amniotic_gap_mm)
    d_top = max(wall + gap, s.min_head_depth_mm)
    offset = _draw(rng, s.lateral_offset_fraction)
    margin_angle = math.radians(2.0)
    grown_a, grown_b = a + _SCALP_MARGIN_MM, b + _SCALP_MARGIN_MM
    for _ in range(200):
        zc = radius + d_top + half_z
        xc = offset * 2.0 * zc * math.tan(sector / 2)
        px, pz = ellipse_points(xc, zc, grown_a, grown_b, beta)
        theta_ok = np.max(np.abs(np.arctan2(px, pz))) <= sector / 2 - margin_angle
        depth_ok = np.min(np.hypot(px, pz)) - radius >= wall + wall_wave[0] + 1.0
        if theta_ok and depth_ok:
            break
        if not theta_ok:
            offset *= 0.7
            if abs(offset) < 0.01:
                d_top += 3.0
        if not depth_ok:
            d_top += 2.0
    else:  # pragma: no cover - only for absurd sector/head combinations
        raise DDICInputError(f"Cannot fit a head of semi-axes {a:.1f} × {b:.1f} mm into the ultrasound sector.")
    head_bottom = float(np.max(np.hypot(px, pz)) - radius)
    # pixel size: OFD spans a random fraction of the frame width, the whole head fits
    width_fraction = _draw(rng, s.head_width_fraction)
    pixel = 2.0 * a / (FRAME_WIDTH_PX * width_fraction)
    fit = max(2.0 * (half_x + _SCALP_MARGIN_MM) / (0.96 * FRAME_WIDTH_PX),
              2.0 * (half_z + _SCALP_MARGIN_MM) / (0.92 * FRAME_HEIGHT_PX))
    pixel = float(np.clip(max(pixel, fit), *HC18_PIXEL_SIZE_RANGE_MM))
    if fit > HC18_PIXEL_SIZE_RANGE_MM[1] * 1.02:
        raise DDICInputError(f"The head ellipse ({2 * a:.0f} × {2 * b:.0f} mm) does not fit an 800 × 540 frame "
                             f"at HC18's largest pixel size ({HC18_PIXEL_SIZE_RANGE_MM[1]} mm); check its units.")
    width_mm, height_mm = FRAME_WIDTH_PX * pixel, FRAME_HEIGHT_PX * pixel
    slack_x = max(0.0, width_mm / 2 - half_x - _SCALP_MARGIN_MM)
    left = xc - width_mm / 2 + rng.uniform(-0.7, 0.7) * slack_x
    top_low = zc + half_z + _SCALP_MARGIN_MM - height_mm  # lowest allowed top (head bottom still in view)
    top_high = zc - half_z - _SCALP_MARGIN_MM
    show_face = rng.random() < 0.6
    jitter = rng.random()
    if top_low > top_high:
        top = 0.5 * (top_low + top_high)
    elif show_face:
        top = float(np.clip(radius - 0.04 * jitter * height_mm, top_low, top_high))
    else:
        top = top_low + jitter * (top_high - top_low)
    scan_depth = max(_draw(rng, s.scan_depth_mm), head_bottom + 10.0)
    corners = [(left, top + height_mm), (left + width_mm, top + height_mm)]
    window_depth = max(math.hypot(x, z) for x, z in corners) - radius
    simulated = float(min(scan_depth, window_depth))
    far_wall = None
    if rng.random() < s.far_wall_probability:
        far_wall = head_bottom + _draw(rng, s.far_wall_gap_mm)
    # beam grid: lines so that the focal beam width spans ≳ 2 lines at the head's depth
    n_lines = int(np.clip(math.ceil(sector * (radius + head_bottom) / (lateral / 2.2)), s.min_lines, s.max_lines))
    dr = lam / 8.0
    jitter_db = tuple(float(v) for v in rng.uniform(-s.backscatter_jitter_db, s.backscatter_jitter_db, n_ids))
    return Acquisition(
        frequency_mhz=f0, harmonic=harmonic, axial_fwhm_mm=axial, f_number=f_number,
        lateral_fwhm_focus_mm=lateral, focus_depth_mm=focus, rayleigh_length_mm=z_r, sidelobe_db=sidelobe,
        probe_radius_mm=radius, sector_angle_deg=math.degrees(sector), n_lines=n_lines, scan_depth_mm=scan_depth,
        simulated_depth_mm=simulated, dr_mm=dr, wall_thickness_mm=wall, wall_wave=wall_wave,
        wall_layers=wall_layers, amniotic_gap_mm=gap, far_wall_depth_mm=far_wall,
        rotation_deg=math.degrees(rotation), mirrored=mirrored, head_center_world_mm=(xc, zc),
        head_axis_world_deg=math.degrees(beta), pixel_size_mm=pixel,
        window_origin_mm=(left, top), backscatter_jitter_db=jitter_db,
        skull_attenuation_scale=_draw(rng, s.skull_attenuation_scale),
        skull_impedance_mrayl=_draw(rng, s.skull_impedance_mrayl), specular_exponent=_draw(rng, s.specular_exponent),
        texture_db=_draw(rng, s.texture_db), texture_correlation_mm=_draw(rng, s.texture_correlation_mm),
        haze_db=_draw(rng, s.haze_db) - (3.0 if harmonic else 0.0), haze_decay_mm=_draw(rng, s.haze_decay_mm),
        haze_floor=_draw(rng, s.haze_floor),
        haze_width_beams=_draw(rng, s.haze_width_beams), ringdown=bool(rng.random() < s.ringdown_probability),
        ringdown_spacing_mm=_draw(rng, s.ringdown_spacing_mm),
        ringdown_factor=_draw(rng, s.ringdown_factor) * (0.7 if harmonic else 1.0),
        wall_reverberation_db=_draw(rng, s.wall_reverberation_db), noise_floor_db=_draw(rng, s.noise_floor_db),
        tgc_alpha_db_cm_mhz=_draw(rng, s.tgc_alpha_db_cm_mhz) * _draw(rng, s.tgc_jitter),
        tgc_knots_db=tuple(float(v) for v in rng.normal(0.0, s.tgc_knot_sd_db, 6)) if s.tgc_knot_sd_db > 0
        else (0.0,) * 6,
        dynamic_range_db=_draw(rng, s.dynamic_range_db), parenchyma_grey=_draw(rng, s.parenchyma_grey),
        gamma=_draw(rng, s.gamma),
        smoothing_px=_draw(rng, s.smoothing_px) if rng.random() < s.smoothing_probability else 0.0,
    )
