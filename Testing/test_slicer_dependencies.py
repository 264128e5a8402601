"""Dependency coverage: what the panel's background processes import is what Slicer has or the panel installs.

* Static: the import graph (``import_graph.py``, function granularity) of each command the panel runs —
  ``ddic translate`` and the segmentation worker ``ddic.worker`` — against "bundled with Slicer ∪ what
  the panel installs for that task" (``DDICSlicerLib.dependencies``). Bundled = the packages of
  Slicer's SuperBuild/External_python-*.cmake (Slicer/Slicer 583e9b37d5 and v5.10.0).
* The light self-test (``DDICSlicerTest.test_LightSelfTest``) must need nothing beyond Slicer: its
  engine side runs here for real under an import blocker that refuses every other package.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from import_graph import ImportGraph

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "DDICSlicer"
sys.path.insert(0, str(MODULE_DIR))

from DDICSlicerLib import dependencies, sampledata, translation  # noqa: E402

from ddic.cli.main import SUBCOMMAND_MODULES  # noqa: E402

GRAPH = ImportGraph(MODULE_DIR)
# `python -m ddic X` builds the whole parser: every subcommand's module is imported and its register() run
# (ddic/cli/main.py build_parser); only X's own functions run beyond that.
REGISTRATION = [(f"ddic.cli.{name}", "register") for name in SUBCOMMAND_MODULES]


def ddic_command(subcommand: str):
    return [(f"ddic.cli.{subcommand}", "*"), ("ddic.__main__", "*")], REGISTRATION


PANEL_COMMANDS = {
    # purpose → (what the panel runs, graph entries)
    "translation": ("-m ddic translate", ddic_command("translate")),
    "sam": ("-m ddic.worker", ([("ddic.worker.__main__", "*")], [])),
}


def uncovered(entries, run_only, allowed) -> dict:
    return {r.package: " <- ".join(reversed(r.chain)) for r in GRAPH.reach(entries, run_only)
            if r.package not in allowed}


@pytest.mark.parametrize("purpose", sorted(PANEL_COMMANDS))
def test_every_package_a_panel_command_imports_is_bundled_or_installed(purpose):
    _command, (entries, run_only) = PANEL_COMMANDS[purpose]
    allowed = dependencies.SLICER_BUNDLED | dependencies.installed_by_panel(purpose)
    missing = uncovered(entries, run_only, allowed)
    assert missing == {}, "imported but neither bundled with Slicer nor installed by the panel:\n" + "\n".join(
        f"{k}: {v}" for k, v in missing.items())


def test_the_commands_checked_are_the_ones_the_panel_runs(tmp_path):
    from ddic.translate.placement import PlacementOptions

    job = translation.TranslationJob(frames=["f.nrrd"], us_model="u", mri_model="m", out_dir="o",
                                     options=translation.panel_options("ddic", 10, "ddim", True),
                                     placement=PlacementOptions(), options_path=tmp_path / "o.json")
    assert " ".join(job.command("python")[1:4]) == PANEL_COMMANDS["translation"][0]
    source = (MODULE_DIR / "DDICSlicer.py").read_text(encoding="utf-8")
    assert '"-m", "ddic.worker"' in source


def test_the_check_flags_what_the_old_panel_missed():
    """The checker can fail: segment_anything for SAM with only the translation packages (the old panel
    installed nothing else), and tqdm/torch for the old self-test's ``ddic phantom`` in a bare Slicer."""
    entries, run_only = PANEL_COMMANDS["sam"][1]
    old_install = dependencies.SLICER_BUNDLED | {"torch", "diffusers", "safetensors", "tqdm"}
    assert set(uncovered(entries, run_only, old_install)) == {"segment_anything"}
    entries, run_only = ddic_command("phantom")
    assert {"tqdm", "torch"} <= set(uncovered(entries, run_only, dependencies.SLICER_BUNDLED))


def test_import_graph_follows_functions_not_whole_modules():
    """Function granularity: the SAM worker does not need diffusers (only bundled translation models do)."""
    reached = {r.package for r in GRAPH.reach([("ddic.worker.__main__", "*")])}
    assert {"torch", "segment_anything", "numpy", "scipy", "SimpleITK"} <= reached
    assert "diffusers" not in reached and "tqdm" not in reached
    guarded = {r.package: r.guarded for r in GRAPH.reach([("ddic.segment.sam", "import_segment_anything")])}
    assert guarded["segment_anything"] is True  # inside try/except ImportError: a clear message instead


# --- the light self-test ----------------------------------------------------------------------------------

def light_test_methods() -> dict[str, ast.FunctionDef]:
    tree = ast.parse((MODULE_DIR / "DDICSlicer.py").read_text(encoding="utf-8"))
    test = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DDICSlicerTest")
    methods = {n.name: n for n in test.body if isinstance(n, ast.FunctionDef)}
    assert "test_LightSelfTest" in methods, "DDICSlicerTest has no light self-test"
    reached, todo = {}, ["test_LightSelfTest"]
    while todo:
        name = todo.pop()
        if name in reached or name not in methods:
            continue
        reached[name] = methods[name]
        todo += [n.func.attr for n in ast.walk(methods[name]) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                 and n.func.value.id == "self"]
    return reached


def test_light_self_test_runs_no_install_no_translation_no_engine_command():
    forbidden = {"subprocess", "phantom", "translate", "startTranslation", "setup_dependencies",
                 "ensureDependencies", "pip_install", "installTorch"}
    for name, method in light_test_methods().items():
        words = {n.id for n in ast.walk(method) if isinstance(n, ast.Name)}
        words |= {n.attr for n in ast.walk(method) if isinstance(n, ast.Attribute)}
        words |= {n.value for n in ast.walk(method) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not words & forbidden, f"{name} uses {sorted(words & forbidden)}"
    assigned = {}
    for node in ast.walk(light_test_methods()["test_LightSelfTest"]):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
            for target, value in zip(node.targets[0].elts, node.value.elts):
                assigned[ast.unparse(target)] = ast.literal_eval(value) if isinstance(value, ast.Constant) else None
    assert assigned.get("p.backend") == "classical", "the light self-test must use the classical backend"


def test_translation_test_is_gated_and_says_why():
    tree = ast.parse((MODULE_DIR / "DDICSlicer.py").read_text(encoding="utf-8"))
    test = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DDICSlicerTest")
    method = next(n for n in test.body if isinstance(n, ast.FunctionDef) and n.name == "test_Translation")
    text = ast.unparse(method)
    assert "problems('translation')" in text and "self.skipTest(" in text
    assert text.index("self.skipTest(") < text.index("logic.translate(")
    run_test = next(n for n in test.body if isinstance(n, ast.FunctionDef) and n.name == "runTest")
    assert "SkipTest" in ast.unparse(run_test) and "delayDisplay" in ast.unparse(run_test)


ALLOWED = sorted(dependencies.SLICER_BUNDLED | {"ddic", "DDICSlicerLib", "slicer_stand_ins", "import_blocker"})
BLOCKER = f"import import_blocker; import_blocker.install({ALLOWED!r})\n"


def blocked_env() -> dict:
    env = translation.engine_environment(MODULE_DIR)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "Testing"), str(MODULE_DIR)])
    env.update(OMP_NUM_THREADS="1")
    return env


def test_light_self_test_segmentation_runs_with_only_what_slicer_bundles(tmp_path):
    """The worker the light self-test talks to, with the same prompt on the same bundled frame, in an
    interpreter that refuses torch, segment_anything, tqdm, diffusers, ..."""
    from DDICSlicerLib.workerclient import WorkerClient

    import SimpleITK as sitk

    frame = sampledata.sample_folder(MODULE_DIR) / sampledata.SELF_TEST_FRAME
    code = BLOCKER + "import runpy; runpy.run_module('ddic.worker', run_name='__main__', alter_sys=True)\n"
    client = WorkerClient([sys.executable, "-c", code], env=blocked_env())
    client.start()
    replies = {}
    x, y = sampledata.SELF_TEST_POINT
    client.request("load", lambda r: replies.setdefault("load", r), backend="classical", device="auto")
    client.request("set_image", lambda r: replies.setdefault("set_image", r), path=str(frame))
    client.request("predict", lambda r: replies.setdefault("predict", r), points=[[x, y, 1]],
                   out=str(tmp_path / "mask.nrrd"))
    deadline = time.monotonic() + 300
    try:
        while len(replies) < 3 and time.monotonic() < deadline and client.running:
            client.poll()
            time.sleep(0.05)
        client.poll()
    finally:
        client.stop()
    assert client.hello and client.hello["torch"] is None  # really without torch
    assert all(r.get("ok") for r in replies.values()) and len(replies) == 3, (replies, client.log.text[-2000:])
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "mask.nrrd"))).reshape(540, 800)
    assert int(mask.sum()) > 500 and mask[int(y), int(x)] == 1


def test_light_self_test_helpers_run_with_only_what_slicer_bundles(tmp_path):
    """CNR boxes, prompts, frame writing and the mask write-back of the light self-test, on the bundled
    frame, with the stand-ins of slicer_stand_ins.py, in an interpreter that refuses everything else."""
    script = tmp_path / "light.py"
    script.write_text(BLOCKER + textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import SimpleITK as sitk
        import slicer_stand_ins as si
        from types import SimpleNamespace
        patch = SimpleNamespace(setitem=lambda mapping, key, value: mapping.__setitem__(key, value))
        slicer = si.install_framework(patch, {str(tmp_path)!r})
        from DDICSlicerLib import cnr, sampledata, segments, volumes, layout, segmentation, workerclient, models
        from ddic.measure import PixelBox
        path = sampledata.sample_folder({str(MODULE_DIR)!r}) / sampledata.SELF_TEST_FRAME
        pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[None]
        spacing = sitk.ReadImage(str(path)).GetSpacing()[0]
        us = slicer.mrmlScene.AddNode(si.VolumeNode(pixels, spacing=(spacing, spacing, 1.0), directions=si.LPS_TO_RAS))
        pmri = si.VolumeNode((255.0 - pixels).astype(np.float32), spacing=(spacing, spacing, 1.0),
                             directions=si.LPS_TO_RAS)
        def box(b):
            cx, cy, w, h = b
            centre = (us.ijk_to_ras() @ np.array([cx, cy, 0.0, 1.0]))[:3]
            return si.ROINode(center=centre, size=(w * spacing, h * spacing, 1.0), axes=us.directions)
        roi, background = (box(sampledata.SELF_TEST_CNR_BOXES[k]) for k in ("roi", "background"))
        assert cnr.roi_to_box(roi, us) == PixelBox(493, 255, 509, 267), cnr.roi_to_box(roi, us)
        paired = cnr.measure(us, pmri, roi, background)
        assert np.isfinite(paired.us.cnr) and abs(paired.us.cnr - paired.pseudo_mri.cnr) < 1e-6
        x, y = sampledata.SELF_TEST_POINT
        point = si.MarkupsNode([(us.ijk_to_ras() @ np.array([x, y, 0.0, 1.0]))[:3]])
        assert np.allclose(segments.prompt_points(us, point, None), [[x, y, 1]])
        volumes.write_frame(us, {str(tmp_path / "frame.nrrd")!r})
        node = si.SegmentationNode()
        segments.write_mask(node, segments.TARGETS[0], np.ones((540, 800), np.uint8), us)
        assert segments.atrium_width_mm(np.zeros((540, 800), bool), us) is None
        from DDICSlicerLib import reliability  # the width's checks and the orientation, in Slicer's process
        placement = reliability.head_placement(pixels[0], spacing, "auto", None, mode="head")
        orientation = reliability.orientation_of(placement, "auto", None)
        assert orientation.source == "heuristic", orientation
        region = np.zeros((540, 800), bool)
        region[254:267, 490:511] = True  # where the self-test prompts: in the front half, not an atrium
        verdict = reliability.assess_atrium_mask(region, pixels[0], None, orientation, distal=False)
        assert verdict.width_mm is None and verdict.candidate_width_mm and verdict.reasons, verdict
        print(json.dumps({{"cnr": paired.us.cnr}}))
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=blocked_env(),
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["cnr"] > 0


def test_the_blocker_blocks():
    code = BLOCKER + "import tqdm\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=blocked_env())
    assert result.returncode != 0 and "not bundled with Slicer" in result.stderr
