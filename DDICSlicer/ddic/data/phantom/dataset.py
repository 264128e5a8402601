"""Phantom datasets of both domains in the real formats, with paired ground truth (``ddic phantom``).

Layout under ``OUT``::

    phantom.json                       arguments, counts, package version
    us/hc18/NNN_HC.png                 HC18-like B-mode frames (800 × 540) …
    us/hc18/NNN_HC_Annotation.png      … their skull-ellipse outlines
    us/hc18/training_set_pixel_size_and_HC.csv   exactly the HC18 layout (``ddic prepare hc18 OUT/us/hc18``)
    us/paired/NNN_us.png               the frame on the canonical 128 × 128 grid, masked outside the skull
                                       exactly as ``ddic prepare hc18`` masks (``CanonicalHeadTransform.head_image``)
    us/paired/NNN_mri.png              the canonical T2w slice of the *same* anatomy (TT plane), brain-extracted
                                       and windowed exactly as ``ddic prepare feta`` (``canonical_mri_image``)
    us/paired/NNN_labels.png           the canonical label map (Label ids as uint8 pixel values)
    us/paired/paired.csv               one row per case: biometry, seeds, orientation, file names
                                       (near_field: where the frame's top, the transducer side, lies in
                                       the canonical image, "top" or "bottom", as in ``ddic prepare``)
    mri/canonical/NNN_oOFFSET.png      unpaired canonical T2w slices (anatomies from disjoint seeds), brain-
                                       extracted and windowed as the paired ones
    mri/canonical/mri.csv              one row per slice
    mri/feta/sub-XXX/anat/…            FeTA-layout volumes (``mri_volumes=True``)

US case ``i`` draws its seeds from ``SeedSequence([seed, US, i])`` and MRI case ``i`` from
``SeedSequence([seed, MRI, i])``: the two domains never share an anatomy (unpaired by construction).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ... import __version__
from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX, CANONICAL_SPACING_MM, spacing_for_size
from ...geometry.ellipse import Ellipse
from ...geometry.head import CanonicalHeadTransform
from ...io.atomic import write_text_atomic
from ...io.images import Frame, write_png
from ...progress import resolve
from ..labels import Label
from .anatomy import phantom_metadata, render_labels, sample_anatomy
from ..canonical_mri import canonical_mri_image
from .hc18_files import write_hc18_case, write_hc18_csv
from .feta_files import to_feta_classes, write_feta_subject
from .mri import render_mri_slice, render_mri_volume
from .scan_geometry import HeadEllipse
from .ultrasound import render_ultrasound

DOMAINS = ("us", "mri")
_DOMAIN_CODE = {"us": 0x5553, "mri": 0x4D52, "gallery": 0x4741}
US_LABEL_SPACING_MM = 0.4  # fine label map fed to the B-mode renderer
US_LABEL_MARGIN_MM = 40.0  # fluid around the head in that label map
MRI_SLICE_OFFSETS_MM = (-3.0, 0.0, 3.0)  # unpaired MRI slices per anatomy, around the TT plane
MRI_PNG_SCALE = 200.0  # T2 signal (CSF ≈ 1) → 8-bit grey level of the gallery's whole-head slices
HC18_CSV_NAME = "training_set_pixel_size_and_HC.csv"
OWNED = ("us", "mri", "phantom.json", "gallery.png")  # what --overwrite may remove

PAIRED_COLUMNS = ("case", "ga_weeks", "pathology", "hc_mm", "bpd_mm", "bpd_outer_mm", "ofd_mm",
                  "cephalic_index", "atrium_width_left_mm", "atrium_width_right_mm", "anatomy_seed",
                  "us_seed", "mri_seed", "pixel_size_mm", "frame_hc_mm", "anterior_right", "mirror",
                  "near_field", "orientation_error_px", "label_agreement", "frame", "annotation", "us", "mri",
                  "labels")
MRI_COLUMNS = ("case", "slice", "ga_weeks", "pathology", "hc_mm", "bpd_mm", "ofd_mm", "atrium_width_left_mm",
               "atrium_width_right_mm", "anatomy_seed", "mri_seed", "slice_offset_mm", "image")


# ---------------------------------------------------------------------------------------------------------
# seeds


def case_seeds(seed: int, domain: str, index: int) -> dict[str, int]:
    """The seeds of one case: anatomy, renderer, pathology draw — a function of (seed, domain, index)."""
    ss = np.random.SeedSequence([int(seed), _DOMAIN_CODE[domain], int(index)])
    a, r, p = (int(v) for v in ss.generate_state(3, dtype=np.uint32))
    return {"anatomy": a, "render": r, "pathology": p}


def _pathology(seeds: dict, fraction: float) -> str | None:
    if fraction <= 0:
        return None
    return "ventriculomegaly" if np.random.default_rng(seeds["pathology"]).random() < fraction else None


# ---------------------------------------------------------------------------------------------------------
# one paired US case


def us_label_map(params, spacing_mm: float = US_LABEL_SPACING_MM, margin_mm: float = US_LABEL_MARGIN_MM):
    """A fine, square label map of the TT plane with room around the head, and its :class:`HeadEllipse`."""
    n = int(math.ceil((params.ofd_mm + 2 * margin_mm) / spacing_mm))
    labels = render_labels(params, spacing_mm, (n, n), supersample=2)
    m = phantom_metadata(params, spacing_mm, (n, n))
    ellipse = HeadEllipse(m.skull_center_x_mm, m.skull_center_y_mm, m.skull_semi_axis_a_mm,
                          m.skull_semi_axis_b_mm, m.skull_angle_rad)
    return labels, ellipse


def _true_canonical_to_frame(geometry, ellipse: HeadEllipse, label_spacing: float, uv: np.ndarray) -> np.ndarray:
    """Canonical pixels → frame pixels through the renderer's own label-map → frame affine (ground truth)."""
    s = spacing_for_size(CANONICAL_SIZE_PX)
    mm = (uv - (CANONICAL_SIZE_PX - 1) / 2.0) * s
    c, si = math.cos(ellipse.angle_rad), math.sin(ellipse.angle_rad)
    rot = np.array([[c, -si], [si, c]])
    label_mm = np.array([ellipse.center_x_mm, ellipse.center_y_mm]) + mm @ rot.T
    colrow = np.concatenate([label_mm / label_spacing, np.ones((len(uv), 1))], axis=1)
    return colrow @ np.asarray(geometry.frame_from_labels, dtype=np.float64).T


def canonical_transform(frame_result, ellipse: HeadEllipse) -> tuple[CanonicalHeadTransform, float]:
    """The :class:`CanonicalHeadTransform` of a rendered frame from its known skull ellipse, with the
    orientation (anterior end, mirror) that matches the renderer's label-map → frame map; and the largest
    disagreement of the two maps in frame pixels (≈ 0 when right)."""
    g = frame_result.geometry
    frame = Frame.from_array(frame_result.image, spacing=(g.pixel_size_mm, g.pixel_size_mm))
    fe = Ellipse(g.center_x_px, g.center_y_px, g.semi_axis_a_px, g.semi_axis_b_px, g.angle_deg)
    probe = np.array([[20.0, 30.0], [100.0, 40.0], [64.0, 110.0], [63.5, 63.5]])
    truth = _true_canonical_to_frame(g, ellipse, g.label_spacing_mm, probe)
    best = None
    for anterior_right in (True, False):
        for mirror in (False, True):
            t = CanonicalHeadTransform(frame, fe, anterior_right=anterior_right, mirror=mirror)
            err = float(np.abs(t.point_to_frame(probe) - truth).max())
            if best is None or err < best[1]:
                best = (t, err)
    return best


def canonical_frame_labels(transform: CanonicalHeadTransform, frame_labels: np.ndarray) -> np.ndarray:
    """The scan-converted frame labels on the canonical grid (nearest neighbour; 0 outside the frame)."""
    n = transform.size
    vv, uu = np.mgrid[0:n, 0:n]
    xy = transform.point_to_frame(np.stack([uu.ravel(), vv.ravel()], axis=1).astype(np.float64))
    col, row = np.rint(xy[:, 0]).astype(int), np.rint(xy[:, 1]).astype(int)
    inside = (col >= 0) & (col < frame_labels.shape[1]) & (row >= 0) & (row < frame_labels.shape[0])
    out = np.zeros(n * n, np.uint8)
    out[inside] = frame_labels[row[inside], col[inside]]
    return out.reshape(n, n)


def mri_png(image: np.ndarray) -> np.ndarray:
    """A whole-head T2 slice as 8-bit grey (the gallery's view, before brain extraction)."""
    return np.clip(np.asarray(image, np.float32) * MRI_PNG_SCALE, 0, 255)


def canonical_mri(slice_) -> np.ndarray:
    """A rendered canonical slice as the MRI model sees it: brain-extracted and windowed exactly as
    ``ddic prepare feta|crl`` prepares real slices (:func:`ddic.data.canonical_mri.canonical_mri_image`)."""
    return canonical_mri_image(slice_.image, to_feta_classes(slice_.labels) > 0)[0]


def render_paired_case(seed: int, index: int, ga_range, pathology_fraction: float = 0.0) -> dict:
    """Everything of one paired US case, in memory (no files)."""
    seeds = case_seeds(seed, "us", index)
    params = sample_anatomy(seeds["anatomy"], ga_range=tuple(ga_range),
                            pathology=_pathology(seeds, pathology_fraction))
    labels, ellipse = us_label_map(params)
    frame = render_ultrasound(labels, US_LABEL_SPACING_MM, ellipse, seed=seeds["render"])
    transform, err = canonical_transform(frame, ellipse)
    canonical_us = transform.head_image(frame.image.astype(np.float32))  # masked as `ddic prepare hc18` does
    mri = render_mri_slice(params, seeds["render"])
    canonical_labels = render_labels(params)  # the canonical TT-plane label map (128 × 1.094 mm)
    from_frame = canonical_frame_labels(transform, frame.labels)
    covered = from_frame > 0
    agreement = float((from_frame[covered] == canonical_labels[covered]).mean()) if covered.any() else 0.0
    return {"params": params, "seeds": seeds, "frame": frame, "transform": transform, "orientation_error": err,
            "us": canonical_us, "mri": canonical_mri(mri), "mri_raw": mri.image, "labels": canonical_labels,
            "label_agreement": agreement}


# ---------------------------------------------------------------------------------------------------------
# the dataset


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DDICInputError(f"{out} exists and is not a folder.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DDICInputError(f"{out} is not empty; choose a new folder or pass --overwrite.")
        foreign = [p.name for p in out.iterdir() if p.name not in OWNED]
        if foreign:
            raise DDICInputError(f"{out} holds files that are not a phantom dataset's ({', '.join(sorted(foreign)[:5])}); "
                                 "refusing to overwrite it.")
        for name in OWNED:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _csv_text(columns: Sequence[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()})
    return buf.getvalue()


def _check_args(n, ga_range, domains, pathology_fraction) -> tuple:
    if int(n) < 1:
        raise DDICInputError(f"n must be at least 1, not {n}.")
    try:
        lo, hi = (float(v) for v in ga_range)
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"ga_range must be two numbers (low, high), not {ga_range!r}.") from exc
    domains = tuple(dict.fromkeys(domains))
    bad = [d for d in domains if d not in DOMAINS]
    if bad or not domains:
        raise DDICInputError(f"domains must be a non-empty subset of {DOMAINS}, not {domains!r}.")
    if not 0.0 <= float(pathology_fraction) <= 1.0:
        raise DDICInputError(f"The ventriculomegaly fraction must lie in [0, 1], not {pathology_fraction}.")
    sample_anatomy(0, ga_range=(lo, hi))  # validates the GA range against the growth charts
    return int(n), (lo, hi), domains, float(pathology_fraction)


def make_phantom_dataset(out, n: int, ga_range=(21, 38), seed: int = 0, domains=DOMAINS, mri_volumes: bool = False,
                         pathology_fraction: float = 0.0, progress=None, overwrite: bool = False) -> dict:
    """Write ``n`` cases per domain under ``out`` (see the module docstring); return the summary
    (also written as ``out/phantom.json``)."""
    n, ga_range, domains, pathology_fraction = _check_args(n, ga_range, domains, pathology_fraction)
    out = Path(out)
    _prepare_out(out, overwrite)
    progress = resolve(progress)
    total = n * len(domains)
    done = 0
    started = time.perf_counter()
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    progress(0, total, "")

    if "us" in domains:
        t0 = time.perf_counter()
        hc18, paired = out / "us" / "hc18", out / "us" / "paired"
        hc_rows, rows = [], []
        for i in range(n):
            case = render_paired_case(seed, i, ga_range, pathology_fraction)
            name = f"{i + 1:03d}_HC"
            hc_rows.append(write_hc18_case(hc18, name, case["frame"]))
            stem = f"{i + 1:03d}"
            write_png(np.clip(case["us"], 0, 255), paired / f"{stem}_us.png")
            write_png(case["mri"], paired / f"{stem}_mri.png")
            write_png(case["labels"], paired / f"{stem}_labels.png")
            p, g, t = case["params"], case["frame"].geometry, case["transform"]
            rows.append({
                "case": stem, "ga_weeks": p.ga_weeks, "pathology": p.pathology or "", "hc_mm": p.hc_mm,
                "bpd_mm": p.bpd_mm, "bpd_outer_mm": p.bpd_outer_mm, "ofd_mm": p.ofd_mm,
                "cephalic_index": p.cephalic_index, "atrium_width_left_mm": p.left.atrium_width_mm,
                "atrium_width_right_mm": p.right.atrium_width_mm, "anatomy_seed": case["seeds"]["anatomy"],
                "us_seed": case["seeds"]["render"], "mri_seed": case["seeds"]["render"],
                "pixel_size_mm": g.pixel_size_mm, "frame_hc_mm": g.head_circumference_mm,
                "anterior_right": int(t.anterior_right), "mirror": int(t.mirror),
                "near_field": t.near_field_side(),
                "orientation_error_px": case["orientation_error"], "label_agreement": case["label_agreement"],
                "frame": f"{name}.png", "annotation": f"{name}_Annotation.png", "us": f"{stem}_us.png",
                "mri": f"{stem}_mri.png", "labels": f"{stem}_labels.png"})
            done += 1
            progress(done, total, f"us {stem} GA {p.ga_weeks:.1f}")
        write_hc18_csv(hc18 / HC18_CSV_NAME, hc_rows)
        write_text_atomic(paired / "paired.csv", _csv_text(PAIRED_COLUMNS, rows))
        counts["us"] = n
        timings["us_s_per_case"] = (time.perf_counter() - t0) / n

    if "mri" in domains:
        t0 = time.perf_counter()
        canon, feta = out / "mri" / "canonical", out / "mri" / "feta"
        rows = []
        for i in range(n):
            seeds = case_seeds(seed, "mri", i)
            params = sample_anatomy(seeds["anatomy"], ga_range=ga_range,
                                    pathology=_pathology(seeds, pathology_fraction))
            stem = f"{i + 1:03d}"
            for k, offset in enumerate(MRI_SLICE_OFFSETS_MM):
                sl = render_mri_slice(params, seeds["render"] + k, slice_offset_mm=offset)
                fname = f"{stem}_o{offset:+.0f}.png"
                write_png(canonical_mri(sl), canon / fname)
                rows.append({"case": stem, "slice": k, "ga_weeks": params.ga_weeks,
                             "pathology": params.pathology or "", "hc_mm": params.hc_mm, "bpd_mm": params.bpd_mm,
                             "ofd_mm": params.ofd_mm, "atrium_width_left_mm": params.left.atrium_width_mm,
                             "atrium_width_right_mm": params.right.atrium_width_mm,
                             "anatomy_seed": seeds["anatomy"], "mri_seed": seeds["render"] + k,
                             "slice_offset_mm": offset, "image": fname})
            if mri_volumes:
                vol = render_mri_volume(params, seeds["render"])
                write_feta_subject(feta, stem, vol.volume, vol.labels, vol.info.spacing_xyz, params.ga_weeks,
                                   origin=vol.info.origin_xyz, direction=vol.info.direction,
                                   pathology=params.pathology, sidecar=vol.info.to_dict())
            done += 1
            progress(done, total, f"mri {stem} GA {params.ga_weeks:.1f}")
        write_text_atomic(canon / "mri.csv", _csv_text(MRI_COLUMNS, rows))
        counts["mri"] = n
        counts["mri_slices"] = len(rows)
        if mri_volumes:
            counts["mri_volumes"] = n
        timings["mri_s_per_case"] = (time.perf_counter() - t0) / n

    summary = {
        "kind": "ddic_phantom_dataset", "version": __version__,
        "arguments": {"n": n, "ga_range": list(ga_range), "seed": int(seed), "domains": list(domains),
                      "mri_volumes": bool(mri_volumes), "pathology_fraction": pathology_fraction},
        "counts": counts, "seconds": round(time.perf_counter() - started, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "canonical": {"size_px": CANONICAL_SIZE_PX, "spacing_mm": CANONICAL_SPACING_MM,
                      "label_ids": {lab.name.lower(): int(lab) for lab in Label},
                      "mri_preprocessing": "brain-extracted (FeTA class > 0), brain 1st–99th percentiles → 0…255, "
                                           "as ddic prepare feta|crl",
                      "us_preprocessing": "masked outside the skull ellipse + head mask margin, as ddic prepare hc18",
                      "mri_slice_offsets_mm": list(MRI_SLICE_OFFSETS_MM)},
        "us_label_spacing_mm": US_LABEL_SPACING_MM,
    }
    write_text_atomic(out / "phantom.json", json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------------------
# gallery

GALLERY_GA_WEEKS = (22.0, 30.0, 37.0)


def _label_palette() -> np.ndarray:
    rng = np.random.default_rng(7)
    pal = rng.integers(60, 256, size=(256, 3)).astype(np.uint8)
    pal[0] = 0
    pal[int(Label.AMNIOTIC_FLUID)] = (20, 20, 40)
    pal[int(Label.SKULL)] = (255, 255, 255)
    return pal


def _resize_nearest(img: np.ndarray, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    width = max(1, int(round(w * height / h)))
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
    return img[rows][:, cols]


def make_gallery(path, seed: int = 0, ga_weeks: Sequence[float] = GALLERY_GA_WEEKS, tile: int = 256) -> Path:
    """One row per GA: canonical label map (colour), the US frame (downscaled), the paired MRI slice."""
    pal = _label_palette()
    gap = np.zeros((tile, 8, 3), np.uint8)
    rows = []
    for k, ga in enumerate(ga_weeks):
        seeds = case_seeds(seed, "gallery", k)
        params = sample_anatomy(seeds["anatomy"], ga_weeks=float(ga))
        labels, ellipse = us_label_map(params)
        frame = render_ultrasound(labels, US_LABEL_SPACING_MM, ellipse, seed=seeds["render"])
        tiles = [
            _resize_nearest(pal[render_labels(params)], tile),
            np.repeat(_resize_nearest(frame.image, tile)[..., None], 3, axis=2),
            np.repeat(_resize_nearest(mri_png(render_mri_slice(params, seeds["render"]).image).astype(np.uint8),
                                      tile)[..., None], 3, axis=2),
        ]
        parts = []
        for t in tiles:
            parts += [t.astype(np.uint8), gap]
        rows.append(np.concatenate(parts[:-1], axis=1))
        rows.append(np.zeros((8, rows[-1].shape[1], 3), np.uint8))
    return write_png(np.concatenate(rows[:-1], axis=0), path)
