"""B-mode renderer of the phantom: speckle statistics, PSF-sized speckle, shadowing, the hazy proximal
hemisphere, HC18 frame format and annotation, geometry, determinism and input errors.

All label maps here are simple synthetic ellipses (not the anatomy module), so the tests pin the renderer
alone. Each render takes about a second on one CPU core.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import signal

from ddic.data.labels import Label
from ddic.data.phantom.acquisition import UltrasoundSettings
from ddic.data.phantom.hc18_files import HC18_CSV_HEADER, write_hc18_case, write_hc18_csv
from ddic.data.phantom.scan_geometry import HC18_PIXEL_SIZE_RANGE_MM, HeadEllipse
from ddic.data.phantom.speckle import RAYLEIGH_SNR, analytic_signal, autocovariance_fwhm
from ddic.data.phantom.ultrasound import render_ultrasound
from ddic.errors import DDICInputError
from ddic.geometry.ellipse import ramanujan_circumference

SPACING = 0.3
A_MM, B_MM = 45.0, 37.0  # outer skull semi-axes (HC ≈ 258 mm, ≈ 28 weeks)
SKULL_MM = 2.5

# a fixed, centred pose: midline horizontal, occiput left, canonical top hemisphere proximal
FIXED_POSE = dict(rotation_deg=(0.0, 0.0), turn_probability=0.0, mirror_probability=0.0,
                  lateral_offset_fraction=(0.0, 0.0), far_wall_probability=0.0)


def ellipse_q(shape, spacing, cx, cy, a, b):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] * spacing
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2


def head_map(size_mm=220.0, spacing=SPACING, outside=Label.AMNIOTIC_FLUID, inside=Label.WHITE_MATTER,
             ventricles=True, scalp=True):
    """A synthetic head: scalp and skull rings, white matter, a falx, one ventricle per hemisphere."""
    n = int(size_mm / spacing)
    c = (n - 1) / 2 * spacing
    shape = (n, n)
    labels = np.full(shape, outside, np.uint8)
    if scalp:
        labels[ellipse_q(shape, spacing, c, c, A_MM + 2.5, B_MM + 2.5) <= 1] = Label.SCALP
    labels[ellipse_q(shape, spacing, c, c, A_MM, B_MM) <= 1] = Label.SKULL
    brain = ellipse_q(shape, spacing, c, c, A_MM - SKULL_MM, B_MM - SKULL_MM) <= 1
    labels[brain] = inside
    if ventricles:
        yy, xx = np.mgrid[0:n, 0:n] * spacing
        labels[brain & (np.abs(yy - c) < 0.4) & (np.abs(xx - c) > 12)] = Label.FALX
        for side in (-1, 1):  # symmetric: one ventricle in each hemisphere
            labels[ellipse_q(shape, spacing, c + 8.0, c + side * 13.0, 12.0, 5.0) <= 1] = Label.LATERAL_VENTRICLE
    return labels, HeadEllipse.centred(shape, spacing, A_MM, B_MM)


def uniform_map(label=Label.WHITE_MATTER, size_mm=320.0, spacing=0.5):
    n = int(size_mm / spacing)
    return np.full((n, n), label, np.uint8), HeadEllipse.centred((n, n), spacing, 40.0, 32.0)


def fit_conic_ellipse(points: np.ndarray) -> tuple[float, float, float, float]:
    """(cx, cy, a, b) of the least-squares conic through ``points`` (N, 2)."""
    x, y = points[:, 0], points[:, 1]
    mx, my, s = x.mean(), y.mean(), max(x.std(), y.std())
    xn, yn = (x - mx) / s, (y - my) / s
    design = np.stack([xn * xn, xn * yn, yn * yn, xn, yn, np.ones_like(xn)], axis=1)
    coef = np.linalg.svd(design)[2][-1]
    a_, b_, c_, d_, e_, f_ = coef
    centre = np.linalg.solve([[2 * a_, b_], [b_, 2 * c_]], [-d_, -e_])
    value = (a_ * centre[0] ** 2 + b_ * centre[0] * centre[1] + c_ * centre[1] ** 2 + d_ * centre[0]
             + e_ * centre[1] + f_)
    eig = np.linalg.eigvalsh([[a_, b_ / 2], [b_ / 2, c_]])
    axes = np.sqrt(-value / eig) * s
    return centre[0] * s + mx, centre[1] * s + my, float(axes.max()), float(axes.min())


@pytest.fixture(scope="module")
def head_frame():
    labels, ellipse = head_map()
    return render_ultrasound(labels, SPACING, ellipse, seed=7), labels, ellipse


# ---------------------------------------------------------------------------------------------------------
# speckle


def test_analytic_signal_equals_scipy_hilbert(rng):
    x = rng.standard_normal((257, 3))
    np.testing.assert_allclose(analytic_signal(x, axis=0), signal.hilbert(x, axis=0), atol=1e-9)


@pytest.fixture(scope="module")
def uniform_frames():
    labels, ellipse = uniform_map()
    frames = {}
    for f0 in (2.5, 4.5):
        settings = UltrasoundSettings(frequency_mhz=(f0, f0), texture_db=(0.0, 0.0), keep_beam_data=True,
                                      harmonic_probability=0.0, focus_depth_mm=(80.0, 80.0), **FIXED_POSE)
        frames[f0] = render_ultrasound(labels, 0.5, ellipse, seed=3, settings=settings)
    return frames


def _central_region(beam, depth_lo, depth_hi):
    rows = (beam.depth_mm >= depth_lo) & (beam.depth_mm <= depth_hi)
    n = beam.envelope.shape[1]
    cols = slice(n // 5, n - n // 5)
    return beam.envelope[rows][:, cols].astype(np.float64)


@pytest.mark.parametrize("f0", [2.5, 4.5])
def test_fully_developed_speckle_has_rayleigh_snr(uniform_frames, f0):
    beam = uniform_frames[f0].beam
    env = _central_region(beam, 40.0, 110.0)
    env = env / env.mean(axis=1, keepdims=True)  # remove the slow depth trend (attenuation vs TGC)
    snr = env.mean() / env.std()
    assert snr == pytest.approx(RAYLEIGH_SNR, abs=0.15)
    assert snr == pytest.approx(1.91, abs=0.15)


@pytest.mark.parametrize("f0", [2.5, 4.5])
def test_speckle_size_follows_the_psf(uniform_frames, f0):
    frame = uniform_frames[f0]
    beam, psf = frame.beam, frame.beam.psf
    focus = psf.focus_depth_mm
    intensity = _central_region(beam, focus - 8.0, focus + 8.0) ** 2
    axial_mm = autocovariance_fwhm(intensity, axis=0) * frame.acquisition.dr_mm
    line_mm = float(np.interp(focus, beam.depth_mm, beam.line_spacing_mm))
    lateral_mm = autocovariance_fwhm(intensity, axis=1) * line_mm
    # for a Gaussian PSF the intensity autocovariance has the FWHM of the PSF's envelope
    assert axial_mm == pytest.approx(psf.axial_fwhm_mm, rel=0.2)
    assert lateral_mm == pytest.approx(float(psf.lateral_fwhm_mm(focus)), rel=0.25)
    assert psf.axial_fwhm_mm == pytest.approx(1.25 * 1.54 / f0, rel=0.15)  # 1.1–1.4 λ


def test_speckle_is_finer_at_higher_frequency(uniform_frames):
    sizes = {}
    for f0, frame in uniform_frames.items():
        intensity = _central_region(frame.beam, 60.0, 100.0) ** 2
        sizes[f0] = autocovariance_fwhm(intensity, axis=0) * frame.acquisition.dr_mm
    assert sizes[4.5] < 0.75 * sizes[2.5]


# ---------------------------------------------------------------------------------------------------------
# shadowing and the proximal hemisphere


def test_posterior_shadowing_behind_the_distal_skull():
    # brain-like scatterers everywhere, so only the bone differs between in front of and behind the skull
    labels, ellipse = head_map(outside=Label.WHITE_MATTER, ventricles=False, scalp=False)
    settings = UltrasoundSettings(frequency_mhz=(3.5, 3.5), keep_beam_data=True, texture_db=(0.0, 0.0),
                                  **FIXED_POSE)
    frame = render_ultrasound(labels, SPACING, ellipse, seed=11, settings=settings)
    beam = frame.beam
    level = beam.envelope * 10.0 ** (beam.tgc_db[:, None] / 20.0)  # what is displayed, before the log
    n = beam.envelope.shape[1]
    front, behind = [], []
    depth = beam.depth_mm
    for j in range(n // 2 - 15, n // 2 + 15):  # central lines, the distal skull ⟂ to the beam
        skull = np.nonzero(beam.labels[:, j] == Label.SKULL)[0]
        runs = np.split(skull, np.nonzero(np.diff(skull) > 1)[0] + 1)
        distal = runs[-1]
        start, end = depth[distal[0]], depth[distal[-1]]
        front.append(level[(depth > start - 8) & (depth < start - 2), j].mean())
        behind.append(level[(depth > end + 2) & (depth < end + 8), j].mean())
    ratio_db = 20 * math.log10(np.mean(behind) / np.mean(front))
    assert ratio_db < -5.0  # two-way bone loss ≈ 10–15 dB at 3.5 MHz, minus TGC over the gap
    # and on the frame itself: the band below the head is darker than the band above its distal skull
    image, lab = frame.image.astype(float), frame.labels
    cx = int(round(frame.geometry.center_x_px))
    cols = slice(cx - 20, cx + 20)
    sk = np.nonzero((lab[:, cols] == Label.SKULL).any(axis=1))[0]
    distal_top = sk[sk > sk.mean()].min()
    distal_bottom = sk.max()
    px = frame.pixel_size_mm
    above = image[distal_top - int(8 / px): distal_top - int(2 / px), cols].mean()
    below = image[distal_bottom + int(2 / px): distal_bottom + int(8 / px), cols].mean()
    assert below < above - 10


def test_proximal_hemisphere_is_obscured():
    labels, ellipse = head_map()
    settings = UltrasoundSettings(frequency_mhz=(3.5, 3.5), keep_beam_data=True, haze_db=(5.5, 5.5),
                                  haze_floor=(0.4, 0.4), **FIXED_POSE)
    frame = render_ultrasound(labels, SPACING, ellipse, seed=5, settings=settings)
    assert frame.geometry.proximal_hemisphere == "canonical_top"
    image, lab = frame.image.astype(float), frame.labels
    cy = frame.geometry.center_y_px
    rows = np.arange(image.shape[0])[:, None]
    ventricle = lab == Label.LATERAL_VENTRICLE
    near_v, far_v = ventricle & (rows < cy), ventricle & (rows > cy)
    assert near_v.sum() > 500 and far_v.sum() > 500
    # the anechoic ventricle is filled by haze in the near hemisphere, clear in the far one
    assert image[near_v].mean() > image[far_v].mean() + 15
    # so its contrast against the surrounding white matter is lower in the near hemisphere
    wm = lab == Label.WHITE_MATTER
    def contrast(side):
        return image[wm & side].mean() - image[ventricle & side].mean()
    assert contrast(rows < cy) < 0.6 * contrast(rows > cy)
    # haze lies only inside the head, after the first skull crossing, and not past the midline
    beam = frame.beam
    assert not np.isin(beam.labels[beam.haze_mask], [Label.AMNIOTIC_FLUID, Label.MATERNAL_WALL]).any()
    assert beam.haze_mask.any()


def test_mirror_makes_the_other_hemisphere_proximal():
    labels, ellipse = head_map(ventricles=False)
    settings = UltrasoundSettings(**{**FIXED_POSE, "mirror_probability": 1.0})
    frame = render_ultrasound(labels, SPACING, ellipse, seed=2, settings=settings)
    assert frame.geometry.mirrored and frame.geometry.proximal_hemisphere == "canonical_bottom"


# ---------------------------------------------------------------------------------------------------------
# HC18 frame, annotation, CSV, geometry


def test_frame_format_and_black_outside_the_sector(head_frame):
    frame, _, _ = head_frame
    for array in (frame.image, frame.labels, frame.annotation):
        assert array.shape == (540, 800) and array.dtype == np.uint8
    sector = frame.sector_mask
    assert 0.2 < sector.mean() < 1.0
    assert not frame.image[~sector].any() and not frame.labels[~sector].any()
    assert frame.image[sector].mean() > 5
    lo, hi = HC18_PIXEL_SIZE_RANGE_MM
    assert lo <= frame.pixel_size_mm <= hi
    # apex at the top: above the frame, and the fan widens downwards from its first rows
    left, top = frame.acquisition.window_origin_mm
    assert (0.0 - top) / frame.pixel_size_mm < 0
    widths = sector.sum(axis=1)
    filled = np.nonzero(widths)[0]
    assert widths[filled[0]] < widths.max()
    assert np.all(np.diff(widths[filled[0]: filled[0] + 50]) >= 0)
    # the whole head is in the frame and inside the sector
    assert (frame.labels == Label.SKULL).sum() > 1000
    skull = frame.labels == Label.SKULL
    assert not skull[0].any() and not skull[-1].any() and not skull[:, 0].any() and not skull[:, -1].any()
    assert set(np.unique(frame.labels)) <= {int(v) for v in Label}


def test_annotation_ellipse_matches_csv_hc(head_frame, tmp_path):
    frame, _, ellipse = head_frame
    row = write_hc18_case(tmp_path, "001_HC", frame)
    assert row.filename == "001_HC.png"
    assert row.pixel_size_mm == pytest.approx(frame.pixel_size_mm)
    assert row.head_circumference_mm == pytest.approx(ellipse.circumference_mm, rel=1e-9)
    assert row.head_circumference_mm == pytest.approx(ramanujan_circumference(A_MM, B_MM), rel=1e-9)
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "001_HC.png")))
    annotation = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "001_HC_Annotation.png")))
    np.testing.assert_array_equal(image, frame.image)
    np.testing.assert_array_equal(annotation, frame.annotation)
    assert set(np.unique(annotation)) == {0, 255}
    rows, cols = np.nonzero(annotation)
    cx, cy, a, b = fit_conic_ellipse(np.stack([cols, rows], axis=1).astype(float))
    hc_drawn = ramanujan_circumference(a, b) * row.pixel_size_mm
    assert hc_drawn == pytest.approx(row.head_circumference_mm, rel=0.01)
    assert (cx, cy) == pytest.approx((frame.geometry.center_x_px, frame.geometry.center_y_px), abs=1.0)
    # thin outline (1–2 px): its area ≈ perimeter × width
    perimeter_px = ramanujan_circumference(a, b)
    assert 0.9 * perimeter_px < len(rows) < 2.2 * perimeter_px
    # the outline sits on the outer skull edge of the ground-truth labels
    bone_or_scalp = np.isin(frame.labels, [Label.SKULL, Label.SCALP])
    assert bone_or_scalp[annotation > 0].mean() > 0.9
    csv = write_hc18_csv(tmp_path / "training_set_pixel_size_and_HC.csv", [row])
    lines = csv.read_text().splitlines()
    assert lines[0] == HC18_CSV_HEADER
    name, pixel, hc = lines[1].split(",")
    assert name == "001_HC.png" and float(pixel) == pytest.approx(row.pixel_size_mm, rel=1e-9)
    assert float(hc) == pytest.approx(ellipse.circumference_mm, abs=0.01)


def test_geometry_maps_label_pixels_onto_frame_labels(head_frame):
    frame, labels, ellipse = head_frame
    geo = frame.geometry
    m = np.asarray(geo.frame_from_labels)
    centre = m[:, :2] @ [ellipse.center_x_mm / SPACING, ellipse.center_y_mm / SPACING] + m[:, 2]
    assert centre == pytest.approx((geo.center_x_px, geo.center_y_px), abs=1e-6)
    # label pixels land on the same label in the frame
    rng = np.random.default_rng(0)
    for label in (Label.SKULL, Label.LATERAL_VENTRICLE, Label.WHITE_MATTER):
        rows, cols = np.nonzero(labels == label)
        pick = rng.choice(len(rows), 300)
        xy = (m[:, :2] @ np.stack([cols[pick], rows[pick]]) + m[:, 2:]).round().astype(int)
        assert (frame.labels[xy[1], xy[0]] == label).mean() > 0.85
    inv = np.asarray(geo.labels_from_frame())
    back = inv[:, :2] @ [geo.center_x_px, geo.center_y_px] + inv[:, 2]
    assert back == pytest.approx((ellipse.center_x_mm / SPACING, ellipse.center_y_mm / SPACING), abs=1e-6)
    assert geo.semi_axis_a_px * geo.pixel_size_mm == pytest.approx(A_MM)
    assert -90 < geo.angle_deg <= 90
    assert geo.to_dict()["head_circumference_mm"] == pytest.approx(ellipse.circumference_mm)


def test_rotation_is_reflected_in_the_annotation_angle():
    labels, ellipse = head_map(ventricles=False)
    settings = UltrasoundSettings(**{**FIXED_POSE, "rotation_deg": (20.0, 20.0)})
    frame = render_ultrasound(labels, SPACING, ellipse, seed=4, settings=settings)
    assert frame.geometry.angle_deg == pytest.approx(20.0)
    rows, cols = np.nonzero(frame.annotation)
    pts = np.stack([cols, rows], axis=1).astype(float)
    pts -= pts.mean(axis=0)
    direction = np.linalg.eigh(pts.T @ pts)[1][:, -1]  # major axis of the outline
    assert math.degrees(math.atan(direction[1] / direction[0])) == pytest.approx(20.0, abs=1.5)


# ---------------------------------------------------------------------------------------------------------
# determinism and errors


def test_deterministic_per_seed():
    labels, ellipse = head_map(size_mm=150.0, spacing=0.5, ventricles=False)
    settings = UltrasoundSettings(frequency_mhz=(2.5, 3.0))
    one = render_ultrasound(labels, 0.5, ellipse, seed=21, settings=settings)
    two = render_ultrasound(labels, 0.5, ellipse, seed=21, settings=settings)
    other = render_ultrasound(labels, 0.5, ellipse, seed=22, settings=settings)
    np.testing.assert_array_equal(one.image, two.image)
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.acquisition == two.acquisition and one.geometry == two.geometry
    assert one.image.shape == other.image.shape
    assert not np.array_equal(one.image, other.image)
    assert one.acquisition != other.acquisition


@pytest.mark.parametrize("bad_labels", [np.zeros((4, 5, 6), np.uint8), np.zeros(10, np.uint8),
                                        np.zeros((50, 50), np.float32), np.full((50, 50), 99, np.uint8)])
def test_bad_label_maps_are_refused(bad_labels):
    with pytest.raises(DDICInputError):
        render_ultrasound(bad_labels, 0.5, HeadEllipse(10, 10, 8, 6), seed=0)


@pytest.mark.parametrize("spacing", [0.0, -0.3, float("nan"), "x", (0.3, 0.5)])
def test_bad_spacing_is_refused(spacing):
    labels, ellipse = head_map(size_mm=120.0, spacing=0.5, ventricles=False)
    with pytest.raises(DDICInputError, match="spacing"):
        render_ultrasound(labels, spacing, ellipse, seed=0)


def test_bad_ellipse_seed_settings_and_names_are_refused(tmp_path, head_frame):
    labels, ellipse = head_map(size_mm=120.0, spacing=0.5, ventricles=False)
    with pytest.raises(DDICInputError):
        render_ultrasound(labels, 0.5, HeadEllipse(50, 50, -3, 2), seed=0)
    with pytest.raises(DDICInputError):
        render_ultrasound(labels, 0.5, "ellipse", seed=0)
    with pytest.raises(DDICInputError):
        render_ultrasound(labels, 0.5, ellipse, seed=-1)
    with pytest.raises(DDICInputError):
        render_ultrasound(labels, 0.5, ellipse, seed=0, settings=UltrasoundSettings(frequency_mhz=(5.0, 2.0)))
    with pytest.raises(DDICInputError):
        render_ultrasound(labels, 0.5, ellipse, seed=0, settings=UltrasoundSettings(turn_probability=1.5))
    with pytest.raises(DDICInputError):
        render_ultrasound(labels, 0.5, HeadEllipse(50, 50, 300, 200), seed=0)  # metres, not mm
    with pytest.raises(DDICInputError):
        write_hc18_case(tmp_path, "../escape", head_frame[0])


def test_ellipse_accepts_mapping_and_swaps_axes():
    e = HeadEllipse.coerce({"center_x_mm": 1, "center_y_mm": 2, "semi_axis_a_mm": 30, "semi_axis_b_mm": 40})
    assert (e.semi_axis_a_mm, e.semi_axis_b_mm) == (40.0, 30.0)
    assert e.angle_rad == pytest.approx(math.pi / 2)
    assert HeadEllipse.coerce((1, 2, 40, 30, 0.0)) == HeadEllipse(1, 2, 40, 30, 0.0)
