"""Shared slice logic of the MRI preparers (FeTA, CRL atlas): a labelled T2w volume → K canonical axial
slices around the transthalamic (TT) plane (method.md §5, anatomy.md §8).

Per volume:

1. **Read** the T2w volume and its label map with SimpleITK; 4D, vector (RGB) or 2D images and label maps of
   another grid are errors. The labels are turned into FeTA classes (``labels_to_feta``: 0 bg, 1 eCSF, 2 GM,
   3 WM, 4 ventricles, 5 cerebellum, 6 deep GM, 7 brainstem).
2. **Orient** both to DICOM LPS (``sitk.DICOMOrient(image, "LPS")``: index axes i → patient left, j →
   posterior, k → superior, identity direction), so nothing below depends on the array layout of the file.
3. **Level** *[decision]*: the labels are resampled (nearest neighbour) onto an isotropic
   :data:`LEVEL_SPACING_MM` grid; the candidate axial levels are those showing deep GM (6) **and** ventricles
   (4) and **no** cerebellum (5) — through the thalami and the third ventricle, above the posterior fossa
   (anatomy.md §8). Of those, the levels with at least :data:`DEEP_GM_FRACTION` of the largest deep-GM area
   span the deep grey matter's height; the TT level is the candidate nearest the **middle of that span** —
   the mid-height of the thalami and basal ganglia, where the TT plane cuts them (on the phantom this is
   within 1 mm of its TT plane, whereas the level of largest deep-GM area sits 1–3 mm below it, at the
   thalamic centre). A volume without deep GM, or without a candidate level, is an error.
4. **In-plane frame**, from the brain mask (labels > 0) of the TT level: the centre is the mask's centroid;
   the midline direction is the mask's principal axis (largest eigenvalue of its second moments: the
   occipito-frontal axis), signed to point anterior (the 180° ambiguity is resolved with the NIfTI/ITK
   affine, never assumed from the array). The same centre and rotation serve all K slices of the volume.
5. **Slices** at offsets ``step × (i − K//2)``, i = 0…K−1, along the superior axis (offset 0, the TT level,
   is always included). Each slice is sampled with ``sitk.Resample`` and an explicit 3D affine transform
   (output point p → LPS point ``R p + c``) onto S×S px at ``128 × 1.094 / S`` mm/px: columns run posterior →
   anterior (occiput left, frontal right, ``ddic.geometry.canonical``), rows run from the fetal right (top)
   to the fetal left (bottom) — the radiological axial view turned 90° clockwise. Intensities linear,
   labels nearest neighbour.
6. **Brain mask and intensities**: pixels with label 0 become 0; the brain pixels' 1st–99th percentiles
   (:class:`ddic.io.intensity.Normalisation`, kind ``percentile``) map to 0…255 (uint8 PNG), per slice. A
   slice with too little brain (:data:`MIN_BRAIN_FRACTION` of the TT slice's brain area) is skipped and
   listed in the manifest.

The dataset modules (:mod:`.feta`, :mod:`.crl`) find the volumes and their metadata and call
:func:`prepare_volumes`, which writes the output like the HC18 preparer: a hidden staging folder beside OUT,
moved into place only when complete, with ``train/``, ``test/``, ``manifest.csv`` and ``prepare.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX, spacing_for_size
from ...io.header import MAX_VOLUME_VOXELS, check_finite, check_header, read_header
from ...progress import ProgressCallback, resolve
from ..canonical_mri import BRAIN_PERCENTILES, canonical_mri_image
from .output import SplitSummary, split_subjects, staged_output, write_manifest, write_summary

LEVEL_SPACING_MM = 1.0
"""Isotropic grid (mm) the label map is resampled onto to find the TT level."""
DEFAULT_SLICES = 3
DEFAULT_SLICE_STEP_MM = 2.0
PERCENTILES = BRAIN_PERCENTILES
MIN_BRAIN_FRACTION = 0.05
DEEP_GM_FRACTION = 0.1
"""Levels whose deep-GM area is below this fraction of the largest candidate's do not define the TT range
(stray voxels at the top and bottom of the thalami and basal ganglia)."""
DEEP_GM, VENTRICLES, CEREBELLUM = 6, 4, 5

MANIFEST_COLUMNS = (
    "dataset", "subject", "source", "labels", "ga_weeks", "condition", "split", "output", "status", "reason",
    "slice_index", "offset_mm", "level_z_mm", "deep_gm_area_mm2", "centre_x_mm", "centre_y_mm", "centre_z_mm",
    "angle_deg", "window_low", "window_high", "notes", "transform",
)
"""One row per output slice (or skipped slice). ``source``/``labels``: paths relative to ROOT; ``offset_mm``:
the slice's distance above (+) or below (−) the TT level; ``level_z_mm``: the TT level's LPS z; ``centre_*``:
the LPS point at the image centre; ``angle_deg``: the in-plane angle of the anterior direction from LPS −y
(anterior) towards +x (left); ``window_*``: the intensity window mapped to 0…255; ``transform``: JSON of the
output-point → LPS-point affine (``matrix`` row-major 3×3, ``translation``) and the output grid."""


@dataclass
class VolumeItem:
    """One labelled volume to prepare."""

    subject: str
    image: Path
    labels: Path
    ga_weeks: float | None = None
    condition: str = ""
    label_scheme: str = "auto"  # "feta", "crl" or "auto"
    notes: list[str] = field(default_factory=list)


@dataclass
class SliceResult:
    index: int
    offset_mm: float
    image: np.ndarray | None  # (S, S) uint8, None when skipped
    reason: str
    window: tuple[float, float] | None
    transform: dict
    labels: np.ndarray | None = None  # (S, S) FeTA classes on the output grid (not written; for checks)


@dataclass
class VolumeResult:
    item: VolumeItem
    level_z_mm: float
    deep_gm_area_mm2: float
    centre: tuple[float, float, float]
    angle_deg: float
    slices: list[SliceResult]
    notes: list[str]


@dataclass
class MRIPrepareSummary(SplitSummary):
    volumes: int = 0  # volumes found, prepared or skipped


# ---------------------------------------------------------------------------------------------------------
# Labels

# CRL 2017 v3 tissue labels (anatomy.md §7.4) → FeTA classes; labels not listed count as brain (WM, 3).
CRL_TO_FETA = {
    37: 2, 38: 2, 41: 2, 42: 2, 110: 2, 112: 2, 113: 2,  # hippocampus, amygdala, commissure, cortical plate
    71: 6, 72: 6, 73: 6, 74: 6, 77: 6, 78: 6, 108: 6, 109: 6,  # caudate, putamen, thalamus, subthalamic
    92: 4, 93: 4, 118: 4, 119: 4,  # lateral ventricles, ventricular zone (lines them)
    94: 7,  # midbrain
    100: 5, 101: 5,  # cerebellum
    124: 1,  # CSF
}


def labels_to_feta(labels: np.ndarray, scheme: str = "auto") -> tuple[np.ndarray, str]:
    """Integer label map → FeTA classes 0–7 and the scheme used. ``auto``: FeTA when every label is 0…7,
    else the CRL tissue labels (:data:`CRL_TO_FETA`, other non-zero labels → 3)."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DDICInputError("the label map has non-integer values (is it an intensity volume?)")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DDICInputError(f"the label map has negative labels ({labels.min()})")
    top = int(labels.max()) if labels.size else 0
    if scheme == "auto":
        scheme = "feta" if top <= 7 else "crl"
    if scheme == "feta":
        if top > 7:
            raise DDICInputError(f"FeTA label maps hold classes 0–7, this one has label {top}")
        return labels.astype(np.uint8), scheme
    lut = np.where(np.arange(top + 1) > 0, 3, 0).astype(np.uint8)
    for src, dst in CRL_TO_FETA.items():
        if src <= top:
            lut[src] = dst
    return lut[labels], scheme


# ---------------------------------------------------------------------------------------------------------
# Reading


def read_volume(path: Path, what: str):
    """A 3D scalar SimpleITK image oriented to LPS, or a :class:`DDICInputError`."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise DDICInputError(f"{what} {path} not found")
    check_header(path, read_header(path), MAX_VOLUME_VOXELS, what, "MAX_VOLUME_VOXELS")  # before any voxel is allocated
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DDICInputError(f"cannot read {what} {path.name}: {str(exc).strip().splitlines()[-1]}") from exc
    check_finite(sitk.GetArrayViewFromImage(image), f"{what} {path}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DDICInputError(f"{what} {path.name} has {image.GetNumberOfComponentsPerPixel()} components per "
                             "voxel (RGB/vector); a scalar 3D volume is expected")
    if image.GetDimension() != 3:
        size = "×".join(str(s) for s in image.GetSize())
        raise DDICInputError(f"{what} {path.name} is {image.GetDimension()}D ({size}); a 3D volume is expected")
    if min(image.GetSize()) < 1:
        raise DDICInputError(f"{what} {path.name} is empty")
    return sitk.DICOMOrient(image, "LPS")


def _same_grid(a, b) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-4, atol=1e-5)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4))


# ---------------------------------------------------------------------------------------------------------
# Level and in-plane frame


def isotropic_labels(labels_img, spacing_mm: float = LEVEL_SPACING_MM):
    """Labels resampled (nearest) onto an axis-aligned LPS grid (identity direction) of ``spacing_mm``
    covering the volume; returned as is when they already are on such a grid."""
    import SimpleITK as sitk

    spacing = np.asarray(labels_img.GetSpacing(), dtype=float)
    direction = np.asarray(labels_img.GetDirection(), dtype=float).reshape(3, 3)
    if np.allclose(spacing, spacing_mm, rtol=0.05) and np.allclose(direction, np.eye(3), atol=1e-6):
        return labels_img
    size = np.asarray(labels_img.GetSize())
    corners = np.array([labels_img.TransformContinuousIndexToPhysicalPoint(
        [(-0.5 if c == 0 else n - 0.5) for c, n in zip(corner, size)])
        for corner in np.ndindex(2, 2, 2)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    new_size = [max(1, int(math.ceil((h - l) / spacing_mm - 1e-6))) for l, h in zip(lo, hi)]
    origin = lo + 0.5 * spacing_mm
    return sitk.Resample(labels_img, new_size, sitk.Transform(), sitk.sitkNearestNeighbor, origin.tolist(),
                         [spacing_mm] * 3, np.eye(3).ravel().tolist(), 0, labels_img.GetPixelID())


def find_tt_level(labels_img) -> tuple[float, float]:
    """The TT level's LPS z (mm) and its deep-GM area (mm²) in FeTA-class labels on an axis-aligned LPS grid
    (:func:`isotropic_labels`); see the module docstring, step 3."""
    import SimpleITK as sitk

    iso = labels_img
    arr = sitk.GetArrayViewFromImage(iso)  # (z, y, x), LPS, identity direction
    sx, sy, _ = iso.GetSpacing()
    deep = (arr == DEEP_GM).sum(axis=(1, 2)) * sx * sy
    if not deep.any():
        raise DDICInputError("the label map has no deep grey matter (class 6: thalami, basal ganglia), so the "
                             "transthalamic level cannot be found")
    vent = (arr == VENTRICLES).any(axis=(1, 2))
    cereb = (arr == CEREBELLUM).any(axis=(1, 2))
    candidate = (deep > 0) & vent & ~cereb
    if not candidate.any():
        raise DDICInputError("no axial level shows deep grey matter (6) and ventricles (4) without cerebellum (5); "
                             "the transthalamic level cannot be found")
    robust = candidate & (deep >= DEEP_GM_FRACTION * deep[candidate].max())
    levels = np.flatnonzero(robust)
    middle = 0.5 * (levels.min() + levels.max())
    k = int(levels[np.argmin(np.abs(levels - middle))])  # the candidate nearest the middle of the range
    best = deep[k]
    z = iso.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(k)))[2]
    return float(z), float(best)


def in_plane_frame(labels_img, z_mm: float) -> tuple[np.ndarray, float]:
    """Brain centre (LPS x, y at z) and the angle (rad) of the anterior midline direction from −y towards +x,
    from FeTA-class labels on an axis-aligned LPS grid (:func:`isotropic_labels`)."""
    import SimpleITK as sitk

    k = labels_img.TransformPhysicalPointToContinuousIndex((*labels_img.GetOrigin()[:2], z_mm))[2]
    k = int(np.clip(round(k), 0, labels_img.GetSize()[2] - 1))
    mask = sitk.GetArrayViewFromImage(labels_img)[k] > 0
    if mask.sum() < 3:
        raise DDICInputError("the brain mask at the transthalamic level is empty")
    rows, cols = np.nonzero(mask)
    ox, oy = labels_img.GetOrigin()[:2]
    sx, sy = labels_img.GetSpacing()[:2]
    x = ox + cols * sx
    y = oy + rows * sy
    cx, cy = float(x.mean()), float(y.mean())
    cov = np.cov(np.vstack([x - cx, y - cy]))
    evals, evecs = np.linalg.eigh(cov)
    u = evecs[:, int(np.argmax(evals))]
    if u[1] > 0:  # point anterior (LPS −y)
        u = -u
    angle = math.atan2(float(u[0]), float(-u[1]))
    return np.array([cx, cy]), angle


def slice_transform(centre_xyz, angle_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Matrix R and translation c of the output-point → LPS-point map ``q = R p + c``. Output x (columns)
    follows the anterior direction, output y (rows) the fetal left, output z the superior axis."""
    ux, uy = math.sin(angle_rad), -math.cos(angle_rad)  # anterior, in LPS
    vx, vy = -uy, ux  # fetal left (+x when angle = 0)
    matrix = np.array([[ux, vx, 0.0], [uy, vy, 0.0], [0.0, 0.0, 1.0]])
    return matrix, np.asarray(centre_xyz, dtype=float)


def _resample_slice(image, matrix, translation, size: int, spacing: float, interpolator, default=0.0):
    import SimpleITK as sitk

    transform = sitk.AffineTransform(3)
    transform.SetMatrix(matrix.ravel().tolist())
    transform.SetTranslation(translation.tolist())
    half = (size - 1) / 2.0 * spacing
    reference = sitk.Image([size, size, 1], image.GetPixelID())
    reference.SetSpacing([spacing, spacing, 1.0])
    reference.SetOrigin([-half, -half, 0.0])
    out = sitk.Resample(image, reference, transform, interpolator, default, image.GetPixelID())
    return sitk.GetArrayFromImage(out)[0]


# ---------------------------------------------------------------------------------------------------------
# One volume


def slice_offsets(n_slices: int, step_mm: float) -> list[float]:
    return [float(step_mm) * (i - int(n_slices) // 2) for i in range(int(n_slices))]


def prepare_volume(item: VolumeItem, *, n_slices: int = DEFAULT_SLICES, step_mm: float = DEFAULT_SLICE_STEP_MM,
                   size: int = CANONICAL_SIZE_PX, percentiles: tuple[float, float] = PERCENTILES) -> VolumeResult:
    """One labelled volume → K canonical slices (see the module docstring). Raises :class:`DDICInputError`."""
    import SimpleITK as sitk

    notes = list(item.notes)
    image = read_volume(item.image, "T2w volume")
    labels_raw = read_volume(item.labels, "label map")
    if not _same_grid(image, labels_raw):
        raise DDICInputError(f"the label map {item.labels.name} ({'×'.join(map(str, labels_raw.GetSize()))}) "
                             f"is not on the grid of {item.image.name} ({'×'.join(map(str, image.GetSize()))})")
    classes, scheme = labels_to_feta(sitk.GetArrayFromImage(labels_raw), item.label_scheme)
    labels = sitk.GetImageFromArray(classes)
    labels.CopyInformation(labels_raw)
    if scheme == "crl":
        notes.append("CRL tissue labels mapped to FeTA classes")
    image = sitk.Cast(image, sitk.sitkFloat32)

    iso = isotropic_labels(labels)
    z_level, area = find_tt_level(iso)
    centre_xy, angle = in_plane_frame(iso, z_level)
    spacing = spacing_for_size(size)
    slices: list[SliceResult] = []
    tt_brain = None
    corners = [image.TransformContinuousIndexToPhysicalPoint([(-0.5 if c == 0 else n - 0.5)
                                                              for c, n in zip(corner, image.GetSize())])[2]
               for corner in np.ndindex(2, 2, 2)]
    zmin, zmax = min(corners), max(corners)
    for i, offset in enumerate(slice_offsets(n_slices, step_mm)):
        matrix, c = slice_transform((centre_xy[0], centre_xy[1], z_level + offset), angle)
        info = {"matrix": [round(float(v), 6) for v in matrix.ravel()],
                "translation": [round(float(v), 4) for v in c], "size": [int(size), int(size)],
                "spacing_mm": spacing, "output_origin_mm": [-(size - 1) / 2.0 * spacing] * 2}
        z = z_level + offset
        if not zmin <= z <= zmax:
            slices.append(SliceResult(i, offset, None, f"offset {offset:g} mm lies outside the volume", None, info))
            continue
        lab = _resample_slice(labels, matrix, c, size, spacing, sitk.sitkNearestNeighbor)
        pix = _resample_slice(image, matrix, c, size, spacing, sitk.sitkLinear)
        mask = lab > 0
        if offset == 0:
            tt_brain = int(mask.sum())
        slices.append(SliceResult(i, offset, pix, "", None, info, lab.astype(np.uint8)))
    for s in slices:
        if s.image is None:
            continue
        mask = s.labels > 0
        if mask.sum() < max(16, MIN_BRAIN_FRACTION * (tt_brain or 0)):
            s.image, s.reason = None, f"offset {s.offset_mm:g} mm shows too little brain"
            continue
        s.image, s.window = canonical_mri_image(s.image, mask, percentiles)
    return VolumeResult(item, z_level, area, (float(centre_xy[0]), float(centre_xy[1]), z_level),
                        math.degrees(angle), slices, notes)


# ---------------------------------------------------------------------------------------------------------
# The whole set


def check_options(n_slices: int, step_mm: float, test_fraction: float, size: int) -> None:
    if int(n_slices) < 1:
        raise DDICInputError(f"--slices must be at least 1, got {n_slices}.")
    if not (math.isfinite(float(step_mm)) and float(step_mm) > 0):
        raise DDICInputError(f"--slice-step-mm must be positive, got {step_mm}.")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise DDICInputError(f"--test-fraction must be in [0, 1), got {test_fraction}.")
    if int(size) < 8:
        raise DDICInputError(f"--size must be at least 8 pixels, got {size}.")


def start_run(dataset: str, root, out, overwrite: bool, n_slices: int, step_mm: float, test_fraction: float,
              size: int) -> tuple[Path, Path]:
    """The checks every volume preparer makes before it reads anything: options, input folder, output folder."""
    root, out = Path(root), Path(out)
    check_options(n_slices, step_mm, test_fraction, size)
    if not root.is_dir():
        raise DDICInputError(f"{dataset} folder not found: {root}.")
    from .output import check_out

    check_out(out, overwrite)
    return root, out


@dataclass
class VolumeTriage:
    """Volumes found on disk, sorted into usable items, skipped ones (``skip_bad``) and problems to report."""

    skip_bad: bool
    items: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def add(self, item: VolumeItem, reason: str | None, rel: str) -> None:
        if reason is None:
            self.items.append(item)
        elif self.skip_bad:
            self.skipped.append((item, reason))
        else:
            self.problems.append(f"{rel}: {reason}")


def prepare_volumes(dataset: str, root: Path, out: Path, items: list[VolumeItem], *, problems: list[str] | None = None,
                    n_slices: int = DEFAULT_SLICES, step_mm: float = DEFAULT_SLICE_STEP_MM,
                    test_fraction: float = 0.0, split_seed: int = 0, size: int = CANONICAL_SIZE_PX,
                    skip_bad: bool = False, overwrite: bool = False, progress: ProgressCallback | None = None,
                    parameters: dict | None = None,
                    pre_skipped: list[tuple[VolumeItem, str]] | None = None) -> MRIPrepareSummary:
    """Prepare ``items`` into ``out``. ``problems`` are earlier per-volume errors (e.g. a missing label file)
    reported together with those found here; ``pre_skipped`` are (item, reason) pairs already skipped (with
    ``skip_bad``). With ``skip_bad`` a failing volume is skipped and listed in the manifest."""
    progress = resolve(progress)
    root, out = Path(root), Path(out)
    problems = list(problems or [])
    results: list[VolumeResult] = []
    skipped_volumes: list[tuple[VolumeItem, str]] = list(pre_skipped or [])
    for done, item in enumerate(items):
        progress(done, len(items), item.subject)
        try:
            results.append(prepare_volume(item, n_slices=n_slices, step_mm=step_mm, size=size))
        except DDICInputError as exc:
            if skip_bad:
                skipped_volumes.append((item, str(exc)))
            else:
                problems.append(f"{_rel(item.image, root)}: {exc}")
    progress(len(items), len(items), "")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DDICInputError(
            f"{len(problems)} {dataset} volume(s) cannot be prepared (nothing was written):\n  {shown}{more}\n"
            "Fix them, or pass --skip-bad to skip them and list them in the manifest.")
    if not any(s.image is not None for r in results for s in r.slices):
        reasons = [r for _, r in skipped_volumes[:3]]
        raise DDICInputError(f"No {dataset} volume gave a usable slice (nothing was written)."
                             + (f" First reasons: {'; '.join(reasons)}." if reasons else ""))
    test_subjects = split_subjects([r.item.subject for r in results], test_fraction, split_seed)
    summary = MRIPrepareSummary(out=out, volumes=len(items) + len(pre_skipped or []))
    info = dict(parameters or {}, dataset=dataset, root=str(root), slices=int(n_slices),
                slice_step_mm=float(step_mm), test_fraction=float(test_fraction), split_seed=int(split_seed),
                size=int(size), spacing_mm=spacing_for_size(size), percentiles=list(PERCENTILES),
                level_spacing_mm=LEVEL_SPACING_MM, skip_bad=bool(skip_bad),
                orientation="LPS axial; columns posterior→anterior (occiput left), rows fetal right→left")
    _write(dataset, root, out, results, skipped_volumes, test_subjects, summary, overwrite, info)
    return summary


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _write(dataset, root, out, results, skipped_volumes, test_subjects, summary, overwrite, info) -> None:
    from ...io.images import write_png

    with staged_output(out, overwrite) as staging:
        records = []

        def row(item: VolumeItem, **values):
            base = {c: "" for c in MANIFEST_COLUMNS}
            base.update(dataset=dataset, subject=item.subject, source=_rel(item.image, root),
                        labels=_rel(item.labels, root),
                        ga_weeks="" if item.ga_weeks is None else f"{item.ga_weeks:g}", condition=item.condition)
            base.update({k: v for k, v in values.items() if k in base})
            return base

        for item, reason in skipped_volumes:
            records.append(row(item, split="skipped", status="skipped", reason=reason, notes="; ".join(item.notes)))
            summary.skipped.append((_rel(item.image, root), reason))
        for r in results:
            split = "test" if r.item.subject in test_subjects else "train"
            common = dict(level_z_mm=f"{r.level_z_mm:.2f}", deep_gm_area_mm2=f"{r.deep_gm_area_mm2:.1f}",
                          angle_deg=f"{r.angle_deg:.3f}", notes="; ".join(r.notes))
            for s in r.slices:
                label = f"{s.offset_mm:+.1f}".replace("+", "p").replace("-", "m").replace(".", "_")
                t = s.transform["translation"]
                values = dict(common, slice_index=str(s.index), offset_mm=f"{s.offset_mm:g}",
                              centre_x_mm=f"{t[0]:.3f}", centre_y_mm=f"{t[1]:.3f}", centre_z_mm=f"{t[2]:.3f}",
                              transform=json.dumps(s.transform, separators=(",", ":")))
                if s.image is None:
                    records.append(row(r.item, split="skipped", status="skipped", reason=s.reason, **values))
                    summary.skipped.append((f"{r.item.subject} slice {s.index}", s.reason))
                    continue
                output = f"{split}/{r.item.subject}_{label}mm.png"
                write_png(s.image, staging / output)
                setattr(summary, split, getattr(summary, split) + 1)
                records.append(row(r.item, split=split, output=output, status="ok",
                                   window_low=f"{s.window[0]:.4g}", window_high=f"{s.window[1]:.4g}", **values))
        write_manifest(staging, MANIFEST_COLUMNS, records)
        subjects = {r.item.subject for r in results}
        summary.test_subjects = len(subjects & set(test_subjects))
        summary.train_subjects = len(subjects) - summary.test_subjects
        info = dict(info, volumes=summary.volumes, train=summary.train, test=summary.test,
                    skipped=len(summary.skipped), train_subjects=summary.train_subjects,
                    test_subjects=summary.test_subjects)
        write_summary(staging, info)
