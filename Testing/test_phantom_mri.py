"""The phantom's T2w MRI renderer (contrast, blur, Rician noise, bias, volumes) and the FeTA writer."""

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from ddic.data.labels import HEAD_LABELS, Label
from ddic.data.phantom.anatomy import render_labels, sample_anatomy
from ddic.data.phantom.feta_files import FETA_LUT, write_feta_subject
from ddic.data.phantom.mri import (
    MRIConfig, bias_field, haste_kspace_filter, render_mri_slice, render_mri_volume, sample_acquisition, tissue_table,
)
from ddic.errors import DDICInputError


def test_slice_is_deterministic_per_seed():
    params = sample_anatomy(4, ga_weeks=27.0)
    a, b, c = (render_mri_slice(params, seed, config=MRIConfig(supersample=2)) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (128, 128) and a.image.dtype == np.float32 and a.labels.dtype == np.uint8
    assert not np.array_equal(a.image, c.image)
    np.testing.assert_array_equal(a.labels, c.labels)  # same anatomy, other acquisition
    np.testing.assert_array_equal(a.labels, render_labels(params, supersample=2))
    assert a.info.metadata.hc_mm == pytest.approx(params.hc_mm)


def _interior_mean(image, labels, wanted):
    mask = np.isin(labels, wanted)
    inner = ndimage.binary_erosion(mask)
    return float(image[inner if inner.sum() >= 10 else mask].mean())


@pytest.mark.parametrize("ga, seed", [(22.0, 41), (30.0, 42)])
def test_t2_contrast_order_csf_wm_cortex_germinal_matrix(ga, seed):
    params = sample_anatomy(seed, ga_weeks=ga)
    out = render_mri_slice(params, seed, size=256, spacing_mm=0.55, config=MRIConfig(snr=(30.0, 30.0)))
    img, lab = out.image, out.labels
    csf = _interior_mean(img, lab, [Label.LATERAL_VENTRICLE, Label.CAVUM_SEPTUM_PELLUCIDUM,
                                    Label.AMNIOTIC_FLUID])
    wm = _interior_mean(img, lab, [Label.WHITE_MATTER])
    cortex = _interior_mean(img, lab, [Label.CORTEX])
    gm = _interior_mean(img, lab, [Label.GERMINAL_MATRIX])
    skull = _interior_mean(img, lab, [Label.SKULL])
    assert params.germinal_matrix_mm > 0
    assert csf > wm > cortex > gm > skull, (csf, wm, cortex, gm, skull)


def test_white_matter_darkens_with_gestational_age():
    te = 100.0
    young, old = tissue_table(21.0), tissue_table(38.0)
    csf = young[Label.EXTRA_AXIAL_CSF].signal(te)
    rel_young = young[Label.WHITE_MATTER].signal(te) / csf
    rel_old = old[Label.WHITE_MATTER].signal(te) / csf
    assert 0.65 <= rel_young <= 0.75 and 0.55 <= rel_old <= 0.62  # anatomy.md §3.2
    assert old[Label.THALAMUS].signal(te) < young[Label.THALAMUS].signal(te)
    for ga in (21.0, 30.0, 38.0):  # §3.2 ordering at the extremes of the TE range
        table = tissue_table(ga)
        for te in (80.0, 140.0):
            s = {k: t.signal(te) for k, t in table.items()}
            assert (s[Label.LATERAL_VENTRICLE] > s[Label.WHITE_MATTER] > s[Label.CORTEX]
                    > s[Label.GERMINAL_MATRIX] > s[Label.SKULL])


def test_background_noise_is_rayleigh_with_the_reported_sigma():
    params = sample_anatomy(5, ga_weeks=25.0)
    # without the HASTE filter (whose PSF tails carry a little signal far out) the masked background is pure
    # complex Gaussian noise: its magnitude must be Rayleigh with the reported sigma
    cfg = MRIConfig(mask="brain", snr=(20.0, 20.0), supersample=2, haste_blur=False)
    out = render_mri_slice(params, 3, config=cfg)
    sigma = out.info.acquisition.noise_sigma
    head = np.isin(out.labels, list(HEAD_LABELS))
    far = ndimage.distance_transform_edt(~head) > 10
    bg = out.image[far].astype(np.float64)
    rayleigh_ratio = math.sqrt(math.pi / 2) / math.sqrt(2 - math.pi / 2)  # mean / SD = 1.913
    assert bg.size > 2000
    assert bg.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.05)
    assert bg.mean() / bg.std() == pytest.approx(rayleigh_ratio, rel=0.06)
    clean = render_mri_slice(params, 3, config=replace(cfg, add_noise=False))
    assert np.all(clean.image[far] == 0.0)
    # with the HASTE filter the far background stays Rayleigh-like (small leakage of brain signal)
    blurred = render_mri_slice(params, 3, config=replace(cfg, haste_blur=True))
    bgb = blurred.image[far].astype(np.float64)
    assert bgb.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.15)


def test_bias_field_and_kspace_filter_are_bounded():
    params = sample_anatomy(6)
    acq = sample_acquisition(params, 11, 3.0, MRIConfig(bias_amplitude=(0.2, 0.2)))
    x = np.linspace(-70, 70, 64)
    for z in (-40.0, 0.0, 40.0):
        field = bias_field(acq, x, x, z, (70.0, 70.0, 40.0))
        assert np.all(np.abs(field - 1.0) <= 0.2 + 1e-6) and field.std() > 0.005
    filt = haste_kspace_filter((128, 128), (1.0, 1.0), acq)
    assert filt[0, 0] == 1.0 and filt.min() == 0.0 and filt.max() == 1.0
    kept = np.count_nonzero(filt) / filt.size
    assert kept < 0.9  # truncation + half-Fourier remove part of k-space


def test_volume_stack_shapes_geometry_and_central_labels():
    params = sample_anatomy(8, ga_weeks=29.0)
    cfg = MRIConfig(supersample=2)
    vol = render_mri_volume(params, 5, spacing_mm=(1.5, 1.5, 4.0), n_slices=5, shape=(96, 96), config=cfg)
    assert vol.volume.shape == vol.labels.shape == (5, 96, 96)
    assert vol.volume.dtype == np.float32 and vol.labels.dtype == np.uint8
    assert vol.info.slice_offsets_mm == (-8.0, -4.0, 0.0, 4.0, 8.0)
    np.testing.assert_array_equal(vol.labels[2], render_labels(params, 1.5, (96, 96), 0.0, supersample=2))
    assert not np.array_equal(vol.labels[0], vol.labels[4])
    centre = vol.info.affine @ np.array([47.5, 47.5, 2.0, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    assert vol.info.acquisition.slice_thickness_mm == 4.0
    json.dumps(vol.info.to_dict())
    # the TT slice of the stack shows bright ventricles over darker parenchyma
    assert _interior_mean(vol.volume[2], vol.labels[2], [Label.LATERAL_VENTRICLE]) > \
        _interior_mean(vol.volume[2], vol.labels[2], [Label.WHITE_MATTER])


def test_tilted_slice_mixes_offsets_deterministically():
    params = sample_anatomy(10, ga_weeks=31.0)
    cfg = MRIConfig(tilt_deg_max=8.0, supersample=2)
    a = render_mri_slice(params, 4, config=cfg)
    b = render_mri_slice(params, 4, config=cfg)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert max(abs(t) for t in a.info.acquisition.tilt_deg) > 0
    assert not np.array_equal(a.labels, render_labels(params, supersample=2))


def test_feta_writer_round_trip(tmp_path):
    params = sample_anatomy(12, ga_weeks=26.5)
    vol = render_mri_volume(params, 1, spacing_mm=(2.0, 2.0, 4.0), n_slices=3, shape=(64, 64),
                            config=MRIConfig(supersample=1))
    sp = vol.info.spacing_xyz
    paths = write_feta_subject(tmp_path, 7, vol.volume, vol.labels, sp, params.ga_weeks,
                               origin=vol.info.origin_xyz, sidecar=vol.info.to_dict())
    write_feta_subject(tmp_path, "sub-002", vol.volume, vol.labels, sp, 33.25, pathology="ventriculomegaly")
    write_feta_subject(tmp_path, "007", vol.volume, vol.labels, sp, params.ga_weeks)  # rewrite: one row
    assert paths["T2w"] == tmp_path / "sub-007" / "anat" / "sub-007_rec-phantom_T2w.nii.gz"
    found = sorted(tmp_path.glob("sub-*/anat/*_T2w.nii.gz"))
    assert len(found) == 2 and all(p.with_name(p.name.replace("_T2w", "_dseg")).exists() for p in found)
    t2 = sitk.ReadImage(str(paths["T2w"]))
    seg = sitk.ReadImage(str(paths["dseg"]))
    assert t2.GetSpacing() == pytest.approx(sp) and seg.GetOrigin() == pytest.approx(vol.info.origin_xyz)
    np.testing.assert_allclose(sitk.GetArrayFromImage(t2), vol.volume)
    classes = sitk.GetArrayFromImage(seg)
    assert classes.dtype == np.uint8 and set(np.unique(classes)) <= set(range(8))
    np.testing.assert_array_equal(classes, FETA_LUT[vol.labels])
    assert {1, 2, 3, 4, 6} <= set(np.unique(classes).tolist())
    with open(tmp_path / "participants.tsv", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == ["participant_id", "condition", "gestational_age"]
    assert [r[0] for r in rows[1:]] == ["sub-002", "sub-007"]
    assert rows[1][1] == "Pathology" and rows[2][1] == "Neurotypical"
    assert float(rows[2][2]) == pytest.approx(26.5)
    assert json.loads(paths["json"].read_text())["acquisition"]["seed"] == 1
    assert not list(tmp_path.rglob("*.partial*"))
    with pytest.raises(DDICInputError):
        write_feta_subject(tmp_path, "bad id", vol.volume, vol.labels, sp, 30.0)
    with pytest.raises(DDICInputError):
        write_feta_subject(tmp_path, 1, vol.volume, vol.labels[:2], sp, 30.0)
