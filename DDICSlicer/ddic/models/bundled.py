"""The demo models shipped with DDICSlicer (``Resources/models/demo-us``, ``demo-mri``): where they are.

They are listed in the manifest as kind ``bundled`` with ids ``ddic-demo-us`` / ``ddic-demo-mri``; this
module turns a domain into the model folder that :func:`ddic.io.modelfile.load_model` reads (which then
checks the weights against the SHA-256 in their card). Found the same way from a source checkout, a wheel
and an installed Slicer extension (:func:`ddic.models.resources.resources_dir`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DDICModelError
from .manifest import load_manifest
from .resources import resources_dir

DEMO_MODEL_IDS = {"us": "ddic-demo-us", "mri": "ddic-demo-mri"}


def bundled_model_path(domain: str) -> Path:
    """The folder of the bundled demo model of ``domain`` ("us" or "mri")."""
    if domain not in DEMO_MODEL_IDS:
        raise DDICModelError(f"No bundled demo model for domain {domain!r}; use 'us' or 'mri'.")
    entry = load_manifest(resources_dir() / "manifest.json").get(DEMO_MODEL_IDS[domain])
    path = entry.bundled_path
    if not path.is_dir() or not any(path.glob("*.json")):
        raise DDICModelError(
            f"The bundled demo model {entry.id!r} is missing ({path}). Reinstall DDICSlicer, or give your own "
            "models with --us-model / --mri-model (a source checkout can rebuild them with "
            "Resources/models/make_demo_models.sh).")
    return path
