"""Frames with geometry: reading, luminance, writing back in the same format family, square fitting."""

import numpy as np
import pytest
import SimpleITK as sitk

from ddic.errors import DDICInputError
from ddic.geometry.square_fit import SquareFit
from ddic.io.images import Frame, image_stem, output_suffix, read_frame, write_like


def test_rgb_png_becomes_luminance(tmp_path):
    rgb = np.zeros((5, 7, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 50, 200
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "f.png"))
    frame = read_frame(tmp_path / "f.png")
    assert frame.shape == (5, 7) and frame.is_8bit
    assert frame.pixels[0, 0] == pytest.approx(0.299 * 100 + 0.587 * 50 + 0.114 * 200, rel=1e-5)


def test_nrrd_geometry_round_trip(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12 * 9, dtype=np.float32).reshape(12, 9))
    image.SetSpacing((0.2, 0.3))
    image.SetOrigin((10.0, -5.0))
    image.SetDirection((0.0, 1.0, -1.0, 0.0))
    sitk.WriteImage(image, str(tmp_path / "us.nrrd"))
    frame = read_frame(tmp_path / "us.nrrd")
    assert not frame.is_8bit
    out = tmp_path / ("us_result" + output_suffix(tmp_path / "us.nrrd"))
    write_like(frame.pixels * 0.5, frame, out)
    back = sitk.ReadImage(str(out))
    assert back.GetSpacing() == pytest.approx((0.2, 0.3))
    assert back.GetOrigin() == pytest.approx((10.0, -5.0))
    assert back.GetDirection() == pytest.approx((0.0, 1.0, -1.0, 0.0))
    np.testing.assert_allclose(sitk.GetArrayFromImage(back), frame.pixels * 0.5)


def test_single_slice_nifti_is_written_back_3d(tmp_path):
    volume = sitk.GetImageFromArray(np.ones((1, 6, 8), dtype=np.int16))
    volume.SetSpacing((0.5, 0.5, 3.0))
    sitk.WriteImage(volume, str(tmp_path / "f.nii.gz"))
    frame = read_frame(tmp_path / "f.nii.gz")
    assert frame.shape == (6, 8)
    assert output_suffix(tmp_path / "f.nii.gz") == ".nii.gz" and image_stem(tmp_path / "f.nii.gz") == "f"
    write_like(frame.pixels, frame, tmp_path / "g.nii.gz")
    back = sitk.ReadImage(str(tmp_path / "g.nii.gz"))
    assert back.GetDimension() == 3 and back.GetSize() == (8, 6, 1)
    assert back.GetSpacing() == pytest.approx((0.5, 0.5, 3.0))


def test_volumes_and_missing_files_are_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 6, 8), dtype=np.float32)), str(tmp_path / "v.nrrd"))
    with pytest.raises(DDICInputError, match="4 slices"):
        read_frame(tmp_path / "v.nrrd")
    with pytest.raises(DDICInputError, match="not found"):
        read_frame(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DDICInputError, match="Cannot read"):
        read_frame(tmp_path / "bad.png")


def test_format_families():
    assert output_suffix("a.jpg") == ".png"
    assert output_suffix("a.NHDR") == ".nrrd"
    assert output_suffix("a.nii") == ".nii.gz"
    assert output_suffix("a.dcm") == ".nrrd"


def test_square_fit_is_identity_for_model_sized_frames():
    pixels = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    fit = SquareFit(Frame.from_array(pixels, spacing=(0.3, 0.3)), 32)
    assert fit.is_identity
    np.testing.assert_array_equal(fit.to_model(), pixels)
    np.testing.assert_array_equal(fit.to_frame(pixels), pixels)


def test_square_fit_round_trip_keeps_the_physical_layout():
    height, width = 54, 80  # landscape like HC18 frames, anisotropic spacing
    yy, xx = np.mgrid[0:height, 0:width]
    spacing = (0.25, 0.4)
    # a smooth blob at a known physical position, far from the borders
    px, py = 50 * spacing[0], 20 * spacing[1]
    blob = np.exp(-(((xx * spacing[0] - px) ** 2) + ((yy * spacing[1] - py) ** 2)) / (2 * 2.0 ** 2))
    frame = Frame.from_array(blob.astype(np.float32), spacing=spacing, origin=(3.0, 4.0))
    fit = SquareFit(frame, 64)
    model = fit.to_model()
    assert model.shape == (64, 64)
    # the model grid covers the longer physical side (80·0.25 = 20 mm vs 54·0.4 = 21.6 mm)
    my, mx = np.unravel_index(np.argmax(model), model.shape)
    side = max(width * spacing[0], height * spacing[1]) / 64
    centre_frame = np.array([(width - 1) / 2 * spacing[0], (height - 1) / 2 * spacing[1]])
    blob_phys = np.array([mx, my]) * side - side * 63 / 2 + centre_frame
    assert np.allclose(blob_phys, [px, py], atol=side)
    back = fit.to_frame(model)
    assert back.shape == frame.shape
    assert np.abs(back - blob).max() < 0.08


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from ddic.io.atomic import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "report.json").stat().st_mode)
    assert mode == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no partial file left behind
