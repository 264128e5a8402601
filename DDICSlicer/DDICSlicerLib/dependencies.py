"""One entry point for the packages each task needs, run on the main thread before the task starts.

What a task needs (:data:`PURPOSES`):

* ``translation``: torch, then diffusers, safetensors, tqdm (``ddic translate``);
* ``sam``: torch and torchvision, then segment-anything (the SAM backend of the segmentation worker);
* ``classical``: nothing — the classical segmentation backend uses only what Slicer bundles.

Order matters (lassoan/SlicerTotalSegmentator#65): torch first, through the PyTorch extension's
``PyTorchUtils`` (light-the-torch picks the CUDA build that fits the driver; never ``pip install torch``),
with a minimum version checked from the installed metadata (no import), then the other packages through
``slicer.packaging.pip_install`` (Slicer ≥ 5.12) or ``slicer.util.pip_install`` (5.10). Slicer's own
numpy, SimpleITK, requests and scipy are never replaced (Slicer/Slicer#6711). A failed pip or
light-the-torch run is reported as what it is, with its exit status and last output; a torch that was
already imported in this process cannot be replaced without a restart, which :class:`DependencyError`
says (``restart_required``), as TotalSegmentator's ``InstallError`` does.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import subprocess
import sys
from dataclasses import dataclass

REQUESTER = "DDICSlicer"
TORCH_MINIMUM = "2.4"  # pyproject.toml of the engine
TORCHVISION_MINIMUM = "0.19"  # pyproject.toml, extra "sam"

# Import names of the Python packages a Slicer release ships (SuperBuild/External_python-*.cmake at
# Slicer 583e9b37d5 and v5.10.0: numpy, scipy, SimpleITK, requests-requirements, dicom-requirements,
# pythonqt-requirements, extension-manager(-ssl)-requirements, pip, setuptools, wheel).
SLICER_BUNDLED = frozenset({
    "numpy", "scipy", "SimpleITK", "sitkUtils", "requests", "certifi", "idna", "charset_normalizer", "urllib3",
    "pydicom", "PIL", "six", "retrying", "dicomweb_client", "highdicom", "typing_extensions", "packaging",
    "pyparsing", "chardet", "couchdb", "git", "gitdb", "smmap", "github", "jwt", "cryptography", "wrapt",
    "deprecated", "cffi", "pycparser", "nacl", "dateutil", "pip", "setuptools", "wheel",
    "slicer", "vtk", "vtkmodules", "qt", "ctk", "mrml",
})


@dataclass(frozen=True)
class Package:
    """A package the engine imports: its import name, pip requirement, and who installs it."""

    module: str
    requirement: str
    via_pytorch_extension: bool = False  # torch / torchvision come from PyTorchUtils, never from pip


TORCH = Package("torch", f"torch>={TORCH_MINIMUM}", True)
TORCHVISION = Package("torchvision", f"torchvision>={TORCHVISION_MINIMUM}", True)
PURPOSES = {
    "translation": (TORCH, Package("diffusers", "diffusers>=0.30"), Package("safetensors", "safetensors>=0.4"),
                    Package("tqdm", "tqdm>=4.66")),
    "sam": (TORCH, TORCHVISION, Package("segment_anything", "segment-anything>=1.0")),
    "classical": (),
}
SLICER_OWNED = ("numpy", "SimpleITK", "requests", "scipy", "torch", "torchvision")  # never installed by pip here


class DependencyError(RuntimeError):
    """Setup could not complete. ``restart_required``: restart Slicer first; ``details``: tool output."""

    def __init__(self, message: str, restart_required: bool = False, details: str = ""):
        super().__init__(message)
        self.restart_required = restart_required
        self.details = details


def installed_by_panel(purpose: str) -> frozenset:
    """Import names the panel makes available for ``purpose``, beside what Slicer bundles."""
    return frozenset(package.module for package in PURPOSES[purpose])


def installed_version(distribution: str) -> str | None:
    """Version from the installed metadata, without importing the package (importing torch in Slicer's
    process would pin that version until a restart)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_at_least(version: str, minimum: str) -> bool:
    from packaging.version import InvalidVersion, Version  # bundled with Slicer

    try:
        return Version(version).release >= Version(minimum).release
    except InvalidVersion:
        return False


def problems(purpose: str, find_spec=importlib.util.find_spec, version=installed_version) -> list[str]:
    """What is missing or too old for ``purpose``, one readable item each (empty: ready)."""
    out = []
    for package in PURPOSES[purpose]:
        if find_spec(package.module) is None:
            out.append(package.requirement)
            continue
        minimum = {TORCH.module: TORCH_MINIMUM, TORCHVISION.module: TORCHVISION_MINIMUM}.get(package.module)
        found = version(package.module) if minimum else None
        if minimum and found and not version_at_least(found, minimum):
            out.append(f"{package.requirement} (found {found})")
    return out


def tool_failure(tool: str, exc: subprocess.CalledProcessError, what: str) -> DependencyError:
    """A failed pip / light-the-torch run as one message: which tool, exit status, its last lines, advice."""
    output = "\n".join(str(part) for part in (exc.stdout, exc.stderr) if part)
    tail = "\n".join(output.strip().splitlines()[-8:])
    lowered = output.lower()
    if any(word in lowered for word in ("proxy", "ssl", "certificate", "connection", "timed out", "resolve")):
        advice = ("The download failed: check the network connection; behind a proxy set HTTPS_PROXY before "
                  "starting Slicer (see Troubleshooting in the README).")
    elif "no matching distribution" in lowered or "could not find a version" in lowered:
        advice = "No suitable package was found for this Slicer's Python; update Slicer or see the README."
    else:
        advice = "See the output below and Troubleshooting in the README."
    return DependencyError(f"{tool} could not install {what} (exit status {exc.returncode}). {advice}",
                           details=tail)


def setup_dependencies(purpose: str, ask: bool = True) -> bool:
    """Make the packages of ``purpose`` available; True when ready, False if the user declined.

    Must run on the main thread (pip's progress UI is Qt). One confirmation lists everything missing.
    Raises :class:`DependencyError` with an actionable message otherwise.
    """
    import slicer

    missing = problems(purpose)
    if not missing:
        return True
    torch_needed = [p for p in PURPOSES[purpose] if p.via_pytorch_extension
                    and any(item.startswith(p.requirement) for item in missing)]
    pip_needed = [p.requirement for p in PURPOSES[purpose] if not p.via_pytorch_extension and p.requirement in missing]
    if slicer.app.testingEnabled():
        ask = False
    if ask and not slicer.util.confirmOkCancelDisplay(
            "DDICSlicer needs these Python packages, installed once into Slicer's Python:\n\n  "
            + "\n  ".join(missing)
            + "\n\nThis can take several minutes. Slicer's own numpy and SimpleITK are not changed.",
            windowTitle="DDICSlicer: install dependencies"):
        return False
    torch_was_loaded = "torch" in sys.modules
    if torch_needed:
        install_torch(vision=TORCHVISION in PURPOSES[purpose])
    if pip_needed:
        install_pip_packages(pip_needed)
    importlib.invalidate_caches()
    still = problems(purpose)
    if still or (torch_needed and torch_was_loaded):
        raise DependencyError(
            (f"Installed, but still not usable: {', '.join(still)}. " if still else
             "PyTorch was updated while an older PyTorch is loaded in Slicer. ")
            + "Restart Slicer to finish the installation, then try again.", restart_required=True)
    return True


def install_torch(vision: bool = False) -> None:
    """torch (and torchvision) through the PyTorch extension, with the minimum versions."""
    try:
        import PyTorchUtils  # the PyTorch extension (EXTENSION_DEPENDS)
    except ImportError:
        raise DependencyError(
            "The PyTorch extension is not installed. Open View → Extensions Manager, install 'PyTorch', "
            "restart Slicer, and try again.") from None
    logic = PyTorchUtils.PyTorchUtilsLogic()
    try:
        torch = logic.installTorch(askConfirmation=False, torchVersionRequirement=f">={TORCH_MINIMUM}",
                                   torchvisionVersionRequirement=f">={TORCHVISION_MINIMUM}" if vision else None)
    except subprocess.CalledProcessError as exc:
        raise tool_failure("light-the-torch (PyTorch extension)", exc, "PyTorch") from exc
    if torch is None:
        raise DependencyError("PyTorch was not installed (cancelled, or the installer found nothing to install). "
                              "In the PyTorch Utils module you can choose the computation backend that fits "
                              "your GPU (or cpu) and install it there.")
    logging.getLogger(__name__).info("PyTorch %s installed", getattr(torch, "__version__", "?"))


def install_pip_packages(requirements: list[str]) -> None:
    import slicer

    try:
        try:
            from slicer import packaging  # Slicer ≥ 5.12
        except ImportError:
            packaging = None
        if packaging is not None and hasattr(packaging, "pip_install"):
            # skip_packages keeps Slicer's own builds even if a dependency asks for another version
            packaging.pip_install(requirements, skip_packages=list(SLICER_OWNED), requester=REQUESTER)
        else:  # Slicer 5.10
            slicer.util.pip_install(" ".join(requirements))
    except subprocess.CalledProcessError as exc:
        raise tool_failure("pip", exc, ", ".join(requirements)) from exc
