"""ddic.measure (regions, CNR / gCNR, atrium width) and the ``ddic cnr`` command.

Values are checked against hand computation on tiny arrays, against analytic shapes, and against the phantom's
sampled atrium widths (its label maps are the ground truth the width measurement must recover).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ddic.cli.main import main as ddic_main
from ddic.errors import DDICInputError
from ddic.io.images import write_png
from ddic.measure import (
    PixelBox,
    atrium_width,
    box_from_physical,
    cnr,
    cnr_from_values,
    continuous_index,
    gcnr,
    gcnr_bins,
    gcnr_from_values,
    lps_from_ras,
    measure_contrast,
    measure_images,
    measure_pair,
    principal_axis,
    region_mask,
    region_stats,
    region_values,
)

# ------------------------------------------------------------------------------------------------------------
# regions


def test_pixel_box_is_half_open_x_columns_y_rows():
    image = np.arange(6 * 8).reshape(6, 8)  # 6 rows (y), 8 columns (x)
    box = PixelBox.parse("2,1,5,3")
    assert (box.width, box.height, box.n_pixels) == (3, 2, 6)
    assert image[box.slices].shape == (2, 3)
    assert image[box.slices][0, 0] == image[1, 2]  # (x0, y0) = column 2, row 1
    np.testing.assert_array_equal(region_values(image, box), image[1:3, 2:5].ravel())
    assert PixelBox.around(4, 3, 3).as_tuple() == (3, 2, 6, 5)
    assert PixelBox.around(4, 3, 4).as_tuple() == (2, 1, 6, 5)


def test_pixel_box_errors_and_clipping():
    with pytest.raises(DDICInputError, match="empty"):
        PixelBox(3, 1, 3, 4)
    with pytest.raises(DDICInputError, match="four whole pixel indices"):
        PixelBox.parse("1,2,3")
    with pytest.raises(DDICInputError, match="whole pixel index"):
        PixelBox(0.5, 0, 2, 2)
    box = PixelBox(-2, 4, 3, 12)
    assert not box.inside((10, 8))
    assert box.clip((10, 8)).as_tuple() == (0, 4, 3, 10)
    with pytest.raises(DDICInputError, match="outside the image of 8×10"):
        PixelBox(8, 0, 12, 4).clip((10, 8))
    with pytest.raises(DDICInputError, match="at least 2"):
        region_values(np.zeros((5, 5)), PixelBox(4, 4, 9, 9))  # clipped to one pixel
    with pytest.raises(DDICInputError, match="shape"):
        region_mask(np.ones((4, 4), bool), (5, 5))
    with pytest.raises(DDICInputError, match="non-finite"):
        region_values(np.full((4, 4), np.nan), PixelBox(0, 0, 2, 2))


def test_box_from_physical_coordinates():
    # 2D, spacing (0.5, 2) mm, origin (10, -4): pixel (x, y) centre at (10 + 0.5x, -4 + 2y)
    origin, spacing = (10.0, -4.0), (0.5, 2.0)
    np.testing.assert_allclose(continuous_index([[11.0, 2.0]], origin, spacing), [[2.0, 3.0]])
    box = box_from_physical([[11.0, 2.0], [12.2, -4.5]], origin, spacing)
    assert box.as_tuple() == (2, 0, 5, 4)  # x centres 2, 3, 4 (4.4 max); y centres 0…3
    # corners in any order, flipped axes (a RAS-style direction): same pixels
    flipped = np.diag([-1.0, -1.0])
    pts = np.array([[-11.0, -2.0], [-12.2, 4.5]])
    assert box_from_physical(pts, (-10.0, 4.0), spacing, flipped).as_tuple() == (2, 0, 5, 4)
    # 3D geometry of a one-slice volume (Slicer IJK→RAS), clipped to the image shape
    box3 = box_from_physical([[0, 0, 0], [3.0, 30.0, 0]], (0, 0, 0), (1, 1, 1), np.eye(3), shape=(5, 10))
    assert box3.as_tuple() == (0, 0, 4, 5)
    with pytest.raises(DDICInputError, match="no pixel centre"):
        box_from_physical([[10.1, 0], [10.3, 0.5]], origin, spacing)
    with pytest.raises(DDICInputError, match="outside"):
        box_from_physical([[100, 100], [110, 110]], (0, 0), (1, 1), shape=(20, 20))
    np.testing.assert_allclose(lps_from_ras([1.0, 2.0, 3.0]), [-1.0, -2.0, 3.0])


# ------------------------------------------------------------------------------------------------------------
# CNR and gCNR


def test_cnr_matches_hand_computation_with_sample_sd():
    result = cnr_from_values([1, 2, 3], [4, 5, 6, 7])
    assert (result.roi.mean, result.background.mean) == (2.0, 5.5)
    assert result.roi.sd == pytest.approx(1.0)  # ddof = 1; population SD would be 0.816
    assert result.background.sd == pytest.approx(math.sqrt(5 / 3))  # population: 1.118
    assert (result.roi.n, result.background.n) == (3, 4)
    assert result.cnr == pytest.approx(3.5 / math.sqrt(1 + 5 / 3))  # 2.1433; with ddof=0 it would be 2.528
    assert region_stats([2.0, 4.0]).sd == pytest.approx(math.sqrt(2.0))


def test_cnr_on_an_image_with_boxes_and_masks():
    image = np.zeros((4, 6))
    image[0, 0:3] = [1, 2, 3]
    image[3, 2:6] = [4, 5, 6, 7]
    by_box = cnr(image, PixelBox(0, 0, 3, 1), PixelBox(2, 3, 6, 4))
    assert by_box.cnr == pytest.approx(3.5 / math.sqrt(1 + 5 / 3))
    mask_roi = np.zeros((4, 6), bool)
    mask_roi[0, :3] = True
    by_mask = cnr(image, mask_roi, PixelBox(2, 3, 6, 4))
    assert by_mask == by_box
    with pytest.raises(DDICInputError, match="2D"):
        cnr(np.zeros((2, 4, 6)), PixelBox(0, 0, 2, 2), PixelBox(2, 2, 4, 4))


def test_cnr_of_constant_regions_is_inf_or_nan_and_json_safe():
    different = cnr_from_values([3, 3], [5, 5, 5])
    assert math.isinf(different.cnr)
    same = cnr_from_values([3, 3], [3, 3])
    assert math.isnan(same.cnr)
    assert same.to_dict()["cnr"] is None and different.to_dict()["cnr"] is None
    json.dumps(different.to_dict(), allow_nan=False)


def test_gcnr_hand_computed_disjoint_identical_and_partial():
    value, bins = gcnr_from_values([1, 2, 3], [4, 5, 6, 7])
    assert bins == gcnr_bins(7) == math.ceil(2 * 7**0.4) and value == pytest.approx(1.0)
    values = np.arange(50.0)
    assert gcnr_from_values(values, values[::-1])[0] == pytest.approx(0.0)
    assert gcnr_from_values([3, 3], [3, 3, 3])[0] == 0.0
    # bins [0,1) and [1,2]: ROI (0,0,1,1) → [0.5, 0.5], background (1,1,2,2) → [0, 1]; overlap 0.5
    assert gcnr_from_values([0, 0, 1, 1], [1, 1, 2, 2], bins=2) == (pytest.approx(0.5), 2)
    assert gcnr_bins(128) == 14


def test_gcnr_estimates_the_gaussian_overlap():
    rng = np.random.default_rng(0)
    same = gcnr_from_values(rng.normal(size=4000), rng.normal(size=4000))[0]
    assert same < 0.12  # identical distributions: only the histogram noise remains
    shifted = gcnr_from_values(rng.normal(size=4000), rng.normal(3.0, 1.0, size=4000))[0]
    assert shifted == pytest.approx(2 * 0.9331928 - 1, abs=0.04)  # 1 − OVL = 2Φ(1.5) − 1 = 0.866


def test_measure_images_same_pixels_and_shape_check():
    rng = np.random.default_rng(3)
    us = rng.normal(50, 10, (20, 30))
    us[5:10, 5:10] += 60
    mri = 255 - us  # an inverted contrast: same CNR, same gCNR
    roi, bg = PixelBox(5, 5, 10, 10), PixelBox(15, 5, 25, 15)
    pair = measure_pair(us, mri, roi, bg)
    assert pair.us.roi.n == pair.pseudo_mri.roi.n == 25 and pair.us.background.n == 100
    assert pair.us.cnr == pytest.approx(pair.pseudo_mri.cnr)
    assert pair.us.gcnr == pytest.approx(pair.pseudo_mri.gcnr, abs=0.02)
    assert pair.us.gcnr_bins == gcnr_bins(125)
    single = measure_contrast(us, roi, bg)
    assert single.gcnr == pytest.approx(gcnr(us, roi, bg))
    assert set(pair.to_dict()) == {"us", "pseudo_mri"}
    named = measure_images([us, mri], roi, bg)
    assert list(named) == ["image1", "image2"]
    with pytest.raises(DDICInputError, match="different shapes"):
        measure_pair(us, mri[:, :-1], roi, bg)


# ------------------------------------------------------------------------------------------------------------
# atrium width: analytic shapes


def _raster(inside, shape, spacing_xy):
    """Mask of pixel centres (x = col·sx, y = row·sy, mm) inside a shape."""
    sx, sy = spacing_xy
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return inside(cols * sx, rows * sy)


def _rotated(cx, cy, angle_deg):
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))

    def to_local(x, y):
        dx, dy = x - cx, y - cy
        return dx * c + dy * s, -dx * s + dy * c
    return to_local


@pytest.mark.parametrize("spacing", [(0.5, 0.5), (0.4, 0.7), (0.9, 0.45)])
def test_width_of_rotated_rectangle_with_anisotropic_spacing(spacing):
    local = _rotated(20.0, 18.0, 30.0)

    def rect(x, y):
        u, v = local(x, y)
        return (np.abs(u) <= 14.0) & (np.abs(v) <= 4.0)

    mask = _raster(rect, (int(40 / spacing[1]), int(45 / spacing[0])), spacing)
    result = atrium_width(mask, spacing)
    assert result.width_mm == pytest.approx(8.0, abs=0.3)
    angle = math.degrees(math.atan2(result.axis_xy[1], result.axis_xy[0])) % 180.0
    assert angle == pytest.approx(30.0, abs=2.0)
    (x0, y0), (x1, y1) = result.caliper_xy
    assert math.hypot((x1 - x0) * spacing[0], (y1 - y0) * spacing[1]) == pytest.approx(result.width_mm, rel=1e-6)
    assert result.level == "widest"


def test_width_of_rotated_ellipse_is_its_minor_axis():
    spacing = (0.45, 0.8)
    local = _rotated(22.0, 20.0, 120.0)

    def ellipse(x, y):
        u, v = local(x, y)
        return (u / 14.0) ** 2 + (v / 4.5) ** 2 <= 1.0

    mask = _raster(ellipse, (50, 100), spacing)
    assert atrium_width(mask, spacing).width_mm == pytest.approx(9.0, abs=0.35)
    centre, axis, elongation = principal_axis(mask, spacing)
    assert math.degrees(math.atan2(axis[1], axis[0])) % 180.0 == pytest.approx(120.0, abs=2.0)
    assert (centre[0] * spacing[0], centre[1] * spacing[1]) == pytest.approx((22.0, 20.0), abs=0.1)
    assert elongation == pytest.approx(14.0 / 4.5, rel=0.05)


def test_width_at_the_glomus_level_and_posterior_component():
    spacing = (0.5, 0.5)

    def wedge(x, y):  # along x from 5 to 35 mm, 8 mm wide at x = 5 (posterior) narrowing to 4 mm at x = 35
        half = 4.0 - 2.0 * (x - 5.0) / 30.0
        return (x >= 5.0) & (x <= 35.0) & (np.abs(y - 15.0) <= half)

    mask = _raster(wedge, (60, 120), spacing)
    assert atrium_width(mask, spacing).width_mm == pytest.approx(8.0, abs=0.35)
    glomus = mask & _raster(lambda x, y: np.abs(x - 20.0) <= 2.0, mask.shape, spacing)  # centred at x = 20
    at_glomus = atrium_width(mask & ~glomus, spacing, glomus=glomus)
    assert at_glomus.level == "glomus" and at_glomus.width_mm == pytest.approx(6.0, abs=0.3)
    # a second, larger component in front (a "frontal horn" 18 × 12 mm at x 41…59): posterior=(−1, 0) measures
    # the wedge behind it, without it the largest component is measured
    horn = _raster(lambda x, y: (x >= 41) & (x <= 59) & (np.abs(y - 15.25) <= 6.0), mask.shape, spacing)
    assert atrium_width(mask | horn, spacing).width_mm == pytest.approx(12.0, abs=0.35)
    back = atrium_width(mask | horn, spacing, posterior=(-1, 0))
    assert back.width_mm == pytest.approx(8.0, abs=0.35)
    assert back.axis_xy[0] < -0.99  # oriented towards the occiput
    # only the posterior half is searched: with the wide end in front, the widest posterior part is narrower
    flipped = mask[:, ::-1]
    assert atrium_width(flipped, spacing).width_mm == pytest.approx(8.0, abs=0.35)
    assert atrium_width(flipped, spacing, posterior=(-1, 0)).width_mm < 6.6


def test_width_errors():
    with pytest.raises(DDICInputError, match="empty"):
        atrium_width(np.zeros((10, 10), bool), 1.0)
    small = np.zeros((10, 10), bool)
    small[3, 3:5] = True
    with pytest.raises(DDICInputError, match="at least 3"):
        atrium_width(small, 1.0)
    with pytest.raises(DDICInputError, match="spacing"):
        atrium_width(np.ones((5, 5), bool), (1.0, 0.0))
    with pytest.raises(DDICInputError, match="2D"):
        atrium_width(np.ones((2, 5, 5), bool), 1.0)
    with pytest.raises(DDICInputError, match="glomus"):
        atrium_width(np.ones((5, 9), bool), 1.0, glomus=np.zeros((5, 9), bool))


# ------------------------------------------------------------------------------------------------------------
# atrium width: phantom ground truth


PHANTOM_CASES = 30


@pytest.fixture(scope="module")
def phantom_atria():
    """(lumen mask of one hemisphere, choroid mask, sampled width) for both sides of 30 canonical phantoms
    (128 px at 1.094 mm, the TT plane). The hemisphere's lumen holds the frontal horn and the atrium as two
    components; ``posterior=(-1, 0)`` (occiput at the left, canonical orientation) picks the atrium."""
    from ddic.data.labels import Label
    from ddic.data.phantom.anatomy import render_labels, sample_anatomy

    cases = []
    for seed in range(PHANTOM_CASES):
        params = sample_anatomy(seed)
        labels = render_labels(params)
        lumen = np.isin(labels, (Label.LATERAL_VENTRICLE, Label.CHOROID_PLEXUS))
        rows = np.arange(labels.shape[0])[:, None]
        centre = (labels.shape[0] - 1) / 2.0
        for side, half in (("left", rows > centre), ("right", rows < centre)):  # fetal left = lower half
            cases.append((lumen & half, (labels == Label.CHOROID_PLEXUS) & half,
                          params.hemisphere(side).atrium_width_mm))
    return cases


def test_atrium_width_recovers_phantom_truth_within_one_pixel(phantom_atria):
    from ddic.geometry.canonical import CANONICAL_SPACING_MM as px

    widest = np.array([atrium_width(m, px, posterior=(-1, 0)).width_mm - w for m, _, w in phantom_atria])
    glomus = np.array([atrium_width(m & ~g, px, posterior=(-1, 0), glomus=g).width_mm - w
                       for m, g, w in phantom_atria])
    assert len(widest) == 2 * PHANTOM_CASES
    assert np.all(np.abs(widest) <= px) and np.all(np.abs(glomus) <= px)
    # measured (seeds 0–29): widest MAE ≈ 0.21 mm, bias ≈ +0.19 (the max picks the staircase's wide side);
    # at the glomus MAE ≈ 0.17 mm, bias ≈ 0.02
    assert np.abs(widest).mean() < 0.35 and np.abs(glomus).mean() < 0.3
    assert abs(glomus.mean()) < 0.15


# ------------------------------------------------------------------------------------------------------------
# the ddic cnr command


@pytest.fixture
def cnr_images(tmp_path):
    rng = np.random.default_rng(7)
    us = np.clip(rng.normal(60, 8, (24, 32)), 0, 255)
    us[4:10, 4:12] = np.clip(rng.normal(160, 8, (6, 8)), 0, 255)
    mri = 255 - us
    write_png(us, tmp_path / "us.png")
    write_png(mri, tmp_path / "mri.png")
    write_png(np.zeros((24, 33)), tmp_path / "wide.png")
    return tmp_path, np.rint(us), np.rint(mri)


def test_cli_cnr_table_and_json(cnr_images, capsys):
    folder, us, _mri = cnr_images
    out = folder / "reports" / "cnr.json"
    rc = ddic_main(["cnr", str(folder / "us.png"), str(folder / "mri.png"), "--roi", "4,4,12,10",
                    "--background", "16,4,28,16", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "CNR" in printed and "gCNR" in printed and "us.png" in printed
    report = json.loads(out.read_text())
    assert report["kind"] == "ddic_cnr" and report["roi"]["box"] == [4, 4, 12, 10]
    first, second = report["images"]
    expected = cnr(us, PixelBox(4, 4, 12, 10), PixelBox(16, 4, 28, 16))
    assert first["roi"]["n"] == 48 and first["background"]["n"] == 144
    assert first["roi"]["mean"] == pytest.approx(expected.roi.mean)
    assert first["roi"]["sd"] == pytest.approx(expected.roi.sd)
    assert first["cnr"] == pytest.approx(expected.cnr)
    assert second["cnr"] == pytest.approx(first["cnr"])  # an inverted image has the same CNR
    assert 0.0 <= first["gcnr"] <= 1.0 and first["gcnr_bins"] == gcnr_bins(192)
    assert not list(out.parent.glob(".*partial*"))  # atomic write left no temporary file


def test_cli_cnr_masks(cnr_images, capsys):
    folder, us, _ = cnr_images
    roi = np.zeros_like(us)
    roi[4:10, 4:12] = 255
    write_png(roi, folder / "roi.png")
    rc = ddic_main(["cnr", str(folder / "us.png"), "--mask-roi", str(folder / "roi.png"),
                    "--background", "16,4,28,16"])
    assert rc == 0
    assert f"{cnr(us, roi > 0, PixelBox(16, 4, 28, 16)).cnr:.3f}" in capsys.readouterr().out


def test_cli_cnr_errors_exit_2(cnr_images, capsys):
    folder, _, _ = cnr_images
    us = str(folder / "us.png")
    assert ddic_main(["cnr", us, "--roi", "40,0,50,5", "--background", "0,0,5,5"]) == 2
    assert "lies outside the image of 32×24" in capsys.readouterr().err
    assert ddic_main(["cnr", us, str(folder / "wide.png"), "--roi", "0,0,5,5", "--background", "6,6,9,9"]) == 2
    assert "33×24" in capsys.readouterr().err
    assert ddic_main(["cnr", us, "--roi", "0,0,1,1", "--background", "6,6,9,9"]) == 2
    assert "at least 2" in capsys.readouterr().err
    # a box reaching past the edge is clipped, with a note
    assert ddic_main(["cnr", us, "--roi", "28,20,40,30", "--background", "0,0,5,5"]) == 0
    assert "measured on 28,20,32,24" in capsys.readouterr().err
