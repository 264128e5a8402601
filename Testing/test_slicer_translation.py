"""The panel's translation job: the engine's option records, one JSON document, device, estimate, cancel.

Plain-Python parts of ``DDICSlicer/DDICSlicerLib`` (no Slicer needed): ``translation``, ``device``,
``models.Catalog``, ``dependencies`` and ``process``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "DDICSlicer"))

from DDICSlicerLib import dependencies, device, models, process, translation  # noqa: E402

from ddic.cli import translate as cli_translate  # noqa: E402
from ddic.translate import options_document  # noqa: E402
from ddic.translate.options import SOLVERS, TranslateOptions  # noqa: E402
from ddic.translate.placement import PlacementOptions  # noqa: E402


def cli_records(*flags):
    parser = argparse.ArgumentParser()
    cli_translate.register(parser.add_subparsers())
    args = parser.parse_args(["translate", "f.nrrd", "--out", "o", *flags])
    return cli_translate.options_from_args(args), cli_translate.placement_from_args(args, 1)


PANELS = [
    (dict(method="ddic", steps=TranslateOptions().steps, solver=TranslateOptions().solver, forceCpu=False,
          pixelSize=0.0, anterior="auto", ellipse=None),
     ()),
    (dict(method="ddib", steps=25, solver="ddim", forceCpu=True, pixelSize=0.17, anterior="left", ellipse=None),
     ("--method", "ddib", "--steps", "25", "--solver", "ddim", "--cpu", "--pixel-size", "0.17", "--anterior", "left")),
    (dict(method="ddic", steps=7, solver="ddim", forceCpu=False, pixelSize=0.0, anterior="right",
          ellipse=(400.0, 270.0, 250.0, 180.0, 20.0)),
     ("--steps", "7", "--solver", "ddim", "--anterior", "right", "--ellipse", "400,270,250,180,20")),
]


@pytest.mark.parametrize("panel,flags", PANELS, ids=["defaults", "ddib cpu", "ellipse"])
def test_panel_builds_the_records_the_cli_builds(panel, flags):
    p = SimpleNamespace(**panel)
    options = translation.panel_options(p.method, p.steps, p.solver, p.forceCpu)
    placement = translation.panel_placement(p.pixelSize, p.anterior, p.ellipse)
    assert (options, placement) == cli_records(*flags)


def test_solver_is_offered_and_travels(tmp_path):
    options = translation.panel_options("ddic", 20, SOLVERS[-1], False)
    job = translation.TranslationJob(frames=["a.nrrd"], us_model="us", mri_model="mri", out_dir="out",
                                     options=options, placement=translation.panel_placement(0, "auto", None),
                                     options_path=tmp_path / "o.json")
    argv = job.command("PythonSlicer")
    parser = argparse.ArgumentParser()
    cli_translate.register(parser.add_subparsers())
    args = parser.parse_args(argv[3:])
    assert cli_translate.options_from_args(args).solver == SOLVERS[-1]


def test_command_is_one_document_and_a_watchdog(tmp_path):
    placement = translation.panel_placement(0.2, "left", (10, 20, 30, 25, 5))
    job = translation.TranslationJob(frames=["a.nrrd"], us_model="us", mri_model="mri", out_dir="o",
                                     options=translation.panel_options("ddic", 50, "ddim", True),
                                     placement=placement, options_path=tmp_path / "options.json", watch_parent=4321)
    argv = job.command("PythonSlicer")
    assert argv[:5] == ["PythonSlicer", "-m", "ddic", "translate", "a.nrrd"]
    assert argv[argv.index("--options-json") + 1] == str(tmp_path / "options.json")
    assert argv[argv.index("--watch-parent") + 1] == "4321"
    assert argv[argv.index("--progress-format") + 1] == "json"
    for flag in ("--steps", "--method", "--cpu", "--ellipse", "--anterior", "--pixel-size", "--geometry"):
        assert flag not in argv, f"{flag}: options travel in the document only"
    options, read_placement = options_document.read(tmp_path / "options.json")
    assert options.device == "cpu" and options.steps == 50 and read_placement == placement
    data = json.loads((tmp_path / "options.json").read_text())
    assert data["translate"] == options.to_dict()  # every field, whatever fields the engine has today


def test_job_refusals():
    base = dict(us_model="u", mri_model="m", out_dir="o", options=TranslateOptions(), options_path="x.json")
    with pytest.raises(ValueError, match="one frame"):
        translation.TranslationJob(frames=["a", "b"], placement=PlacementOptions(
            ellipse=translation.panel_placement(0, "auto", (5, 5, 3, 2, 0)).ellipse), **base).command()
    with pytest.raises(ValueError, match="No frame"):
        translation.TranslationJob(frames=[], placement=PlacementOptions(), **base).command()
    with pytest.raises(Exception, match="Invalid translation option steps"):
        translation.panel_options("ddic", 1, "ddim", False)
    with pytest.raises(Exception, match="Unknown anterior choice"):
        translation.panel_placement(0, "up", None)


# --- device and estimate ----------------------------------------------------------------------------------

CARD = {"preset": "tiny", "image_size": 64}
GPU = {"torch": "2.6.0", "cuda_build": "12.4", "cuda": True, "name": "NVIDIA RTX A4000",
       "free_bytes": 14 * device.GIB, "total_bytes": 16 * device.GIB, "mps": False}


def test_estimate_is_for_the_device_that_will_be_used_and_names_it():
    options = translation.panel_options("ddic", 100, "ddim", False)
    on_gpu = translation.estimate_text(CARD, options, device.device_info(GPU, cpu_count=2))
    assert "NVIDIA RTX A4000 (CUDA, 14.0 of 16.0 GB free)" in on_gpu and "CPU" not in on_gpu
    on_cpu = translation.estimate_text(CARD, options, device.device_info(GPU, force_cpu=True, cpu_count=2))
    assert "this CPU (2 cores)" in on_cpu and "Force CPU" in on_cpu and "NVIDIA" not in on_cpu
    assert "for 3 frames" in translation.estimate_text(CARD, options, device.device_info(None, cpu_count=2), 3)
    assert "unavailable" in translation.estimate_text({}, options, device.device_info(GPU))


def test_estimate_is_the_engines_calls_times_the_measured_call():
    """Measured: Σ calls × the probe's time of one call on this device; the solver, N, mode and the round-trip
    check change the calls (TranslateOptions.network_evaluations), the model and device change the time."""
    timing = {"device_kind": "cpu", "forward_s": 0.02, "forward_backward_s": 0.05}
    faithful = translation.panel_options("ddic", 100, "dpmpp2m", True)  # 400 calls, 100 of them with a gradient
    estimate = translation.estimate_seconds({}, faithful, timing=timing)  # no preset needed once measured
    assert estimate.measured and estimate.calls == (400, 100)
    assert estimate.seconds == pytest.approx(300 * 0.02 + 100 * 0.05)
    ddib = translation.estimate_seconds({}, translation.panel_options("ddib", 100, "ddim", True), timing=timing)
    assert ddib.calls == (300, 0) and ddib.seconds == pytest.approx(300 * 0.02)  # encode, decode, round trip
    text = translation.estimate_text({}, faithful, device.device_info(GPU, force_cpu=True, cpu_count=2), 1, timing)
    assert "≈ 11 s on this CPU (2 cores)" in text and "measured: 20 ms per network call, 50 ms" in text
    assert "rough" not in text


def test_rough_estimate_before_torch_knows_slim_and_counts_the_round_trip():
    """Without a measurement (no PyTorch yet): GFLOP per call (torch.utils.flop_counter, as
    benchmarks/translate.py measures it) over an assumed throughput, labelled rough — for every preset and
    size the models come in, the new 64-px ``slim`` demo models included."""
    for preset in ("slim", "tiny", "small", "paper"):
        for size in (64, 128):
            assert translation.estimate_seconds({"preset": preset, "image_size": size},
                                                translation.panel_options("ddic", 50, "ddim", True)) is not None
    slim = {"preset": "slim", "image_size": 64}
    no_torch = device.device_info({"torch": None, "error": "No module named 'torch'"}, cpu_count=2)
    text = translation.estimate_text(slim, translation.panel_options("ddic", 100, "ddim", False), no_torch)
    assert "rough" in text and "this CPU (2 cores)" in text and "PyTorch is not installed yet" in text
    # tiny @ 64 px, N = 100, 2 cores, no round trip (BENCHMARKS.md, measured): DDIB 12.0 s, faithful DDIC 37.2 s
    tiny = {"preset": "tiny", "image_size": 64}
    options = dict(method="ddib", steps=100, device="cpu", round_trip_check=False)
    ddib = translation.estimate_seconds(tiny, TranslateOptions(**options), cpu_count=2)
    ddic = translation.estimate_seconds(tiny, TranslateOptions(**{**options, "method": "ddic"}), cpu_count=2)
    assert not ddib.measured and 6.0 <= ddib.seconds <= 24.0 and 18.0 <= ddic.seconds <= 75.0
    checked = translation.estimate_seconds(tiny, TranslateOptions(**{**options, "round_trip_check": True}),
                                           cpu_count=2)
    assert checked.seconds == pytest.approx(1.5 * ddib.seconds)  # DDIB 2N → 3N with the trust number
    assert translation.estimate_seconds(tiny, translation.panel_options("ddic", 100, "ddim", False), gpu=True
                                        ).seconds < ddib.seconds
    assert translation.estimate_seconds({"preset": "tiny", "image_size": 96},
                                        TranslateOptions(**options), cpu_count=2).seconds == pytest.approx(
        ddib.seconds * (96 / 64) ** 2, rel=0.01)


def test_probe_times_the_model_on_the_device_a_run_would_use(random_models):
    """One batch-1 forward and one forward + input-gradient backward, a few repetitions within a budget."""
    timing = device.time_network(random_models[0], "cpu", repeats=2, budget_s=0.5)
    assert timing["device_kind"] == "cpu" and timing["batch"] == 1 and timing["image_size"] == 32
    assert 0 < timing["forward_s"] and 0 < timing["forward_backward_s"] and 1 <= min(timing["repeats"])
    assert device.probe_command("py", "/m/us", cpu=True) == ["py", "-m", "DDICSlicerLib.device", "--model", "/m/us",
                                                            "--cpu"]


@pytest.mark.parametrize("probed,expected", [
    (None, "Looking for a GPU"),
    ({"torch": None, "error": "No module named 'torch'"}, "PyTorch is not installed yet"),
    ({"torch": "2.6.0+cpu", "cuda_build": None, "cuda": False, "mps": False}, "CPU-only build"),
    ({"torch": "2.6.0", "cuda_build": "12.4", "cuda": False, "mps": False}, "No CUDA GPU found"),
    ({"torch": "2.6.0", "cuda_build": None, "cuda": False, "mps": True}, "Apple GPU"),
    ({"torch": "2.6.0", "cuda_build": "12.4", "cuda": False, "cuda_error": "RuntimeError: driver too old"},
     "driver too old"),
    ({**GPU, "free_bytes": device.GIB // 2}, "Only 0.5 GB of GPU memory is free"),
])
def test_device_notes_say_what_was_found(probed, expected):
    info = device.device_info(probed, cpu_count=4)
    assert expected in info.note
    assert info.kind == ("cuda" if probed and probed.get("cuda") else "cpu")


def test_device_probe_runs_in_its_own_process(random_models):
    env = translation.engine_environment(REPO / "DDICSlicer")
    env.update(OMP_NUM_THREADS="1")
    out = subprocess.run(device.probe_command(sys.executable, str(random_models[0]), cpu=True), capture_output=True,
                         text=True, env=env, check=True, timeout=300).stdout
    event = process.parse_line(out.strip().splitlines()[-1])
    assert event["event"] == "done" and event["device"]["torch"] is not None
    assert isinstance(event["device"]["cuda"], bool)
    info = device.device_info(event["device"])
    assert info.kind in ("cuda", "cpu") and info.label()
    timing = event["timing"]  # the model, timed on the CPU as Force CPU asks
    assert timing["device_kind"] == "cpu" and timing["forward_s"] > 0 and timing["forward_backward_s"] > 0


def test_catalog_reads_manifest_and_card_once():
    """updateButtons asks for the estimate on every parameter change: nothing is reread."""
    calls = {"load": 0, "resolve": 0, "card": 0}

    def load():
        calls["load"] += 1
        return {}

    def resolve(spec):
        calls["resolve"] += 1
        if spec == "missing":
            raise FileNotFoundError(spec)
        return f"/models/{spec}"

    def read_card(path):
        calls["card"] += 1
        return dict(CARD)

    catalog = models.Catalog(load=load, resolve_spec=resolve, read_card=read_card)
    for _ in range(5):
        assert catalog.card("ddic-demo-us") == CARD and catalog.card("missing") is None
        catalog.manifest()
    assert calls == {"load": 1, "resolve": 2, "card": 1}
    catalog.refresh()
    catalog.card("ddic-demo-us")
    assert calls["card"] == 2


# --- dependencies -----------------------------------------------------------------------------------------

def test_dependency_needs_per_purpose():
    present = {"torch": "2.1.0", "diffusers": "0.31", "safetensors": "0.4.5", "tqdm": "4.66", "torchvision": "0.16"}

    def find(name):
        return object() if name in present else None

    def version(name):
        return present.get(name)

    assert dependencies.problems("classical", find, version) == []  # the classical backend needs nothing
    assert dependencies.problems("translation", find, version) == ["torch>=2.4 (found 2.1.0)"]
    assert dependencies.problems("sam", find, version) == [
        "torch>=2.4 (found 2.1.0)", "torchvision>=0.19 (found 0.16)", "segment-anything>=1.0"]
    present.update(torch="2.6.0+cu124", torchvision="0.21.0")
    assert dependencies.problems("translation", find, version) == []
    assert dependencies.version_at_least("2.6.0+cu124", "2.4") and not dependencies.version_at_least("x", "2.4")
    assert dependencies.installed_by_panel("sam") == {"torch", "torchvision", "segment_anything"}
    assert dependencies.installed_by_panel("classical") == frozenset()


def test_pip_and_light_the_torch_failures_are_reported_as_what_they_are():
    proxy = subprocess.CalledProcessError(1, ["pip"], output="Collecting diffusers\n",
                                          stderr="ProxyError('Cannot connect to proxy.')\nERROR: No matching")
    error = dependencies.tool_failure("pip", proxy, "diffusers>=0.30")
    assert str(error).startswith("pip could not install diffusers>=0.30 (exit status 1).")
    assert "HTTPS_PROXY" in str(error) and "Cannot connect to proxy" in error.details
    ltt = subprocess.CalledProcessError(2, ["ltt"], stderr="ERROR: Could not find a version that satisfies torch>=2.4")
    error = dependencies.tool_failure("light-the-torch (PyTorch extension)", ltt, "PyTorch")
    assert "light-the-torch" in str(error) and "exit status 2" in str(error) and "No suitable package" in str(error)
    assert not error.restart_required


# --- cancel: a message on stdin, the same on every OS ----------------------------------------------------

def test_cancel_is_a_message_not_a_signal(tmp_path, monkeypatch):
    """Windows soft cancel: no SIGTERM exists for a process group there, so cancel must not rely on one.
    With a grace period far longer than the test, only the soft path can end the process (exit 130)."""
    script = tmp_path / "child.py"
    script.write_text(
        "import json, sys, time\n"
        "from ddic.cli.watchdog import start_watchdog\n"
        "start_watchdog(None, grace_s=600)\n"
        "print(json.dumps({'event': 'progress', 'done': 1, 'total': 9, 'message': 'step'}), flush=True)\n"
        "try:\n    time.sleep(600)\nexcept KeyboardInterrupt:\n    sys.exit(130)\n")
    kills = []
    monkeypatch.setattr(process, "kill_process_tree", lambda proc, hard=False: kills.append(hard))
    proc = process.WorkerProcess([sys.executable, str(script)], env=translation.engine_environment(REPO / "DDICSlicer"),
                                 grace_s=600)
    proc.start()
    deadline = time.monotonic() + 120
    while proc.poll() == process.RUNNING and proc.progress[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.cancel()
    assert kills == [], "cancel must not signal or kill the tree"
    assert proc.wait(timeout=120) == process.CANCELLED
    assert proc.result.returncode == 130
    proc.cleanup()


@pytest.mark.slow
def test_real_translation_stops_when_its_stdin_closes(tmp_path, random_models):
    """Slicer crashed: its end of the pipe closes; the translation process must not keep running."""
    frame = tmp_path / "f.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray((np.random.default_rng(1).random((24, 24)) * 99).astype(np.float32)),
                    str(frame))
    us, mri = random_models
    job = translation.TranslationJob(frames=[frame], us_model=str(us), mri_model=str(mri),
                                     out_dir=str(tmp_path / "out"),
                                     options=translation.panel_options("ddic", 1000, "ddim", True),
                                     placement=PlacementOptions(mode="square"), options_path=tmp_path / "o.json",
                                     watch_parent=os.getpid())
    env = {**translation.engine_environment(REPO / "DDICSlicer", force_cpu=True), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(job.command(sys.executable), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in child.stdout:  # wait until the steps run
            if '"progress"' in line:
                break
        child.stdin.close()
        assert child.wait(timeout=120) == 130
    finally:
        if child.poll() is None:
            child.kill()
    assert not (tmp_path / "out" / "f_pseudo_mri.nrrd").exists()


# --- the dependency step inside Slicer (stand-ins for slicer, PyTorchUtils and pip) -----------------------

@pytest.fixture
def fake_slicer(monkeypatch):
    import types

    import slicer_stand_ins as si

    slicer = si.install(monkeypatch)
    slicer.app = types.SimpleNamespace(testingEnabled=lambda: False)
    slicer.util.asked = []
    slicer.util.confirmOkCancelDisplay = lambda text, **kw: slicer.util.asked.append(text) or True
    packaging = types.ModuleType("slicer.packaging")
    packaging.installed = []
    packaging.pip_install = lambda reqs, **kw: packaging.installed.append(list(reqs))
    slicer.packaging = packaging
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    torch_utils = types.ModuleType("PyTorchUtils")
    torch_utils.calls = []

    class Logic:
        def installTorch(self, askConfirmation=False, torchVersionRequirement=None, torchvisionVersionRequirement=None):
            torch_utils.calls.append((torchVersionRequirement, torchvisionVersionRequirement))
            return types.SimpleNamespace(__version__="2.6.0")

    torch_utils.PyTorchUtilsLogic = Logic
    monkeypatch.setitem(sys.modules, "PyTorchUtils", torch_utils)
    return SimpleNamespace(slicer=slicer, packaging=packaging, torch_utils=torch_utils)


def test_setup_installs_what_is_missing_once_asked(fake_slicer, monkeypatch):
    state = iter([["torch>=2.4", "diffusers>=0.30"], []])
    monkeypatch.setattr(dependencies, "problems", lambda purpose, *a: next(state))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert dependencies.setup_dependencies("translation") is True
    assert len(fake_slicer.slicer.util.asked) == 1 and "torch>=2.4" in fake_slicer.slicer.util.asked[0]
    assert fake_slicer.torch_utils.calls == [(">=2.4", None)]
    assert fake_slicer.packaging.installed == [["diffusers>=0.30"]]


def test_replacing_a_loaded_torch_asks_for_a_restart(fake_slicer, monkeypatch):
    state = iter([["torch>=2.4 (found 2.1.0)"], []])
    monkeypatch.setattr(dependencies, "problems", lambda purpose, *a: next(state))
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(__version__="2.1.0"))
    with pytest.raises(dependencies.DependencyError, match="Restart Slicer") as info:
        dependencies.setup_dependencies("translation")
    assert info.value.restart_required


def test_pip_failure_reaches_the_user_as_pip_failure(fake_slicer, monkeypatch):
    def pip_install(reqs, **kw):
        raise subprocess.CalledProcessError(1, ["pip"], stderr="ERROR: Could not find a version that satisfies "
                                                               "the requirement segment-anything>=1.0")

    fake_slicer.packaging.pip_install = pip_install
    monkeypatch.setattr(dependencies, "problems", lambda purpose, *a: ["segment-anything>=1.0"])
    with pytest.raises(dependencies.DependencyError) as info:
        dependencies.setup_dependencies("sam")
    assert str(info.value).startswith("pip could not install segment-anything>=1.0 (exit status 1)")
    assert "Could not find a version" in info.value.details and not info.value.restart_required
    assert fake_slicer.torch_utils.calls == []  # torch was fine: not reinstalled


def test_declining_installs_nothing(fake_slicer, monkeypatch):
    fake_slicer.slicer.util.confirmOkCancelDisplay = lambda text, **kw: False
    monkeypatch.setattr(dependencies, "problems", lambda purpose, *a: ["torch>=2.4"])
    assert dependencies.setup_dependencies("translation") is False
    assert fake_slicer.torch_utils.calls == [] and fake_slicer.packaging.installed == []


# --- what the panel does with these (DDICSlicer.py, read as source) -----------------------------------------

def panel_function(class_name: str, name: str):
    import ast

    tree = ast.parse((REPO / "DDICSlicer" / "DDICSlicer.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_segment_asks_for_packages_only_when_sam_will_be_tried():
    """The classical backend needs only what Slicer bundles: Segment must not force the PyTorch install."""
    import ast

    method = panel_function("DDICSlicerWidget", "onSegment")
    for node in ast.walk(method):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("ensureDependencies", "setup_dependencies")):
            assert ast.unparse(node.args[0]) == "'sam'", ast.unparse(node)
    guards = [n for n in ast.walk(method) if isinstance(n, ast.If) and "wantsSam" in ast.unparse(n.test)]
    assert guards and "ensureDependencies('sam')" in ast.unparse(guards[0].test)


def test_estimate_reads_nothing_per_parameter_change_and_the_job_watches_slicer():
    import ast

    estimate = ast.unparse(panel_function("DDICSlicerLogic", "estimateText"))
    assert "self.catalog.card(" in estimate
    assert "resolve(" not in estimate and "read_model_card" not in estimate
    start = ast.unparse(panel_function("DDICSlicerLogic", "startTranslation"))
    assert "watch_parent=os.getpid()" in start and "panel_options(" in start and "panel_placement(" in start
    enter = ast.unparse(panel_function("DDICSlicerWidget", "enter"))
    assert "startDeviceProbe(p=self._parameterNode)" in enter  # the device is found up front, and timed
    buttons = ast.unparse(panel_function("DDICSlicerWidget", "updateButtons"))
    assert "requestTiming(p)" in buttons  # another model or Force CPU: measured once in the background
