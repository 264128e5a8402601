"""Reading and writing 2D frames with their physical geometry (SimpleITK).

A :class:`Frame` is a grayscale float32 pixel array plus the image it came from, so that any result can
be written back with the input's origin, spacing and direction, in the input's format family.
RGB(A) input is converted to luminance (ITU-R BT.601 weights, as ultrasound screen captures are RGB).
A 3D image with a single slice (e.g. a 2D NRRD or NIfTI written as 3D) is accepted and written back 3D.
:func:`read_frame` is the one reader of frames: it checks the header before reading
(:mod:`ddic.io.header`: pixel limit, declared vs stored size) and refuses non-finite pixels after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DDICInputError
from .atomic import atomic_path
from .header import MAX_FRAME_PIXELS, check_finite, check_header, read_header
from .intensity import is_8bit

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)

# input suffix → the suffix results are written with (the input's "format family")
FORMAT_FAMILIES = {
    ".png": ".png", ".jpg": ".png", ".jpeg": ".png", ".bmp": ".png", ".tif": ".png", ".tiff": ".png",
    ".nrrd": ".nrrd", ".nhdr": ".nrrd",
    ".nii": ".nii.gz", ".nii.gz": ".nii.gz",
    ".mha": ".mha", ".mhd": ".mha",
    ".dcm": ".nrrd",  # a single-frame DICOM result goes to NRRD: writing DICOM would need a full header
}
IMAGE_SUFFIXES = tuple(FORMAT_FAMILIES)


def image_suffix(path: str | os.PathLike) -> str:
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def image_stem(path: str | os.PathLike) -> str:
    name = Path(path).name
    suffix = image_suffix(path)
    return name[: len(name) - len(suffix)] if suffix else name


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The readable image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DDICInputError(f"Image folder not found: {folder}. Give a folder of PNG, NRRD or NIfTI images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    return files


@dataclass
class Frame:
    """A 2D grayscale frame: ``pixels`` (H, W) float32 and the SimpleITK image that carries its geometry."""

    pixels: np.ndarray
    image2d: "object"  # SimpleITK.Image, 2D scalar float32, with the frame's geometry
    source: "object"  # SimpleITK.Image as read (2D or 3D single-slice, scalar or vector)
    path: Path | None = None
    is_8bit: bool = False

    @property
    def spacing(self) -> tuple[float, float]:
        return tuple(self.image2d.GetSpacing())

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape

    @classmethod
    def from_array(cls, pixels: np.ndarray, spacing=(1.0, 1.0), origin=(0.0, 0.0),
                   direction=(1.0, 0.0, 0.0, 1.0)) -> "Frame":
        """A frame from an array (H, W), for in-memory use (tests, the Slicer layer)."""
        import SimpleITK as sitk

        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 2:
            raise DDICInputError(f"A frame must be a 2D array, got shape {pixels.shape}.")
        check_finite(pixels, "The image")
        image = sitk.GetImageFromArray(pixels)
        image.SetSpacing(tuple(float(s) for s in spacing))
        image.SetOrigin(tuple(float(o) for o in origin))
        image.SetDirection(tuple(float(d) for d in direction))
        return cls(pixels=pixels, image2d=image, source=image, path=None, is_8bit=False)


def read_frame(path: str | os.PathLike) -> Frame:
    """Read one 2D frame (PNG/JPG/BMP/TIFF, NRRD, NIfTI, MHA, single-frame DICOM) as grayscale float32."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise DDICInputError(f"Image file not found: {path}.")
    header = read_header(path)
    if len(header.size) == 3 and header.size[2] != 1:
        raise DDICInputError(
            f"{path} is a 3D volume with {header.size[2]} slices; DDIC translates 2D frames. "
            "Extract the transthalamic slice first (e.g. save one slice as NRRD)."
        )
    if len(header.size) not in (2, 3):
        raise DDICInputError(f"{path} has {len(header.size)} dimensions; DDIC needs a 2D frame.")
    check_header(path, header, MAX_FRAME_PIXELS, "frame")
    try:
        source = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DDICInputError(
            f"Cannot read {path} as an image ({str(exc).strip().splitlines()[-1]}). "
            "Supported: PNG, JPG, BMP, TIFF, NRRD, NIfTI, MHA and single-frame DICOM."
        ) from exc
    eight_bit = is_8bit(source.GetPixelIDTypeAsString())
    image = source
    if image.GetDimension() == 3:
        if image.GetSize()[2] != 1:
            raise DDICInputError(
                f"{path} is a 3D volume with {image.GetSize()[2]} slices; DDIC translates 2D frames. "
                "Extract the transthalamic slice first (e.g. save one slice as NRRD)."
            )
        size = list(image.GetSize())
        image = sitk.Extract(image, [size[0], size[1], 0], [0, 0, 0])
    elif image.GetDimension() != 2:
        raise DDICInputError(f"{path} has {image.GetDimension()} dimensions; DDIC needs a 2D frame.")
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:
        if components >= 3:
            array = array[..., :3] @ np.asarray(LUMINANCE_WEIGHTS, dtype=np.float32)
        else:  # gray + alpha
            array = array[..., 0]
    check_finite(array, str(path))
    image2d = sitk.GetImageFromArray(array)
    image2d.CopyInformation(image) if components == 1 else _copy_geometry(image, image2d)
    return Frame(pixels=array, image2d=image2d, source=source, path=path, is_8bit=eight_bit)


def _copy_geometry(src, dst) -> None:
    dst.SetOrigin(src.GetOrigin())
    dst.SetSpacing(src.GetSpacing())
    dst.SetDirection(src.GetDirection())


def output_suffix(input_path: str | os.PathLike | None) -> str:
    """The suffix a result of ``input_path`` is written with (PNG for 8-bit picture formats, …)."""
    if input_path is None:
        return ".nrrd"
    return FORMAT_FAMILIES.get(image_suffix(input_path), ".nrrd")


def write_like(pixels: np.ndarray, frame: Frame, path: str | os.PathLike) -> Path:
    """Write ``pixels`` (H, W; 0…255 scale) with ``frame``'s geometry, atomically.

    PNG gets uint8 (rounded, clipped); NRRD / NIfTI / MHA get float32 so no precision is lost.
    """
    import SimpleITK as sitk

    path = Path(path)
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.shape != frame.shape:
        raise DDICInputError(f"Result shape {pixels.shape} differs from the frame's {frame.shape}.")
    to_png = image_suffix(path) == ".png"
    data = np.clip(np.rint(pixels), 0, 255).astype(np.uint8) if to_png else pixels
    if frame.source.GetDimension() == 3 and not to_png:
        image = sitk.GetImageFromArray(data[None])
        _copy_geometry(frame.source, image)
    else:
        image = sitk.GetImageFromArray(data)
        _copy_geometry(frame.image2d, image)
    with atomic_path(path, expected_bytes=data.nbytes) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=not to_png)
    return path


def write_png(pixels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8-range (H, W) or (H, W, 3) array as PNG, atomically (previews, grids)."""
    import SimpleITK as sitk

    data = np.clip(np.rint(np.asarray(pixels, dtype=np.float32)), 0, 255).astype(np.uint8)
    image = sitk.GetImageFromArray(data, isVector=data.ndim == 3)
    with atomic_path(path, expected_bytes=data.nbytes) as tmp:
        sitk.WriteImage(image, str(tmp))
    return Path(path)
