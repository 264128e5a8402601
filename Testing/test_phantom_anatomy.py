"""The phantom anatomy: IG-21st biometry, sampling, label maps (sizes measured back on the map), metadata."""

import json
import math

import numpy as np
import pytest

from ddic.data.labels import Label
from ddic.data.phantom import biometry as bio
from ddic.data.phantom.anatomy import (
    SIDES, atrium_geometry, head_section, phantom_metadata, render_labels, sample_anatomy, sylvian_half_width,
    with_atrium_widths,
)
from ddic.errors import DDICInputError
from ddic.geometry.canonical import CANONICAL_SIZE_PX, CANONICAL_SPACING_MM

FINE_SPACING = 0.5
FINE_SHAPE = (288, 288)  # 144 mm, the whole head at 38 w


@pytest.fixture(scope="module")
def fine_maps():
    """One phantom per GA rendered at 0.5 mm (seeds chosen once; every map is reused by several tests)."""
    out = {}
    for ga, seed in ((22.0, 11), (30.0, 12), (37.0, 13)):
        params = sample_anatomy(seed, ga_weeks=ga)
        out[ga] = (params, render_labels(params, FINE_SPACING, FINE_SHAPE))
    return out


# ---- biometry laws ------------------------------------------------------------------------------


@pytest.mark.parametrize("ga, hc, hc_sd, bpd, ofd", [
    (21, 184.5, 7.7, 51.7, 65.0), (22, 196.3, 7.9, 55.0, 69.2), (30, 278.4, 9.2, 78.9, 98.0),
    (37, 324.1, 11.2, 92.6, 113.1), (38, 328.1, 11.7, 93.6, 114.2),
])
def test_intergrowth_equations_reproduce_the_table(ga, hc, hc_sd, bpd, ofd):
    assert bio.hc_mean_mm(ga) == pytest.approx(hc, abs=0.06)
    assert bio.hc_sd_mm(ga) == pytest.approx(hc_sd, abs=0.06)
    assert bio.bpd_mean_mm(ga) == pytest.approx(bpd, abs=0.06)
    assert bio.ofd_mean_mm(ga) == pytest.approx(ofd, abs=0.06)


def test_structure_laws_reproduce_anatomy_section_2_2():
    assert bio.skull_thickness_mm(21) == pytest.approx(2.0, abs=0.05)
    assert bio.skull_thickness_mm(38) == pytest.approx(3.1, abs=0.05)
    assert bio.spb_mm(30) == pytest.approx(9.75)
    for ga, width in ((21, 4.1), (28, 6.0), (33, 6.5), (36, 6.2), (38, 5.6)):
        assert bio.csp_width_mean_mm(ga) == pytest.approx(width, abs=0.06)
    assert bio.atrium_mean_mm(21) == pytest.approx(6.2, abs=0.05)
    assert bio.atrium_mean_mm(36) == pytest.approx(5.5, abs=0.05)
    assert bio.atrium_mean_mm(38) == bio.atrium_mean_mm(36)  # Napolitano laws end at 36 w
    assert bio.sylvian_fissure_mean_mm(30) == pytest.approx(12.1, abs=0.06)
    assert bio.pof_mean_mm(21) == pytest.approx(4.5, abs=0.06)
    assert bio.germinal_matrix_width_mm(24) == 2.5 and bio.germinal_matrix_width_mm(32) == pytest.approx(1.4)
    assert bio.germinal_matrix_width_mm(37) == 0.0
    assert list(bio.sylvian_stage([19, 21.5, 26, 30, 35])) == [0, 1, 2, 3, 4]
    assert bio.ga_from_hc_weeks(280) == pytest.approx(30.5, abs=0.06)  # §1.3


# ---- sampling -----------------------------------------------------------------------------------


def test_sampling_and_rendering_are_deterministic_per_seed():
    a, b, c = sample_anatomy(7), sample_anatomy(7), sample_anatomy(8)
    assert a == b and a != c
    np.testing.assert_array_equal(render_labels(a), render_labels(b))
    assert not np.array_equal(render_labels(a), render_labels(c))
    assert 21.0 <= a.ga_weeks <= 38.0


@pytest.mark.parametrize("ga", [22.0, 30.0, 37.0])
def test_sampled_head_biometry_follows_intergrowth(ga):
    samples = [sample_anatomy(seed, ga_weeks=ga) for seed in range(200)]
    hc = np.array([p.hc_mm for p in samples])
    bpd = np.array([p.bpd_mm for p in samples])
    ofd = np.array([p.ofd_mm for p in samples])
    ci = np.array([p.cephalic_index for p in samples])
    mean, sd = bio.hc_mean_mm(ga), bio.hc_sd_mm(ga)
    assert np.all(np.abs(hc - mean) <= 2.5 * sd + 1e-9)  # z_HC truncated at ±2.5
    assert hc.mean() == pytest.approx(mean, rel=0.01)
    assert hc.std() == pytest.approx(sd, rel=0.15)
    # BPD (outer-inner) and OFD follow from HC, CI and the skull: ≈ 1–2 % under the IG means (anatomy.md §1.1)
    assert bpd.mean() == pytest.approx(bio.bpd_mean_mm(ga), rel=0.03)
    assert ofd.mean() == pytest.approx(bio.ofd_mean_mm(ga), rel=0.03)
    assert np.all(np.abs(bpd - bio.bpd_mean_mm(ga)) <= 3.5 * bio.bpd_sd_mm(ga))
    assert np.all(np.abs(ofd - bio.ofd_mean_mm(ga)) <= 3.5 * bio.ofd_sd_mm(ga))
    assert np.all((ci >= 0.72) & (ci <= 0.90))
    for p in samples[:20]:  # the semi-axes reproduce HC and CI exactly
        assert bio.ramanujan_perimeter(p.skull_a_mm, p.skull_b_mm) == pytest.approx(p.hc_mm, rel=1e-6)
        assert p.bpd_mm / p.ofd_mm == pytest.approx(p.cephalic_index, rel=1e-6)


def test_normal_atria_below_ten_mm_and_ventriculomegaly_between_ten_and_twenty():
    normal = [sample_anatomy(s, ga_weeks=26.0) for s in range(100)]
    widths = np.array([p.hemisphere(side).atrium_width_mm for p in normal for side in SIDES])
    assert np.all((widths >= 3.5) & (widths < 10.0))
    assert widths.mean() == pytest.approx(bio.atrium_mean_mm(26.0), abs=0.5)
    left, right = widths[0::2], widths[1::2]
    assert not np.allclose(left, right)  # sides independent
    for ga in (21.0, 30.0, 38.0):
        vm = [sample_anatomy(s, ga_weeks=ga, pathology="ventriculomegaly") for s in range(40)]
        w = np.array([p.hemisphere(side).atrium_width_mm for p in vm for side in SIDES])
        assert np.all((w >= 10.0) & (w <= 20.0)) and w.max() > (12.0 if ga < 25 else 16.0)
        assert all(p.pathology == "ventriculomegaly" for p in vm)


def test_invalid_requests_raise_input_errors():
    with pytest.raises(DDICInputError):
        sample_anatomy(1, pathology="hydrocephalus")
    with pytest.raises(DDICInputError):
        sample_anatomy(1, ga_weeks=45.0)
    with pytest.raises(DDICInputError):
        render_labels(sample_anatomy(1), supersample=0)


# ---- label maps ---------------------------------------------------------------------------------

ALWAYS = {Label.AMNIOTIC_FLUID, Label.SCALP, Label.SKULL, Label.EXTRA_AXIAL_CSF, Label.CORTEX, Label.WHITE_MATTER,
          Label.LATERAL_VENTRICLE, Label.CHOROID_PLEXUS, Label.THIRD_VENTRICLE, Label.THALAMUS,
          Label.BASAL_GANGLIA, Label.SYLVIAN_FISSURE, Label.FALX, Label.AMBIENT_CISTERN}


@pytest.mark.parametrize("ga", [22.0, 30.0, 37.0])
def test_every_expected_label_is_present(fine_maps, ga):
    params, labels = fine_maps[ga]
    present = set(np.unique(labels).tolist())
    assert ALWAYS <= present, sorted(Label(v).name for v in ALWAYS - present)
    assert (Label.CAVUM_SEPTUM_PELLUCIDUM in present) == params.csp_present
    if params.germinal_matrix_mm >= 1.0:
        assert Label.GERMINAL_MATRIX in present
    if ga <= 30.0:
        assert params.germinal_matrix_mm > 0
    assert Label.BACKGROUND not in present and Label.MATERNAL_WALL not in present
    canonical = render_labels(params)  # the 128-px canonical map keeps every large structure
    big = ALWAYS - {Label.FALX, Label.THIRD_VENTRICLE, Label.SYLVIAN_FISSURE, Label.CHOROID_PLEXUS}
    assert big <= set(np.unique(canonical).tolist())


def _ellipse_from_mask(mask, spacing):
    rows, cols = np.nonzero(mask)
    x, y = cols * spacing, rows * spacing
    cov = np.cov(np.stack([x, y]))
    evals = np.sort(np.linalg.eigvalsh(cov))[::-1]
    a, b = 2.0 * np.sqrt(evals)  # a filled ellipse has variance semi-axis² / 4
    return x.mean(), y.mean(), a, b


@pytest.mark.parametrize("ga, spacing, shape", [(22.0, CANONICAL_SPACING_MM, (128, 128)),
                                                (30.0, CANONICAL_SPACING_MM, (128, 128)),
                                                (37.0, CANONICAL_SPACING_MM, (128, 128)),
                                                (30.0, FINE_SPACING, FINE_SHAPE)])
def test_skull_ellipse_on_the_map_matches_the_metadata(fine_maps, ga, spacing, shape):
    params = fine_maps[ga][0]
    labels = fine_maps[ga][1] if spacing == FINE_SPACING else render_labels(params, spacing, shape)
    meta = phantom_metadata(params, spacing, shape)
    head = (labels != Label.AMNIOTIC_FLUID) & (labels != Label.SCALP)  # inside the outer skull border
    cx, cy, a, b = _ellipse_from_mask(head, spacing)
    assert bio.ramanujan_perimeter(a, b) == pytest.approx(meta.hc_mm, rel=0.02)
    assert a == pytest.approx(meta.skull_semi_axis_a_mm, rel=0.02)
    assert b == pytest.approx(meta.skull_semi_axis_b_mm, rel=0.02)
    assert cx == pytest.approx(meta.skull_center_x_mm, abs=spacing)
    assert cy == pytest.approx(meta.skull_center_y_mm, abs=spacing)
    assert meta.skull_center_x_mm == pytest.approx((shape[1] - 1) / 2 * spacing)
    # canonical orientation: the CSP/frontal horns right of the centre, the atria left of it
    rows, cols = np.nonzero(labels == Label.LATERAL_VENTRICLE)
    assert cols.min() < shape[1] / 2 < cols.max()
    thal_cols = np.nonzero(labels == Label.THALAMUS)[1]
    atria_cols = cols[cols < shape[1] / 2 - 0.2 * a / spacing]
    assert atria_cols.size and np.median(atria_cols) < np.median(thal_cols)


def measure_atrium_width(labels, spacing, meta, side, half_length_mm=0.0):
    """Inner atrium width on the label map: the run of ventricle (+ choroid) pixels along lines perpendicular
    to the ventricle axis (nearest-pixel sampling, 0.05-px steps), averaged over 7 parallel cuts within
    ±1 px along the axis (inside the straight part), which evens out the staircase of oblique edges."""
    cx, cy = getattr(meta, f"atrium_center_{side}_mm")
    angle = getattr(meta, f"atrium_axis_angle_{side}_rad")
    ax, ay = math.cos(angle), math.sin(angle)
    nx, ny = -ay, ax
    step = 0.05 * spacing
    t = np.arange(-40.0, 40.0, step)
    centre = np.argmin(np.abs(t))
    widths = []
    for shift in np.linspace(-1.0, 1.0, 7) * min(spacing, half_length_mm):
        cols = np.rint((cx + shift * ax + t * nx) / spacing).astype(int)
        rows = np.rint((cy + shift * ay + t * ny) / spacing).astype(int)
        inside = np.isin(labels[rows, cols], [Label.LATERAL_VENTRICLE, Label.CHOROID_PLEXUS])
        assert inside[centre]
        lo = centre
        while lo > 0 and inside[lo - 1]:
            lo -= 1
        hi = centre
        while hi < t.size - 1 and inside[hi + 1]:
            hi += 1
        widths.append((hi - lo + 1) * step)
    return float(np.mean(widths))


@pytest.mark.parametrize("seed, ga, pathology", [(21, 22.0, None), (22, 27.0, None), (23, 33.0, None),
                                                 (24, 37.5, None), (25, 24.0, "ventriculomegaly"),
                                                 (26, 34.0, "ventriculomegaly")])
def test_atrium_width_measured_on_the_label_map_equals_the_sampled_width(seed, ga, pathology):
    params = sample_anatomy(seed, ga_weeks=ga, pathology=pathology)
    for spacing, shape in ((CANONICAL_SPACING_MM, (128, 128)), (FINE_SPACING, FINE_SHAPE)):
        labels = render_labels(params, spacing, shape)
        meta = phantom_metadata(params, spacing, shape)
        for side in SIDES:
            half = atrium_geometry(params, side).half_length_mm
            measured = measure_atrium_width(labels, spacing, meta, side, half)
            expected = getattr(meta, f"atrium_width_{side}_mm")
            assert measured == pytest.approx(expected, abs=spacing), (side, spacing)
        if spacing == CANONICAL_SPACING_MM and pathology is None:
            break  # the fine grid is exercised by the other cases


def test_set_atrium_widths_render_as_requested():
    params = with_atrium_widths(sample_anatomy(5, ga_weeks=28.0), left_mm=15.0, right_mm=6.0)
    labels = render_labels(params, FINE_SPACING, FINE_SHAPE)
    meta = phantom_metadata(params, FINE_SPACING, FINE_SHAPE)
    for side, width in (("left", 15.0), ("right", 6.0)):
        half = atrium_geometry(params, side).half_length_mm
        assert measure_atrium_width(labels, FINE_SPACING, meta, side, half) == pytest.approx(width, abs=FINE_SPACING)
    # the left hemisphere is the lower image half
    assert meta.atrium_center_left_mm[1] > meta.skull_center_y_mm > meta.atrium_center_right_mm[1]


def test_slice_offset_changes_structures_smoothly():
    params = sample_anatomy(31, ga_weeks=30.0)
    offsets = np.arange(-15.0, 15.1, 3.0)
    maps = {z: render_labels(params, slice_offset_mm=z, supersample=2) for z in offsets}
    area = {lab: np.array([np.count_nonzero(maps[z] == lab) for z in offsets])
            for lab in (Label.THALAMUS, Label.CAVUM_SEPTUM_PELLUCIDUM, Label.LATERAL_VENTRICLE, Label.SKULL,
                        Label.WHITE_MATTER)}
    head = np.array([np.count_nonzero(maps[z] != Label.AMNIOTIC_FLUID) for z in offsets])
    i0 = int(np.argmin(np.abs(offsets)))
    assert head[i0] == head.max() and head[0] < head[i0] and head[-1] < head[i0]
    th, csp = area[Label.THALAMUS], area[Label.CAVUM_SEPTUM_PELLUCIDUM]
    assert th[2] > th[-3]  # thalami lie below the TT plane (−9 vs +9 mm)
    if params.csp_present:
        assert csp[i0] > 0 and csp[0] < csp[i0]
    assert len({tuple(a) for a in area.values()}) == len(area)  # structures change differently
    for lab, a in area.items():  # no jumps: a 3-mm step changes any structure by well under its peak
        assert np.max(np.abs(np.diff(a))) <= 0.6 * a.max() + 4, Label(lab).name
    assert set(np.unique(render_labels(params, slice_offset_mm=params.head_height_mm + 1.0))) == {
        Label.AMNIOTIC_FLUID}
    assert head_section(params, params.head_height_mm + 1.0) is None
    assert atrium_geometry(params, "left", 20.0) is None


def test_maturation_shows_in_sulci_and_operculisation():
    early, late = sample_anatomy(3, ga_weeks=22.0), sample_anatomy(3, ga_weeks=37.0)

    def visible(p):
        return sum(bio.sulcus_depth_mm(p.ga_effective_weeks, s.onset_ga_weeks, s.max_depth_mm)
                   >= bio.SULCATION.visible_depth_mm for side in SIDES for s in p.hemisphere(side).sulci)

    assert visible(early) <= 2 and visible(late) >= 16
    assert late.left.sylvian_stage > early.left.sylvian_stage
    assert sylvian_half_width(4.0, 0.0) < sylvian_half_width(3.0, 0.0) < sylvian_half_width(1.0, 0.0)
    assert late.germinal_matrix_mm < early.germinal_matrix_mm
    lab_early, lab_late = render_labels(early), render_labels(late)
    # the cortical ribbon is folded late: more cortex per unit of brain
    ratio = [np.count_nonzero(m == Label.CORTEX) / np.count_nonzero(np.isin(m, [Label.CORTEX, Label.WHITE_MATTER]))
             for m in (lab_early, lab_late)]
    assert ratio[1] > ratio[0]


def test_metadata_serialises_for_json_and_csv():
    params = sample_anatomy(9, pathology="ventriculomegaly")
    meta = phantom_metadata(params)
    data = json.loads(json.dumps(meta.to_dict()))
    assert data["pathology"] == "ventriculomegaly" and data["shape"] == [CANONICAL_SIZE_PX] * 2
    assert data["hc_mm"] == pytest.approx(params.hc_mm) and 10.0 <= data["atrium_width_left_mm"] <= 20.0
    row = meta.to_csv_row()
    assert {"hc_mm", "bpd_mm", "ofd_mm", "atrium_center_left_mm_x", "skull_semi_axis_a_mm"} <= set(row)
    assert all(not isinstance(v, (list, tuple, dict)) for v in row.values())
    json.dumps(params.to_dict())
