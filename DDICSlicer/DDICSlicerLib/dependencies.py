"""One entry point for the packages the engine needs, run on the main thread at the first Apply.

Order matters (lassoan/SlicerTotalSegmentator#65): torch first, through the PyTorch extension's
``PyTorchUtils`` (it picks the CUDA build that fits the driver; never ``pip install torch``), then the
other packages through ``slicer.packaging.pip_ensure`` (Slicer ≥ 5.12) or one confirmation +
``slicer.util.pip_install`` (5.10). Slicer's own numpy, SimpleITK and requests are never replaced
(Slicer/Slicer#6711): they are skipped, and nothing is installed with upgrade flags.
"""

from __future__ import annotations

import importlib.util
import logging

REQUESTER = "DDICSlicer"
TORCH_REQUIREMENT = ">=2.4"  # pyproject.toml of the engine
# (import name, pip requirement) of the engine's packages that Slicer does not bundle
PIP_PACKAGES = (("diffusers", "diffusers>=0.30"), ("safetensors", "safetensors>=0.4"), ("tqdm", "tqdm>=4.66"))
SLICER_OWNED = ("numpy", "SimpleITK", "requests", "scipy", "torch")  # never installed or upgraded by us


class DependencyError(RuntimeError):
    """Setup could not complete; ``restart_required`` asks the user to restart Slicer first."""

    def __init__(self, message: str, restart_required: bool = False):
        super().__init__(message)
        self.restart_required = restart_required


def missing_packages() -> list[str]:
    """Requirements of :data:`PIP_PACKAGES` whose module cannot be found (cheap: no import)."""
    return [req for name, req in PIP_PACKAGES if importlib.util.find_spec(name) is None]


def torch_ready() -> bool:
    return importlib.util.find_spec("torch") is not None


def setup_dependencies(ask: bool = True) -> bool:
    """Make torch and the engine's packages available; True when ready, False if the user declined.

    Must run on the main thread (pip's progress UI is Qt). One confirmation lists everything missing.
    Raises :class:`DependencyError` with an actionable message otherwise.
    """
    import slicer

    need_torch = not torch_ready()
    need_pip = missing_packages()
    if not need_torch and not need_pip:
        return True
    if slicer.app.testingEnabled() and not need_torch:
        ask = False
    items = (["PyTorch (through the PyTorch extension, several GB)"] if need_torch else []) + need_pip
    if ask and not slicer.util.confirmOkCancelDisplay(
            "DDICSlicer needs these Python packages, installed once into Slicer's Python:\n\n  "
            + "\n  ".join(items)
            + "\n\nThis can take several minutes. Slicer's own numpy and SimpleITK are not changed.",
            windowTitle="DDICSlicer: install dependencies"):
        return False
    if need_torch:
        install_torch()
    if need_pip:
        install_pip_packages(need_pip)
    still = missing_packages()
    if still:
        raise DependencyError(f"Installed, but still missing: {', '.join(still)}. Restart Slicer and try again.",
                              restart_required=True)
    return True


def install_torch() -> None:
    import slicer

    try:
        import PyTorchUtils  # the PyTorch extension (EXTENSION_DEPENDS)
    except ImportError:
        raise DependencyError(
            "The PyTorch extension is not installed. Open View → Extensions Manager, install 'PyTorch', "
            "restart Slicer, and press Apply again.") from None
    logic = PyTorchUtils.PyTorchUtilsLogic()
    if logic.torchInstalled():
        return
    torch = logic.installTorch(askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT)
    if torch is None:
        raise DependencyError("PyTorch could not be installed. See the Python console for the reason; in the "
                              "PyTorch module you can choose the computation backend that fits your GPU.")
    logging.getLogger(__name__).info("PyTorch %s installed", getattr(torch, "__version__", "?"))
    slicer.app.processEvents()


def install_pip_packages(requirements: list[str]) -> None:
    import slicer

    packaging = getattr(slicer, "packaging", None)
    if packaging is None:
        try:
            from slicer import packaging  # Slicer ≥ 5.12
        except ImportError:
            packaging = None
    if packaging is not None and hasattr(packaging, "pip_install"):
        # no_deps would be safer for numpy, but these packages need their small pure-Python deps;
        # skip_packages keeps Slicer's own builds even if a dependency asks for another version
        packaging.pip_install(requirements, skip_packages=list(SLICER_OWNED), requester=REQUESTER)
    else:  # Slicer 5.10
        slicer.util.pip_install(" ".join(requirements))
