"""Find ``Resources/models`` (manifest + bundled demo models) wherever ddic runs from.

The same code runs from a source checkout, from an installed Slicer extension and from a pip-installed
wheel, and each puts the resources somewhere else relative to the ``ddic`` package:

====================  =========================================================================
source checkout       ``<repo>/DDICSlicer/ddic`` → ``<repo>/Resources/models``
Slicer extension      ``<ext>/lib/Slicer-X.Y/qt-scripted-modules/ddic`` → ``…/qt-scripted-modules/
                      Resources/models``: the module's ``resourcePath("models")``, since
                      ``slicerMacroBuildScriptedModule`` copies resources beside ``DDICSlicer.py`` and ddic
wheel (site-packages)  ``…/site-packages/ddic`` → ``…/site-packages/ddic/_resources/models`` (package data)
====================  =========================================================================

``DDIC_RESOURCES_DIR`` overrides all of them. A folder counts only if it holds ``manifest.json``, so a
half-installed layout falls through to the next candidate, and when none fits the error lists every
place that was tried.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DDICModelError

ENV_RESOURCES = "DDIC_RESOURCES_DIR"
MANIFEST_NAME = "manifest.json"
#: package-data folder of the wheel (inside the ``ddic`` package)
WHEEL_RESOURCES = "_resources"


def _package_dir() -> Path:
    import ddic

    return Path(ddic.__file__).resolve().parent


def resources_candidates(package_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """``(label, folder)`` pairs tried by :func:`resources_dir` after the environment variable, in order."""
    pkg = Path(package_dir) if package_dir is not None else _package_dir()
    return [
        ("source checkout", pkg.parent.parent / "Resources" / "models"),
        ("installed Slicer extension", pkg.parent / "Resources" / "models"),
        ("pip-installed package data", pkg / WHEEL_RESOURCES / "models"),
    ]


def _env_dir(value: str) -> Path:
    """Accept the models folder itself or the ``Resources`` folder above it."""
    folder = Path(value).expanduser()
    for candidate in (folder, folder / "models"):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise DDICModelError(f"{ENV_RESOURCES} is set to {value!r}, but neither that folder nor its 'models' "
                         f"subfolder holds {MANIFEST_NAME}. Point it at the Resources/models folder of "
                         f"DDICSlicer, or unset it to use the installed resources.")


def resources_dir(package_dir: str | os.PathLike | None = None) -> Path:
    """The ``Resources/models`` folder holding ``manifest.json`` and the bundled models.

    ``package_dir`` stands in for the ``ddic`` package folder (tests of installed layouts).
    """
    env = os.environ.get(ENV_RESOURCES)
    if env:
        return _env_dir(env)
    candidates = resources_candidates(package_dir)
    for _label, folder in candidates:
        if (folder / MANIFEST_NAME).is_file():
            return folder
    tried = "; ".join(f"{label}: {folder}" for label, folder in candidates)
    raise DDICModelError(f"Cannot find the DDICSlicer model resources ({MANIFEST_NAME}). Tried {tried}. "
                         f"Reinstall DDICSlicer, or set {ENV_RESOURCES} to its Resources/models folder.")
