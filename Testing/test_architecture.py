"""The engine's layering (``shared/docs/architecture.md``), checked on the imports of every engine module.

Why a test: two rules keep the engine simple to read and usable everywhere — it never imports Slicer, Qt,
CTK, VTK or MRML (so it runs from the command line, in tests and in Slicer's background processes), and a
package uses only the packages below it (so it can be read and tested bottom-up). Nothing else notices
when an import quietly breaks them: an upward import works until it closes a cycle, a Slicer import works
until the engine runs outside Slicer. Here every ``import`` of every module under ``DDICSlicer/ddic`` —
at module level, inside functions and under ``if TYPE_CHECKING`` alike — is read with :mod:`ast` (not
executed) and compared with :data:`ALLOWED`.

A *unit* is a subpackage of ``ddic`` (``ddic.io``, ``ddic.geometry``, …) or one of the :data:`LEAVES`,
small modules every unit may use. :data:`ALLOWED` is architecture.md's package table, made complete:
where the code has a legitimate edge the table does not show, it is allowed here with the reason, and the
allowed edges must stay free of cycles (:func:`test_allowed_units_form_layers`), so no edge can point
upwards. To see the real graph: ``python Testing/test_architecture.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "DDICSlicer"
PACKAGE = "ddic"

FORBIDDEN_TOP_LEVEL = {"slicer", "qt", "ctk", "vtk", "vtkmodules", "mrml", "DDICSlicer", "DDICSlicerLib"}
"""Slicer, its GUI toolkits and scene, and the Slicer-side layer of this extension: never in the engine."""

LEAVES = {"ddic", "errors", "progress"}
"""Usable by every unit: the package root (``__version__`` only), the typed errors, the progress callback."""

_ORCHESTRATION = {"cyclegan", "data", "diffusion", "geometry", "io", "measure", "metrics", "models", "segment",
                  "translate"}

ALLOWED: dict[str, set[str]] = {
    # architecture.md: "—"
    "io": set(),
    "measure": set(),
    # architecture.md says "—"; images with their geometry (ddic.io.images.Frame) are the input of the
    # canonical transform and of the annotation fit, so geometry stands on io
    "geometry": {"io"},
    # architecture.md: io. + geometry: the canonical grid's spacing (geometry.canonical) names the
    # pixel size of a trained model on its card
    "diffusion": {"io", "geometry"},
    # not in architecture.md: the CycleGAN baseline reuses the diffusion training data, loop and
    # checkpoints (ddic.diffusion) and the canonical spacing (geometry.canonical)
    "cyclegan": {"diffusion", "io", "geometry"},
    # architecture.md: diffusion, io. + geometry: head placement (translate.placement fits or detects the
    # skull ellipse and builds the canonical transform); + cyclegan: CycleGAN inference, which the table
    # puts in translate, loads its model through ddic.cyclegan; + models: the method registry resolves
    # model ids of `ddic models list` to files (translate.methods)
    "translate": {"diffusion", "io", "geometry", "cyclegan", "models"},
    # architecture.md: geometry, io. + measure: the ventricle atlas describes the head's axes with
    # ddic.measure.plausibility.HeadAxes (a pure-numpy record)
    "data": {"geometry", "io", "measure"},
    # architecture.md: io. + diffusion: a bundled DDIC model is verified against its diffusion model card,
    # and a trained one exported as a demo model with it (ddic.diffusion.modelfile)
    "models": {"io", "diffusion"},
    # architecture.md: models. + io: masks written with their geometry; + measure: the automatic distal
    # atrium measurement (segment.distal_atrium) judges and measures its mask; + data: it places its
    # prompts with the ventricle atlas (ddic.data.ventricle_atlas)
    "segment": {"models", "io", "measure", "data"},
    # architecture.md: measure. + io: the reader study reads and writes its images and records
    "metrics": {"measure", "io"},
    # architecture.md: translate, segment. + io: the worker reads the frames it is sent and turns write
    # failures into one-line output errors (ddic.io.images, ddic.io.writable)
    "worker": {"translate", "segment", "io"},
    # not in architecture.md: `ddic evaluate` and `ddic demo` run the pipeline end to end, above every
    # package they run and below the CLI
    "evaluate": set(_ORCHESTRATION),
    "demo": set(_ORCHESTRATION),
    # architecture.md: all
    "cli": set(_ORCHESTRATION) | {"evaluate", "demo", "worker"},
    "__main__": {"cli"},
}


# ---------------------------------------------------------------------------------------------------------
# The checker


def module_name(path: Path, root: Path = ENGINE) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``) of an engine source file."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...], int]]:
    """Every import of a module's source, anywhere in it: (absolute module, names imported from it, line)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, tuple(alias.name for alias in node.names), node.lineno))
    return found


def unit_of(module: str) -> str | None:
    """The unit of an engine module (``ddic.io.images`` → ``io``, ``ddic`` → ``ddic``); None outside it."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else PACKAGE


def edges_of(source: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    """The units (or forbidden top-level packages, prefixed ``!``) a module's imports reach, with lines."""
    edges = []
    for target, names, line in imported_modules(source, module, is_package):
        top = target.split(".")[0]
        if top in FORBIDDEN_TOP_LEVEL:
            edges.append((f"!{top}", line))
            continue
        unit = unit_of(target)
        if unit is None:
            continue
        if unit == PACKAGE:  # `from ddic import io` imports the unit io; `from .. import __version__` the root
            units = [name for name in names if name in ALLOWED or name in LEAVES] or [PACKAGE]
        else:
            units = [unit]
        edges.extend((u, line) for u in units)
    return edges


def violations(source: str, module: str, is_package: bool = False,
               allowed: dict[str, set[str]] = ALLOWED) -> list[str]:
    """The imports of one module that break the rules, as ``module:line: what``; empty when it keeps them."""
    own = unit_of(module)
    problems = []
    for target, line in edges_of(source, module, is_package):
        if target.startswith("!"):
            problems.append(f"{module}:{line}: imports {target[1:]} — the engine never imports Slicer, Qt, CTK, "
                            "VTK or MRML (do it in DDICSlicerLib)")
        elif own not in allowed and own not in LEAVES:
            problems.append(f"{module}:{line}: the unit {own!r} is not placed in ALLOWED; add it")
        elif target == own or target in LEAVES:
            continue
        elif own in LEAVES:
            problems.append(f"{module}:{line}: the leaf {own!r} imports {target!r}; leaves use nothing of ddic")
        elif target not in allowed[own]:
            problems.append(f"{module}:{line}: {own} → {target} is not allowed (may use: "
                            f"{', '.join(sorted(allowed[own] | LEAVES)) or 'nothing'})")
    return problems


def engine_sources():
    for path in sorted((ENGINE / PACKAGE).rglob("*.py")):
        name, is_package = module_name(path)
        yield name, is_package, path.read_text(encoding="utf-8")


def actual_graph() -> dict[str, dict[str, list[str]]]:
    """unit → used unit → the ``module:line`` places, over the whole engine (leaves and itself left out)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, is_package, source in engine_sources():
        own = unit_of(name)
        for target, line in edges_of(source, name, is_package):
            if target != own and target not in LEAVES:
                graph[own][target].append(f"{name}:{line}")
    return graph


# ---------------------------------------------------------------------------------------------------------
# The rules, on the real engine


def test_engine_imports_keep_the_layering():
    problems = [p for name, is_package, source in engine_sources() for p in violations(source, name, is_package)]
    assert not problems, "\n".join(["Imports that break shared/docs/architecture.md's rules:", *problems])


def test_every_engine_unit_is_placed():
    units = {unit_of(name) for name, _, _ in engine_sources()}
    assert units - set(ALLOWED) - LEAVES == set(), "place the new unit in ALLOWED (and in architecture.md)"
    assert set(ALLOWED) - units == set(), "ALLOWED names a unit the engine no longer has"


def test_allowed_units_form_layers():
    """The allowed graph has no cycle: every unit sits on a level above the units it uses."""
    assert len(layers()) >= 5


def layers() -> list[set[str]]:
    """The units level by level, the lowest first (each uses only units of lower levels and the leaves)."""
    remaining = {unit: set(uses) for unit, uses in ALLOWED.items()}
    levels = []
    while remaining:
        level = {unit for unit, uses in remaining.items() if not uses & set(remaining)}
        assert level, f"the allowed edges form a cycle among {sorted(remaining)}"
        levels.append(level)
        remaining = {unit: uses for unit, uses in remaining.items() if unit not in level}
    return levels


def test_option_and_placement_modules_import_no_torch():
    """Slicer's own process builds translation options and places heads; it must not pay for torch."""
    code = "import sys, ddic.translate.options, ddic.translate.placement; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------
# The checker itself, on synthetic modules


def test_checker_catches_an_upward_import():
    source = "from ..errors import DDICInputError\nfrom ..translate.engine import Translator\n"
    assert violations(source, "ddic.io.fake") == [
        "ddic.io.fake:2: io → translate is not allowed (may use: ddic, errors, progress)"]


def test_checker_catches_an_upward_import_inside_a_function():
    source = "def run():\n    import ddic.cli.main\n    from ... import demo\n"
    found = violations(source, "ddic.geometry.sub.fake")
    assert [p.split(":")[1] for p in found] == ["2", "3"]
    assert "geometry → cli" in found[0] and "geometry → demo" in found[1]


@pytest.mark.parametrize("source", ["import slicer\n", "def f():\n    from qt import QWidget\n",
                                    "import vtk.util.numpy_support\n", "from DDICSlicerLib import volumes\n",
                                    "if False:\n    import ctk\n"])
def test_checker_catches_a_slicer_import(source):
    found = violations(source, "ddic.measure.fake")
    assert len(found) == 1 and "never imports Slicer" in found[0]


def test_checker_accepts_downward_and_leaf_imports():
    source = ("from __future__ import annotations\nimport numpy as np\nfrom .. import __version__\n"
              "from ..errors import DDICInputError\nfrom ..io.images import Frame\nfrom .ellipse import Ellipse\n"
              "def f():\n    from ..progress import resolve\n")
    assert violations(source, "ddic.geometry.fake") == []
    assert violations("from .. import io, errors\n", "ddic.models.fake") == []
    assert violations("from ddic import translate\n", "ddic.measure.fake") == [
        "ddic.measure.fake:1: measure → translate is not allowed (may use: ddic, errors, progress)"]


def test_checker_asks_to_place_a_new_unit():
    assert "not placed in ALLOWED" in violations("from ..io import images\n", "ddic.newpackage.fake")[0]


if __name__ == "__main__":  # print the real graph and the levels, to keep architecture.md true
    for unit, uses in sorted(actual_graph().items()):
        print(f"{unit} → " + ", ".join(f"{u} ({len(places)})" for u, places in sorted(uses.items())))
    for number, level in enumerate(layers()):
        print(f"level {number}: {', '.join(sorted(level))}")
