"""CRL spatiotemporal fetal brain atlas (Gholipour et al. 2017) → canonical MRI training slices
(method.md §5, anatomy.md §7.4).

Input: anywhere under ROOT (e.g. ``CRL_FetalBrainAtlas_2017v3/``), the T2 templates ``STA<GA>.nii[.gz]``
(GA = two digits, 21–38; the ``STA<GA>exp`` variants of 36–38 w are accepted too and get their own subject
``STA<GA>exp``) — the GA comes from the file name. Beside each template, its label map, the first found of:

1. ``STA<GA>[exp]_tissue.nii[.gz]`` — the tissue segmentation (CRL v3 tissue labels, mapped to FeTA
   classes with :data:`ddic.data.prepare.mri_common.CRL_TO_FETA`; a map holding only 0–7 is read as FeTA
   classes, which is how the tests use phantom volumes);
2. ``STA<GA>[exp]_parcellation.nii[.gz]`` — the same label handling *[decision: the regional/parcellation maps
   of other releases also label thalami (77/78), caudate/putamen, ventricles and cerebellum with the tissue
   codes; unknown non-zero labels count as brain]*.

``_regional`` maps are not used. Files whose GA is outside 21–38 are an error (a misnamed file). Each
template is one subject, so with ``--test-fraction`` whole ages go to the test split.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX
from ...progress import ProgressCallback
from .mri_common import (
    DEFAULT_SLICE_STEP_MM,
    DEFAULT_SLICES,
    MRIPrepareSummary,
    VolumeItem,
    VolumeTriage,
    prepare_volumes,
    start_run,
)

GA_RANGE = (21, 38)
LABEL_SUFFIXES = ("_tissue", "_parcellation")
_TEMPLATE = re.compile(r"^STA(\d{2})(exp)?\.nii(\.gz)?$", re.IGNORECASE)


def parse_ga(name: str) -> tuple[int, bool] | None:
    """``STA25.nii.gz`` → (25, False); ``STA36exp.nii.gz`` → (36, True); other names → None."""
    match = _TEMPLATE.match(Path(name).name)
    if not match:
        return None
    return int(match.group(1)), bool(match.group(2))


def find_templates(root: Path) -> list[tuple[str, int, Path, Path | None]]:
    """(subject, GA, template, label map or None) for each ``STA<GA>[exp].nii[.gz]`` under ROOT."""
    found = []
    for path in sorted(Path(root).rglob("STA*.nii*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        parsed = parse_ga(path.name)
        if parsed is None:
            continue
        ga, exp = parsed
        stem = path.name[: path.name.lower().index(".nii")]
        labels = None
        for suffix in LABEL_SUFFIXES:
            for ext in (".nii.gz", ".nii"):
                candidate = path.with_name(stem + suffix + ext)
                if candidate.is_file():
                    labels = candidate
                    break
            if labels is not None:
                break
        found.append((f"STA{ga:02d}{'exp' if exp else ''}", ga, path, labels))
    return found


def prepare_crl(root, out, *, n_slices: int = DEFAULT_SLICES, step_mm: float = DEFAULT_SLICE_STEP_MM,
                test_fraction: float = 0.0, split_seed: int = 0, size: int = CANONICAL_SIZE_PX,
                skip_bad: bool = False, overwrite: bool = False,
                progress: ProgressCallback | None = None) -> MRIPrepareSummary:
    """Prepare the CRL atlas templates under ``root`` into ``out`` (see the module docstring)."""
    root, out = start_run("CRL atlas", root, out, overwrite, n_slices, step_mm, test_fraction, size)
    templates = find_templates(root)
    if not templates:
        raise DDICInputError(f"No CRL atlas template (STA<GA>.nii.gz, GA {GA_RANGE[0]}–{GA_RANGE[1]}) under {root}.")
    seen: dict[str, Path] = {}
    triage = VolumeTriage(skip_bad)
    for subject, ga, path, labels in templates:
        rel = path.relative_to(root).as_posix()
        reason = None
        if not GA_RANGE[0] <= ga <= GA_RANGE[1]:
            reason = f"GA {ga} from the file name is outside {GA_RANGE[0]}–{GA_RANGE[1]} weeks"
        elif labels is None:
            wanted = " or ".join(f"{subject}{s}.nii.gz" for s in LABEL_SUFFIXES)
            reason = f"no label map ({wanted}) beside the template"
        elif subject in seen:
            reason = f"{subject} is also at {seen[subject].relative_to(root).as_posix()}"
        seen.setdefault(subject, path)
        item = VolumeItem(subject=subject, image=path, labels=labels if labels is not None else path,
                          ga_weeks=float(ga), condition="atlas", label_scheme="auto")
        triage.add(item, reason, rel)
    return prepare_volumes("CRL", root, out, triage.items, problems=triage.problems, n_slices=n_slices, step_mm=step_mm,
                           test_fraction=test_fraction, split_seed=split_seed, size=size, skip_bad=skip_bad,
                           overwrite=overwrite, progress=progress, pre_skipped=triage.skipped)
