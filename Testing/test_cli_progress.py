"""``ddic translate --progress-format json``: the protocol the Slicer module's background process speaks.

In-process tests check the events of every ending (done, input/model error, out of memory, crash); three
subprocess tests run the real command through ``DDICSlicerLib.process.WorkerProcess`` — the class the
Slicer panel uses — behind a shell, so the process tree looks like Slicer's (``PythonSlicer`` launcher →
``python-real``): progress lines parse, cancel ends the whole tree and leaves no partial output, and a
forced out-of-memory failure comes back as a readable error with exit code 3.

Out of memory is simulated by a monkeypatch (in-process) or a two-line driver script that patches the
translator before calling the CLI (subprocess); the engine has no test hook of its own.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from ddic.cli.common import EXIT_OUT_OF_MEMORY, error_type, is_out_of_memory
from ddic.cli.main import main
from ddic.errors import DDICInputError, DDICModelError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "DDICSlicer"))  # DDICSlicerLib.process is plain Python

from DDICSlicerLib import process as worker
from DDICSlicerLib import translation


@pytest.fixture
def frame(tmp_path) -> Path:
    path = tmp_path / "frames" / "us.png"
    path.parent.mkdir()
    pixels = (np.random.default_rng(0).random((27, 40)) * 255).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


def translate_args(frame, models, out, steps=3, *extra):
    us, mri = models
    return ["translate", str(frame), "--us-model", str(us), "--mri-model", str(mri), "--out", str(out),
            "--steps", str(steps), "--cpu", "--geometry", "square", "--progress-format", "json", *extra]


def events_of(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every stdout line must be one JSON object


def test_json_lines_progress_and_done(frame, random_models, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(translate_args(frame, random_models, out, 4)) == 0
    captured = capsys.readouterr()
    events = events_of(captured.out)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds) == {"start", "progress", "done"}
    assert events[0]["frames"] == 1 and events[0]["device"] == "cpu" and events[0]["steps"] == 4
    progress = [e for e in events if e["event"] == "progress"]
    done_values = [e["done"] for e in progress]
    assert done_values == sorted(done_values) and progress[-1]["done"] == progress[-1]["total"] > 0
    assert all(isinstance(e["message"], str) for e in progress)
    outputs = events[-1]["outputs"]
    assert outputs == [str(out / "us_pseudo_mri.png")] and Path(outputs[0]).is_file()
    assert Path(events[-1]["report"]).is_file() and "1 frame(s) translated" in events[-1]["message"]
    assert "translated" not in captured.err  # the summary is in the done event, stdout is only JSON


@pytest.mark.parametrize("threshold", [1e-6, 10.0], ids=["flagged", "trusted"])
def test_done_event_carries_each_frames_trust_number(frame, random_models, tmp_path, capsys, monkeypatch, threshold):
    """The panel logs each frame's US round trip and marks an untrusted pseudo-MRI: the done event carries
    the number, the threshold and the verdict for every output, as translate.json records them."""
    import ddic.translate.engine as engine

    monkeypatch.setattr(engine, "round_trip_threshold", lambda card, solver, steps: (threshold, "test"))
    out = tmp_path / "out"
    assert main(translate_args(frame, random_models, out, 3)) == 0
    done = events_of(capsys.readouterr().out)[-1]
    (summary,) = done["frames"]
    record = json.loads((out / "translate.json").read_text())["frames"][0]
    assert summary["pseudo_mri"] == done["outputs"][0] and summary["trust_threshold"] == threshold
    assert summary["us_round_trip_rmse"] == record["us_round_trip_rmse"] > 0.0
    assert summary["trusted"] is record["trusted"] is (threshold == 10.0)
    assert "orientation_source" in summary  # a square-fit frame has no head orientation: None


def test_input_and_model_errors_are_typed_events(frame, random_models, tmp_path, capsys):
    us, mri = random_models
    assert main(translate_args(tmp_path / "missing.png", random_models, tmp_path / "o")) == 2
    error = events_of(capsys.readouterr().out)[-1]
    assert error["event"] == "error" and error["type"] == "input" and "not found" in error["message"]
    assert main(translate_args(frame, (mri, us), tmp_path / "o")) == 2
    error = events_of(capsys.readouterr().out)[-1]
    assert error["type"] == "model" and "swapped" in error["message"]


def test_out_of_memory_exits_3_with_advice_and_no_output(frame, random_models, tmp_path, capsys, monkeypatch):
    from ddic.translate import engine

    def out_of_memory(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine.Translator, "translate", out_of_memory)
    out = tmp_path / "out"
    assert main(translate_args(frame, random_models, out)) == EXIT_OUT_OF_MEMORY
    captured = capsys.readouterr()
    error = events_of(captured.out)[-1]
    assert error == {"event": "error", "type": "oom", "message": error["message"]}
    assert "CPU" in error["message"] and "2.00 GiB" in error["message"] and "Out of memory" in captured.err
    assert not list(out.glob("*pseudo_mri*"))


def test_crash_is_an_internal_error_event_with_a_traceback(frame, random_models, tmp_path, capsys, monkeypatch):
    from ddic.translate import engine

    def crash(self, *args, **kwargs):
        raise ValueError("broken tensor shape")

    monkeypatch.setattr(engine.Translator, "translate", crash)
    with pytest.raises(ValueError, match="broken tensor shape"):  # main keeps the traceback of bugs
        main(translate_args(frame, random_models, tmp_path / "out"))
    error = events_of(capsys.readouterr().out)[-1]
    assert error == {"event": "error", "type": "internal", "message": "ValueError: broken tensor shape"}


def test_error_classification():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x")) and is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert [error_type(e) for e in (DDICInputError("a"), DDICModelError("b"), KeyError("c"))] == \
        ["input", "model", "internal"]


def test_bar_format_keeps_stdout_human(frame, random_models, tmp_path, capsys):
    args = translate_args(frame, random_models, tmp_path / "out")
    args[args.index("json")] = "bar"
    assert main(args) == 0
    assert "1 frame(s) translated" in capsys.readouterr().out


# --- the real process tree, through the GUI's WorkerProcess -----------------------------------------------

def engine_env() -> dict:
    """The environment the panel gives its workers (DDICSlicerLib.translation.engine_environment)."""
    env = translation.engine_environment(REPO / "DDICSlicer", force_cpu=True)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def panel_command(frame, models, out, steps) -> list[str]:
    """The exact command line the panel builds (DDICSlicerLib.translation.TranslationJob), watching this pid."""
    from ddic.translate.placement import PlacementOptions

    us, mri = models
    job = translation.TranslationJob(frames=[frame], us_model=str(us), mri_model=str(mri), out_dir=str(out),
                                     options=translation.panel_options("ddic", steps, "ddim", True),
                                     placement=PlacementOptions(mode="square"),
                                     options_path=Path(out).parent / "options.json", watch_parent=os.getpid())
    return job.command(sys.executable)


def behind_launcher(argv: list[str]) -> list[str]:
    """Run ``argv`` as a child of a shell that stays alive, like ``PythonSlicer`` → ``python-real``."""
    import shlex

    return ["/bin/sh", "-c", " ".join(shlex.quote(a) for a in argv) + "; exit $?"]


def live_group_members(pgid: int) -> list[int]:
    """Processes of a process group that are not zombies (read from /proc: zombies may wait for a reaper)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


posix_only = pytest.mark.skipif(os.name != "posix" or not Path("/proc").is_dir(), reason="process groups via /proc")


@pytest.mark.slow
@posix_only
def test_worker_process_runs_translate_and_parses_events(frame, random_models, tmp_path):
    job = tmp_path / "job"
    seen = []
    proc = worker.WorkerProcess(behind_launcher(panel_command(frame, random_models, job / "out", 3)),
                                env=engine_env(), temp_dir=job, on_event=seen.append)
    proc.start()
    assert proc.wait(timeout=120) == worker.SUCCEEDED, proc.log.text
    assert proc.result.returncode == 0 and proc.fraction == 1.0
    assert seen[0]["event"] == "start" and seen[-1]["event"] == "done"
    assert Path(proc.result.outputs[0]).is_file() and "translated" in proc.result.message()
    proc.cleanup()
    assert not job.exists()


@pytest.mark.slow
@posix_only
def test_cancel_ends_the_whole_tree_and_leaves_no_partial_output(frame, random_models, tmp_path):
    job = tmp_path / "job"
    out = job / "out"
    proc = worker.WorkerProcess(behind_launcher(panel_command(frame, random_models, out, 1000)),
                                env=engine_env(), temp_dir=job, grace_s=10.0)
    proc.start()
    pgid = proc.process.pid
    while proc.poll() == worker.RUNNING and proc.progress[0] == 0:  # mid-run: the steps have started
        assert proc.elapsed_s < 120, proc.log.text
        time.sleep(0.05)
    assert proc.state == worker.RUNNING and proc.progress[1] > proc.progress[0] > 0
    assert len(live_group_members(pgid)) >= 2  # launcher + worker
    proc.cancel()
    assert proc.wait(timeout=60) == worker.CANCELLED
    assert live_group_members(pgid) == []
    assert proc.result.returncode != 0 and "Cancelled" in proc.result.message()
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [n for n in leftovers if "pseudo_mri" in n or "partial" in n or n.endswith(".png")], leftovers
    proc.cleanup()
    assert not job.exists()


@pytest.mark.slow
@posix_only
def test_forced_out_of_memory_comes_back_readable(frame, random_models, tmp_path):
    driver = tmp_path / "oom_driver.py"
    driver.write_text(textwrap.dedent("""
        # test-only: make the translator fail as a CUDA allocation would, then run the real CLI
        import sys, torch
        from ddic.translate import engine
        def out_of_memory(self, *args, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        engine.Translator.translate = out_of_memory
        from ddic.cli.main import main
        sys.exit(main(sys.argv[1:]))
    """))
    proc = worker.WorkerProcess(behind_launcher([sys.executable, str(driver), *translate_args(
        frame, random_models, tmp_path / "out")]), env=engine_env())
    proc.start()
    assert proc.wait(timeout=120) == worker.FAILED
    result = proc.result
    assert result.returncode == EXIT_OUT_OF_MEMORY and result.out_of_memory
    assert result.message().startswith("Out of memory on cpu") and "4.00 GiB" in result.message()
    assert "Traceback" not in proc.log.text  # an expected failure, not a bug


def test_worker_process_reports_a_crash_readably(tmp_path):
    """No engine needed: a worker that dies mid-run without an error event still yields a clear message."""
    script = tmp_path / "crash.py"
    script.write_text('import json\nprint(json.dumps({"event": "progress", "done": 1, "total": 4, '
                      '"message": "step"}))\nprint("a warning line")\nraise SystemExit(7)\n')
    lines = []
    proc = worker.WorkerProcess([sys.executable, str(script)], on_log=lines.append)
    proc.start()
    assert proc.wait(timeout=30) == worker.FAILED
    assert proc.result.returncode == 7 and proc.progress == (1, 4, "step") and proc.fraction == 0.25
    assert "exit code 7" in proc.result.message() and lines == ["a warning line"]


def test_capped_log_keeps_the_newest_lines():
    log = worker.CappedLog(limit=50)
    for i in range(100):
        log.append(f"line {i:03d}")
    assert log.text.endswith("line 099") and len(log.text) <= 50 and "line 000" not in log.text
    assert worker.parse_line('{"event": "done", "outputs": []}') == {"event": "done", "outputs": []}
    assert worker.parse_line("not json") is None and worker.parse_line('{"no_event": 1}') is None


# --- the persistent segmentation worker, through the GUI's WorkerClient ----------------------------------

def test_segmentation_worker_client_round_trip(tmp_path):
    """hello → load (classical, no download) → set_image → predict; replies matched by id; clean stop."""
    from DDICSlicerLib.workerclient import PROTOCOL_VERSION, WorkerClient

    pixels = np.full((60, 80), 200, np.uint8)
    pixels[20:40, 30:55] = 30  # a dark 20 × 25 "ventricle"
    image = sitk.GetImageFromArray(pixels)
    image.SetSpacing((0.5, 0.5))
    sitk.WriteImage(image, str(tmp_path / "frame.nrrd"))
    client = WorkerClient([sys.executable, "-m", "ddic.worker"], env=engine_env())
    client.start()
    replies = {}
    client.request("load", lambda r: replies.setdefault("load", r), backend="classical")
    client.request("set_image", lambda r: replies.setdefault("set_image", r), path=str(tmp_path / "frame.nrrd"))
    client.request("predict", lambda r: replies.setdefault("predict", r), points=[[40, 30, 1]],
                   box=[28, 18, 57, 42], out=str(tmp_path / "mask.nrrd"))
    deadline = time.monotonic() + 120
    while len(replies) < 3 and time.monotonic() < deadline:
        client.poll()
        time.sleep(0.05)
    try:
        assert client.hello["protocol"] == PROTOCOL_VERSION
        assert all(r["ok"] for r in replies.values()), replies
        assert client.loaded == {"backend": "classical"} and client.image_path == str(tmp_path / "frame.nrrd")
        mask = sitk.GetArrayFromImage(sitk.ReadImage(replies["predict"]["result"]["out"])) > 0
        assert mask.shape == (60, 80) and mask[30, 40] and not mask[5, 5]
        assert 300 <= int(mask.sum()) <= 600  # the 500-pixel dark rectangle, give or take its border
        client.request("set_image", lambda r: replies.setdefault("missing", r), path=str(tmp_path / "nope.nrrd"))
        while "missing" not in replies and time.monotonic() < deadline:
            client.poll()
            time.sleep(0.05)
        assert replies["missing"]["ok"] is False and "nope.nrrd" in replies["missing"]["error"]
    finally:
        client.stop()
    assert not client.running


def test_worker_client_fails_pending_requests_when_the_worker_dies(tmp_path):
    from DDICSlicerLib.workerclient import WorkerClient

    script = tmp_path / "dies.py"
    script.write_text("import sys\nsys.stdin.readline()\nprint('fatal: out of cheese', file=sys.stderr)\nsys.exit(9)\n")
    client = WorkerClient([sys.executable, str(script)])
    replies = []
    client.start()  # sends hello, which the script reads and dies on
    client._pending[client._next_id] = (client._pending[client._next_id][0], replies.append)
    deadline = time.monotonic() + 30
    while not replies and time.monotonic() < deadline:
        client.poll()
        time.sleep(0.05)
    client.stop()
    assert replies and replies[0]["ok"] is False and "stopped unexpectedly" in replies[0]["error"]
    assert "out of cheese" in replies[0]["error"]
