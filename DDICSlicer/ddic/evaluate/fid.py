"""FID and KID of each method's pseudo-MRI set against the source-US set (the paper) and a real-MRI set.

Why optional: the Inception weights are a 95 MB file that ddic never downloads (:mod:`ddic.metrics.inception`).
Without them — or without pytorch-fid — the evaluation still runs and the report carries the extractor's own
message (which file, its SHA-256, where to put it) instead of numbers. A caller may pass another extractor
(tests pass :class:`ddic.metrics.RandomProjectionFeatures`); its name is written next to every number, because
FID values are only comparable with the same extractor, resize and N.
"""

from __future__ import annotations

from ..errors import DDICModelError
from ..metrics import (
    REFERENCE_REAL_MRI,
    REFERENCE_SOURCE_US,
    compare_to_references,
    extract_features,
)
from ..progress import ProgressCallback, resolve


def make_extractor(weights=None, device: str = "cpu"):
    """(Inception extractor, None) or (None, the reason it is unavailable)."""
    from ..metrics.inception import InceptionFeatures

    try:
        return InceptionFeatures(weights=weights, device=device), None
    except DDICModelError as exc:
        return None, str(exc)


def feature_comparisons(source_us, outputs: dict, mri_reference, extractor, n_bootstrap: int, seed: int,
                        progress: ProgressCallback | None = None) -> dict:
    """{method: {reference name: FeatureSetComparison dict}} plus ``extractor`` and the reference sizes; with a
    real-MRI set also ``us`` (the source US against it: what a translation should improve on).

    ``source_us``: the US images; ``outputs``: {method: pseudo-MRI images, same order}; ``mri_reference``:
    real MRI images or None.
    """
    report = resolve(progress)
    sets = {"source_us": source_us, **({"real_mri": mri_reference} if mri_reference else {}),
            **{f"method:{m}": images for m, images in outputs.items()}}
    features = {}
    for i, (name, images) in enumerate(sets.items()):
        features[name] = extract_features(images, extractor)
        report(i + 1, len(sets), f"features: {name}")
    references = {REFERENCE_SOURCE_US: features["source_us"]}
    if "real_mri" in features:
        references[REFERENCE_REAL_MRI] = features["real_mri"]
    by_method = {}
    if REFERENCE_REAL_MRI in references:  # the floor: the untranslated US against real MRI
        us = compare_to_references(features["source_us"], {REFERENCE_REAL_MRI: references[REFERENCE_REAL_MRI]},
                                   n_bootstrap=n_bootstrap, seed=seed)
        by_method["us"] = {name: c.to_dict() for name, c in us.items()}
    for method in outputs:
        comparisons = compare_to_references(features[f"method:{method}"], references, n_bootstrap=n_bootstrap,
                                            seed=seed)
        by_method[method] = {name: c.to_dict() for name, c in comparisons.items()}
    return {"extractor": extractor.name, "n_source_us": len(source_us),
            "n_real_mri": len(mri_reference) if mri_reference else 0, "methods": by_method}
