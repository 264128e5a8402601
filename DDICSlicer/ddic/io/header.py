"""What an image file declares, checked before a single pixel is read.

A header can declare any size: an NRRD header of a few bytes that says 100000 × 100000 makes a plain
``SimpleITK.ReadImage`` allocate 10 GB before it finds there is no data. So every image is first read
with ``ImageFileReader.ReadImageInformation`` (the header alone) and refused when

* it declares more than :data:`MAX_FRAME_PIXELS` pixels per 2D frame (:data:`MAX_VOLUME_VOXELS` voxels
  for the 3D volumes of ``ddic prepare feta|crl``) — the documented ceiling that bounds memory
  (BENCHMARKS.md, memory); or
* the file cannot hold what the header declares: for uncompressed (raw) data — NRRD ``encoding: raw``,
  MetaImage with ``CompressedData = False``, ``.nii`` — the bytes on disk after the header must be at
  least the declared pixel bytes; for deflate-compressed data (PNG, ``.nii.gz``, gzip NRRD, compressed
  MetaImage) at least the declared bytes / :data:`DEFLATE_MAX_RATIO`, deflate's largest possible
  compression ratio. Other encodings (JPEG, DICOM, bzip2) only get the pixel limit.

After reading, :func:`check_finite` refuses NaN or infinite pixels (see its docstring for the rule).
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DDICInputError

MAX_FRAME_PIXELS = 40_000_000
"""Largest 2D frame read (pixels, e.g. 8000 × 5000): 3× a 4000 × 3000 capture and 20× a 1920 × 1080
screen grab. ``ddic translate`` needs ≈ 33 bytes per frame pixel on top of Python, torch and the models
(4000 × 3000: +380 MiB; BENCHMARKS.md, memory), so the largest accepted frame adds ≈ 1.3 GB."""
MAX_VOLUME_VOXELS = 600_000_000
"""Largest 3D volume read by the MRI preparers (voxels; ≈ 843³): FeTA volumes are 256³ (17 M)."""
DEFLATE_MAX_RATIO = 1032
"""Deflate (zlib/gzip/PNG) cannot compress better than 1032:1 (zlib technical details), so a deflate
file smaller than declared bytes / 1032 cannot hold its image."""

_RAW_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".nii")
_DEFLATE_SUFFIXES = (".png", ".nii.gz")


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an image file says, before any pixel is read."""

    size: tuple[int, ...]  # SimpleITK order (x, y[, z])
    components: int
    bytes_per_component: int
    pixel_type: str

    @property
    def pixels(self) -> int:
        return math.prod(self.size)

    @property
    def data_bytes(self) -> int:
        return self.pixels * self.components * self.bytes_per_component

    def size_text(self) -> str:
        return " × ".join(str(s) for s in self.size)


def read_header(path: str | os.PathLike) -> ImageHeader:
    """The header of ``path`` (SimpleITK ``ReadImageInformation``: no pixel data is read)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DDICInputError(
            f"Cannot read {path} as an image ({str(exc).strip().splitlines()[-1]}). "
            "Supported: PNG, JPG, BMP, TIFF, NRRD, NIfTI, MHA and single-frame DICOM."
        ) from exc
    pixel_id = reader.GetPixelID()
    probe = sitk.Image([1] * reader.GetDimension(), pixel_id) if pixel_id >= 0 else None
    bytes_per_component = 1 if probe is None else max(1, _component_bytes(probe))
    return ImageHeader(size=tuple(int(s) for s in reader.GetSize()),
                       components=int(reader.GetNumberOfComponents()),
                       bytes_per_component=bytes_per_component,
                       pixel_type=sitk.GetPixelIDValueAsString(pixel_id) if pixel_id >= 0 else "unknown")


def _component_bytes(probe) -> int:
    import SimpleITK as sitk

    view = sitk.GetArrayViewFromImage(probe)
    return int(view.dtype.itemsize)


def check_header(path: str | os.PathLike, header: ImageHeader, max_pixels: int, what: str = "image",
                 limit_name: str = "MAX_FRAME_PIXELS") -> None:
    """Refuse ``header`` when it declares more than ``max_pixels`` (the constant ``limit_name``) or more
    data than ``path`` can hold."""
    path = Path(path)
    if any(s < 1 for s in header.size):
        raise DDICInputError(f"{path} declares an empty {what} ({header.size_text()} pixels); it holds no image.")
    if header.pixels > max_pixels:
        raise DDICInputError(
            f"{path} declares a {header.size_text()} {what} ({header.pixels / 1e6:,.0f} million pixels), more "
            f"than the {max_pixels / 1e6:,.0f} million DDICSlicer reads ({limit_name} in ddic/io/header.py). "
            "Crop or downsample it first, or check that the file header is not damaged."
        )
    available, compressed = _stored_data_bytes(path)
    if available is None:
        return
    needed = header.data_bytes if not compressed else math.ceil(header.data_bytes / DEFLATE_MAX_RATIO)
    if available < needed:
        kind = "compressed " if compressed else ""
        raise DDICInputError(
            f"{path} is damaged or truncated: its header declares a {header.size_text()} {what} "
            f"({header.data_bytes:,} bytes of pixels) but the file holds only {available:,} bytes of "
            f"{kind}data. Export or copy the image again."
        )


def _stored_data_bytes(path: Path) -> tuple[int | None, bool]:
    """(bytes of pixel data stored, compressed?) where the format tells; (None, …) where it does not."""
    name = path.name.lower()
    try:
        if name.endswith(".nii.gz") or name.endswith(".png"):
            return path.stat().st_size, True
        if name.endswith(".nii"):
            return _nifti_data_bytes(path), False
        if name.endswith((".nrrd", ".nhdr")):
            return _nrrd_data_bytes(path)
        if name.endswith((".mha", ".mhd")):
            return _meta_data_bytes(path)
    except (OSError, ValueError, struct.error):
        return None, False  # the reader will say what is wrong
    return None, False


def _header_text(path: Path, limit: int = 1 << 16) -> tuple[str, int]:
    """The text header of an NRRD / MetaImage file and its length in bytes (up to the blank line or the
    line that ends a MetaImage header)."""
    with open(path, "rb") as handle:
        head = handle.read(limit)
    if path.suffix.lower() in (".nrrd", ".nhdr"):
        end = head.find(b"\n\n")
        end = len(head) if end < 0 else end + 2
    else:
        match = re.search(rb"ElementDataFile\s*=[^\n]*\n", head)
        end = len(head) if match is None else match.end()
    return head[:end].decode("latin-1"), end


def _nrrd_data_bytes(path: Path) -> tuple[int | None, bool]:
    text, header_bytes = _header_text(path)
    fields = {}
    for line in text.splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip("= ").strip()
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file is not None:
        if data_file.upper().startswith("LIST") or "%" in data_file or " " in data_file:
            return None, False  # several detached files: left to the reader
        target = (path.parent / data_file)
        stored = target.stat().st_size
    else:
        stored = path.stat().st_size - header_bytes
    if encoding == "raw":
        return stored, False
    if encoding in ("gzip", "gz"):
        return stored, True
    return None, False


def _meta_data_bytes(path: Path) -> tuple[int | None, bool]:
    text, header_bytes = _header_text(path)
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    data_file = fields.get("elementdatafile", "LOCAL")
    if data_file.upper() == "LOCAL":
        stored = path.stat().st_size - header_bytes
    elif data_file.upper().startswith("LIST") or "%" in data_file:
        return None, False
    else:
        stored = (path.parent / data_file).stat().st_size
    compressed = fields.get("compresseddata", "False").lower() == "true"
    return stored, compressed


def _nifti_data_bytes(path: Path) -> int:
    with open(path, "rb") as handle:
        head = handle.read(352)
    sizeof_hdr = struct.unpack("<i", head[:4])[0]
    endian = "<" if sizeof_hdr in (348, 540) else ">"
    if struct.unpack(endian + "i", head[:4])[0] == 540:  # NIfTI-2: vox_offset is an int64 at byte 168
        offset = struct.unpack(endian + "q", head[168:176])[0]
    else:
        offset = int(struct.unpack(endian + "f", head[108:112])[0])
    return path.stat().st_size - max(offset, 0)


def check_finite(pixels: np.ndarray, where: str) -> None:
    """Refuse NaN or ±infinite pixels.

    The rule: non-finite pixels are **refused, never filled**. They carry no intensity, so no fill value
    (0, the minimum, the neighbours' mean) is right for every use — a filled block in a ventricle would
    change the CNR and the segmentation without any trace — and casting them to 8 bits turns them into
    arbitrary grey levels. The user knows what the missing pixels mean and can replace them.
    """
    if pixels.dtype.kind not in "fc":
        return  # integer pixels are always finite
    bad = ~np.isfinite(pixels)
    count = int(np.count_nonzero(bad))
    if count:
        nan = int(np.count_nonzero(np.isnan(pixels)))
        kinds = ", ".join(part for part in (f"{nan} NaN" if nan else "",
                                            f"{count - nan} infinite" if count - nan else "") if part)
        rows, cols = np.nonzero(bad.reshape(bad.shape[0], -1) if bad.ndim > 1 else bad[None])
        first = f" (first at row {int(rows[0])}, column {int(cols[0])})" if bad.ndim == 2 else ""
        raise DDICInputError(
            f"{where} has {count} non-finite pixel(s) ({kinds}){first}; DDICSlicer refuses images with "
            "NaN or infinite values instead of guessing a value for them. Replace them (e.g. with the "
            "background intensity) and run again."
        )
