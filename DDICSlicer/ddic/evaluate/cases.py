"""The test set of an evaluation: canonical US frames, where their head is, and (phantom) their paired truth.

Why a module of its own: ``--us-test`` may name three kinds of folder, and each says in its own way where the
head lies — which the atlas needs to place the distal-ventricle prompts and the paper's CNR squares:

- a **phantom** dataset (``ddic phantom``; its root or its ``us/paired`` folder, with ``paired.csv``): the
  canonical frames ``NNN_us.png`` (128 px at 1.094 mm). The head's outer skull semi-axes are OFD/2 and
  BPD(outer)/2 of the csv, the HC dates the atlas, and ``near_field`` says where the transducer side lies (for
  a csv written before that column existed it is read from the image: :func:`guess_near_field`). The frames
  are masked outside the skull ellipse grown by ``HEAD_MASK_MARGIN_MM``, exactly as ``ddic prepare`` masks the
  training frames, so the models see test frames like their training data;
- a **prepared** dataset (``ddic prepare hc18`` output: ``manifest.csv`` + ``train/`` + ``test/``; the folder
  itself or its ``test/``): the test split's frames, the head and its orientation from each row's transform
  JSON (:class:`ddic.geometry.head.CanonicalHeadTransform`);
- any other **folder of canonical images**: the head is found by the automatic skull-ellipse fit
  (:func:`detect_head`; the canonical orientation, occiput left, is assumed and the report says so); where the
  fit fails, the metrics that need the atlas (CNR, gCNR, segmentation) are left empty.

``--paired`` names a phantom dataset whose ``paired.csv`` gives each frame's truth: the paired canonical MRI,
the canonical label map (fetal left hemisphere in the lower half) and both atrium widths. Frames are matched by
the file name of the canonical US image (column ``us``).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DDICInputError
from ..geometry.canonical import (
    CANONICAL_SIZE_PX,
    HEAD_MASK_MARGIN_MM,
    spacing_for_size,
)
from ..geometry.ellipse import Ellipse
from ..io.images import image_stem, list_images, read_frame

PAIRED_CSV = "paired.csv"
MANIFEST_CSV = "manifest.csv"
NEAR_FIELD_SIDES = ("top", "bottom")
MAX_TILT_DEG = 20.0
"""A skull ellipse fitted on a canonical frame must have its major axis within this of horizontal."""
KINDS = ("phantom", "prepared", "folder")


@dataclass(frozen=True)
class HeadInfo:
    """Where the head is on a canonical S×S frame: outer skull semi-axes (px of that grid, centred, major axis
    horizontal), HC (mm; dates the atlas), the transducer side ("top"/"bottom") and where these came from."""

    hc_mm: float
    a_px: float
    b_px: float
    near_field: str
    source: str

    def to_dict(self) -> dict:
        return {"hc_mm": round(self.hc_mm, 2), "a_px": round(self.a_px, 3), "b_px": round(self.b_px, 3),
                "near_field": self.near_field, "source": self.source}


@dataclass(frozen=True)
class PairedTruth:
    """A phantom frame's truth on its canonical grid."""

    mri: np.ndarray  # (S, S) float32, 0…255: the paired T2w slice of the same anatomy
    labels: np.ndarray  # (S, S) int: Label ids; fetal left hemisphere in the lower half
    width_left_mm: float
    width_right_mm: float

    def width_mm(self, hemisphere: str) -> float:
        return self.width_left_mm if hemisphere == "left" else self.width_right_mm


@dataclass
class EvalCase:
    """One test frame: the canonical US the models translate (masked as training data), its head, its truth."""

    name: str  # the frame's stem: output and CSV key
    path: Path
    pixels: np.ndarray  # (S, S) float32, 0…255
    head: HeadInfo | None
    truth: PairedTruth | None = None

    @property
    def size(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def spacing_mm(self) -> float:
        return spacing_for_size(self.size)

    def digest(self) -> str:
        """SHA-256 of the pixels the models see (shape included): a cached output belongs to these pixels."""
        h = hashlib.sha256(str(self.pixels.shape).encode())
        h.update(np.ascontiguousarray(self.pixels, dtype=np.float32).tobytes())
        return h.hexdigest()


@dataclass
class EvalSet:
    kind: str  # one of KINDS
    root: Path
    cases: list[EvalCase]
    notes: list[str]


# ----------------------------------------------------------------------------------------------------------
# helpers


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError as exc:
        raise DDICInputError(f"Cannot read {path}: {exc}.") from exc


def _float(row: dict, column: str, where: Path) -> float:
    try:
        return float(row[column])
    except (KeyError, TypeError, ValueError):
        raise DDICInputError(f"{where}: row {row.get('case') or row.get('filename')!r} has no number in column "
                             f"{column!r}; is it a file written by ddic?") from None


def _canonical_pixels(path: Path) -> np.ndarray:
    frame = read_frame(path)
    h, w = frame.shape
    if h != w:
        raise DDICInputError(f"{path} is {w}×{h} px; the evaluation works on canonical square frames "
                             "(`ddic prepare` or `ddic phantom` output).")
    return frame.pixels.astype(np.float32)


def head_mask(size: int, a_px: float, b_px: float, margin_mm: float = HEAD_MASK_MARGIN_MM) -> np.ndarray:
    """Canonical pixels inside the skull ellipse (centred, major axis horizontal) grown by ``margin_mm``."""
    c = (size - 1) / 2.0
    return Ellipse(c, c, a_px, b_px, 0.0).mask((size, size), margin=margin_mm / spacing_for_size(size))


def guess_near_field(pixels: np.ndarray, a_px: float, b_px: float) -> str:
    """The transducer side of a canonical US frame from the skull echo: the near skull wall is bright, the far
    wall shadowed by it (a ring 0.8–1.3 of the skull ellipse, top half against bottom half)."""
    n = pixels.shape[0]
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0:n, 0:n]
    r = ((xx - c) / a_px) ** 2 + ((yy - c) / b_px) ** 2
    ring = (r > 0.8) & (r < 1.3)
    top, bottom = pixels[ring & (yy < c)], pixels[ring & (yy > c)]
    if top.size == 0 or bottom.size == 0:
        return "top"
    return "top" if float(top.mean()) >= float(bottom.mean()) else "bottom"


# ----------------------------------------------------------------------------------------------------------
# kinds of folder


def phantom_paired_dir(path: Path) -> Path | None:
    """The folder with ``paired.csv`` for a phantom root or its ``us/paired`` folder, else ``None``."""
    for candidate in (path, path / "us" / "paired"):
        if (candidate / PAIRED_CSV).is_file():
            return candidate
    return None


def _prepared_root(path: Path) -> tuple[Path, str] | None:
    """(folder with manifest.csv, split) for a prepared dataset or one of its split folders."""
    if (path / MANIFEST_CSV).is_file():
        return path, "test"
    if path.name in ("train", "test") and (path.parent / MANIFEST_CSV).is_file():
        return path.parent, path.name
    return None


def _phantom_cases(folder: Path) -> tuple[list[EvalCase], list[str]]:
    csv_path = folder / PAIRED_CSV
    rows = _read_csv(csv_path)
    if not rows:
        raise DDICInputError(f"{csv_path} lists no cases.")
    spacing = spacing_for_size(CANONICAL_SIZE_PX)
    cases, guessed = [], 0
    for row in rows:
        name = row.get("us") or ""
        path = folder / name
        if not name or not path.is_file():
            raise DDICInputError(f"{csv_path} names the US image {name!r}, which is not in {folder}.")
        pixels = _canonical_pixels(path)
        scale = CANONICAL_SIZE_PX / pixels.shape[0]  # csv sizes are mm; the grid may be resampled
        a = _float(row, "ofd_mm", csv_path) / 2.0 / spacing / scale
        b = _float(row, "bpd_outer_mm", csv_path) / 2.0 / spacing / scale
        near = (row.get("near_field") or "").strip()
        source = "paired.csv"
        if near not in NEAR_FIELD_SIDES:
            near, source = guess_near_field(pixels, a, b), "paired.csv (near field guessed from the skull echo)"
            guessed += 1
        pixels = np.where(head_mask(pixels.shape[0], a, b), pixels, 0.0).astype(np.float32)
        head = HeadInfo(_float(row, "hc_mm", csv_path), a, b, near, source)
        cases.append(EvalCase(image_stem(path), path, pixels, head))
    masked = (f"Phantom frames masked outside the skull ellipse + {HEAD_MASK_MARGIN_MM:g} mm, as `ddic prepare` "
              "masks training frames.")
    notes = [masked]
    if guessed:
        notes.append(f"{guessed} frame(s): {PAIRED_CSV} has no near_field column (written by an older ddic); the "
                     "transducer side was guessed from the skull echo.")
    return cases, notes


def _prepared_cases(root: Path, split: str) -> tuple[list[EvalCase], list[str]]:
    from ..geometry.head import CanonicalHeadTransform

    csv_path = root / MANIFEST_CSV
    rows = [r for r in _read_csv(csv_path) if r.get("status") == "ok" and r.get("split") == split]
    if not rows:
        raise DDICInputError(f"{csv_path} lists no prepared frame in the {split!r} split; evaluate a dataset "
                             "prepared with a test fraction > 0 (e.g. `ddic prepare hc18 ... --test-fraction 0.2`).")
    cases, guessed = [], 0
    for row in rows:
        path = root / row["output"]
        if not path.is_file():
            raise DDICInputError(f"{csv_path} names {row['output']}, which is not in {root}.")
        pixels = _canonical_pixels(path)
        try:
            transform = CanonicalHeadTransform.from_dict(row["transform"])
        except (KeyError, ValueError) as exc:
            raise DDICInputError(f"{csv_path}: row {row.get('filename')!r} has no usable transform: {exc}") from exc
        size = pixels.shape[0]
        ellipse = transform.canonical_ellipse(size)
        hc = float(transform.ellipse.hc_mm(transform.geometry.pixel_size_mm))
        head = HeadInfo(hc, float(ellipse.a), float(ellipse.b), transform.near_field_side(), MANIFEST_CSV)
        cases.append(EvalCase(image_stem(path), path, pixels, head))
        guessed += transform.orientation_source != "given"
    notes = []
    if guessed:
        notes.append(f"{guessed} of {len(cases)} prepared frame(s) have a guessed anterior end (orientation "
                     "heuristic or default, see manifest.csv); where the guess is wrong the atlas squares and prompts "
                     "sit in the frontal horn instead of the atrium.")
    return cases, notes


def detect_head(pixels: np.ndarray) -> HeadInfo | None:
    """The head of a canonical frame without metadata: the automatic skull-ellipse fit (semi-axes, HC), the
    transducer side from the skull echo; the canonical orientation (occiput left) is assumed. None when the
    fit fails or its major axis is not horizontal (then the frame is not canonical)."""
    from ..geometry.skull_detection import detect_skull_ellipse

    spacing = spacing_for_size(pixels.shape[0])
    try:
        ellipse = detect_skull_ellipse(pixels, spacing).ellipse
    except DDICInputError:
        return None
    tilt = abs((ellipse.angle_deg + 90.0) % 180.0 - 90.0)
    if tilt > MAX_TILT_DEG:
        return None
    near = guess_near_field(pixels, ellipse.a, ellipse.b)
    return HeadInfo(float(ellipse.hc_mm(spacing)), float(ellipse.a), float(ellipse.b), near,
                    "detected (skull-ellipse fit; canonical orientation assumed)")


def _folder_cases(folder: Path) -> tuple[list[EvalCase], list[str]]:
    paths = list_images(folder)
    if not paths:
        raise DDICInputError(f"{folder} holds no images (PNG, NRRD, NIfTI, MHA) to evaluate.")
    cases = []
    for path in paths:
        pixels = _canonical_pixels(path)
        cases.append(EvalCase(image_stem(path), path, pixels, detect_head(pixels)))
    how = (f"{folder} is a plain folder of images (no paired.csv, no manifest.csv): each head was found by the "
           "automatic skull-ellipse fit, the canonical orientation (midline horizontal, occiput left) assumed, "
           "and the transducer side guessed from the skull echo. `ddic prepare` output records all three.")
    notes = [how]
    missing = [c.name for c in cases if c.head is None]
    if missing:
        notes.append(f"No head found in {len(missing)} frame(s) ({', '.join(missing[:5])}"
                     f"{', …' if len(missing) > 5 else ''}): CNR, gCNR and segmentation are left empty there.")
    return cases, notes


def load_test_set(us_test, limit: int | None = None) -> EvalSet:
    """The frames of ``--us-test`` (module docstring), sorted by name, the first ``limit`` of them."""
    root = Path(us_test).expanduser()
    if not root.is_dir():
        raise DDICInputError(f"--us-test {root} is not a folder; give a `ddic phantom` or `ddic prepare` output "
                             "folder, or a folder of canonical US images.")
    paired = phantom_paired_dir(root)
    prepared = _prepared_root(root)
    if paired is not None:
        kind, (cases, notes) = "phantom", _phantom_cases(paired)
    elif prepared is not None:
        kind, (cases, notes) = "prepared", _prepared_cases(*prepared)
    else:
        kind, (cases, notes) = "folder", _folder_cases(root)
    cases.sort(key=lambda c: c.name)
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DDICInputError(f"Several test frames share the name(s) {', '.join(duplicates[:5])}; their outputs "
                             "would collide. Rename them.")
    sizes = {c.size for c in cases}
    if len(sizes) > 1:
        raise DDICInputError(f"The test frames have different sizes ({sorted(sizes)} px); prepare them onto one "
                             "canonical grid.")
    if limit is not None:
        if int(limit) < 1:
            raise DDICInputError(f"--limit must be at least 1, not {limit}.")
        cases = cases[:int(limit)]
    return EvalSet(kind, root, cases, notes)


def attach_truth(cases: list[EvalCase], paired) -> Path:
    """Give every case its phantom truth from ``paired`` (a phantom root or its us/paired folder)."""
    folder = phantom_paired_dir(Path(paired).expanduser())
    if folder is None:
        raise DDICInputError(f"--paired {paired} holds no {PAIRED_CSV}; give a `ddic phantom` output folder (or its "
                             "us/paired folder).")
    csv_path = folder / PAIRED_CSV
    by_us = {row.get("us", ""): row for row in _read_csv(csv_path)}
    for case in cases:
        row = by_us.get(case.path.name)
        if row is None:
            raise DDICInputError(
                f"The test frame {case.path.name} has no row in {csv_path}. Paired truth exists only for the "
                "canonical phantom images NNN_us.png; evaluate them with --us-test pointing at the same phantom "
                "folder.")
        mri = _canonical_pixels(folder / row["mri"])
        labels = _canonical_pixels(folder / row["labels"]).round().astype(np.int32)
        if mri.shape != case.pixels.shape or labels.shape != case.pixels.shape:
            raise DDICInputError(f"The paired truth of {case.path.name} is {mri.shape} px, the frame "
                                 f"{case.pixels.shape}; they must share the canonical grid.")
        case.truth = PairedTruth(mri=mri, labels=labels,
                                 width_left_mm=_float(row, "atrium_width_left_mm", csv_path),
                                 width_right_mm=_float(row, "atrium_width_right_mm", csv_path))
    return folder


def load_reference_images(path) -> tuple[list[np.ndarray], Path]:
    """The real-MRI reference set for FID/KID: a phantom root (its mri/canonical slices), a prepared dataset
    (its test split, else its train split) or a plain folder of images; any size (the extractor resizes)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DDICInputError(f"--mri-ref {root} is not a folder of MRI images.")
    folder = root
    if (root / "mri" / "canonical").is_dir():
        folder = root / "mri" / "canonical"
    elif (root / MANIFEST_CSV).is_file():
        folder = root / "test" if (root / "test").is_dir() and list_images(root / "test") else root / "train"
    paths = list_images(folder) if folder.is_dir() else []
    if len(paths) < 2:
        raise DDICInputError(f"--mri-ref {root}: found {len(paths)} image(s) in {folder}; FID/KID need at least 2.")
    return [read_frame(p).pixels.astype(np.float32) for p in paths], folder


def describe(test_set: EvalSet) -> dict:
    return {"kind": test_set.kind, "root": str(test_set.root), "frames": len(test_set.cases),
            "size_px": test_set.cases[0].size if test_set.cases else None,
            "with_head": sum(c.head is not None for c in test_set.cases),
            "with_truth": sum(c.truth is not None for c in test_set.cases)}

