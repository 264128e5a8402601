"""ddic.worker: the JSON-lines protocol, end to end as a subprocess and in-process.

The subprocess tests run ``python -m ddic.worker`` exactly as the Slicer module will: requests on
stdin, one response line per request on stdout, logs on stderr; the worker must survive bad input and
exit when its stdin closes (including when its parent dies).
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from ddic.worker.protocol import encode
from ddic.worker.server import DEFAULT_OPS, Worker

TIMEOUT = 60.0  # generous: the CI machine is shared; no test asserts on time


def worker_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("DDIC_SAM_CHECKPOINT", None)
    return env


class WorkerProcess:
    """A worker subprocess with line-oriented, timeout-guarded request/response helpers."""

    def __init__(self, args=("-m", "ddic.worker")):
        self.proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=worker_env())
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, sink):
        for line in stream:
            sink(line)

    def send(self, message) -> None:
        self.proc.stdin.write(message if isinstance(message, str) else json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no response within {TIMEOUT} s; stderr:\n{''.join(self.stderr)}") from None
        return json.loads(line)  # every stdout line must be JSON

    def request(self, message) -> dict:
        self.send(message)
        return self.read()

    def wait(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def worker():
    w = WorkerProcess()
    yield w
    w.close()


def write_frame(path, rng):
    """A speckled bright ellipse (x centre 70, y centre 40) as NRRD with non-trivial geometry."""
    import SimpleITK as sitk

    yy, xx = np.mgrid[0:96, 0:128]
    truth = ((xx - 70) / 22.0) ** 2 + ((yy - 40) / 12.0) ** 2 <= 1
    image = np.where(truth, 170.0, 70.0) * rng.gamma(6.0, 1 / 6.0, truth.shape)
    sitk_image = sitk.GetImageFromArray(np.clip(image, 0, 255).astype(np.float32))
    sitk_image.SetSpacing((0.25, 0.5))
    sitk_image.SetOrigin((-3.0, 7.0))
    sitk.WriteImage(sitk_image, str(path))
    return truth


def test_worker_hello_reports_versions_and_device(worker):
    hello = worker.request({"id": "h", "op": "hello"})
    assert hello["ok"] and hello["id"] == "h"
    for key in ("ddic", "torch", "numpy", "SimpleITK", "segment_anything", "device"):
        assert key in hello["result"]
    assert hello["result"]["device"] in ("cpu", "cuda") and hello["result"]["pid"] == worker.proc.pid
    assert {"hello", "load", "set_image", "predict", "shutdown"} <= set(hello["result"]["ops"])
    worker.proc.stdin.close()
    assert worker.wait() == 0


def test_worker_serves_a_segmentation_session_and_survives_bad_requests(worker, tmp_path):
    import SimpleITK as sitk

    truth = write_frame(tmp_path / "frame.nrrd", np.random.default_rng(3))
    early = worker.request({"id": 1, "op": "set_image", "path": str(tmp_path / "frame.nrrd")})
    assert not early["ok"] and early["type"] == "RequestError" and "load" in early["error"]
    loaded = worker.request({"id": 2, "op": "load", "backend": "classical"})
    assert loaded["ok"] and loaded["result"]["backend"] == "classical"
    image = worker.request({"id": 3, "op": "set_image", "path": str(tmp_path / "frame.nrrd")})
    assert image["ok"] and image["result"]["shape"] == [96, 128] and "embedding_seconds" in image["result"]

    out = tmp_path / "masks" / "mask.nrrd"
    predicted = worker.request({"id": 4, "op": "predict", "points": [[70, 40]], "labels": [1],
                                "box": [45, 25, 95, 55], "out": str(out)})
    assert predicted["ok"], predicted
    assert predicted["result"]["out"] == str(out) and 0 <= predicted["result"]["score"] <= 1
    mask_image = sitk.ReadImage(str(out))
    assert mask_image.GetSpacing() == pytest.approx((0.25, 0.5)) and mask_image.GetOrigin() == pytest.approx((-3, 7))
    mask = sitk.GetArrayFromImage(mask_image) > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.9
    assert not [p for p in (tmp_path / "masks").iterdir() if p.name != "mask.nrrd"]  # no temp file left

    malformed = worker.request("{this is not json\n")
    assert malformed == {"id": None, "ok": False, "error": malformed["error"], "type": "RequestError"}
    assert worker.request("[1, 2]\n")["type"] == "RequestError"
    unknown = worker.request({"id": 5, "op": "dance"})
    assert not unknown["ok"] and unknown["id"] == 5 and "dance" in unknown["error"]
    bad_args = worker.request({"id": 6, "op": "predict", "points": "70,40", "out": str(out)})
    assert not bad_args["ok"] and bad_args["type"] == "RequestError" and "points" in bad_args["error"]
    outside = worker.request({"id": 7, "op": "predict", "points": [[500, 40, 1]], "out": str(out)})
    assert not outside["ok"] and outside["type"] == "DDICInputError" and "outside" in outside["error"]
    missing = worker.request({"id": 8, "op": "set_image", "path": str(tmp_path / "nope.png")})
    assert not missing["ok"] and missing["type"] == "DDICInputError"

    png = tmp_path / "mask.png"
    again = worker.request({"id": 9, "op": "predict", "points": [[70, 40, 1]], "out": str(png)})
    assert again["ok"] and set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(png))))) == {0, 255}
    bye = worker.request({"id": 10, "op": "shutdown"})
    assert bye["ok"] and bye["id"] == 10
    assert worker.wait() == 0
    assert any("ready" in line for line in worker.stderr)  # logs went to stderr


def test_worker_exits_cleanly_when_stdin_closes(worker):
    assert worker.request({"id": 1, "op": "load", "backend": "classical"})["ok"]
    worker.proc.stdin.close()
    assert worker.wait() == 0


def test_worker_exits_when_its_parent_is_killed(tmp_path):
    parent_code = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-m", "ddic.worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        child.stdin.write('{"id": 1, "op": "load", "backend": "classical"}\\n')
        child.stdin.flush()
        assert '"ok": true' in child.stdout.readline()  # the worker is up and serving
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              env=worker_env())
    try:
        child_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and _alive(child_pid):
            time.sleep(0.1)
        assert not _alive(child_pid), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            state = next(line for line in handle if line.startswith("State:"))
        return "Z" not in state.split()[1]  # a zombie has exited
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False


def test_stray_prints_go_to_stderr_not_into_the_protocol():
    code = textwrap.dedent("""
        import os, sys
        from ddic.worker import server
        def noisy(session, request):
            print("python noise")
            os.write(1, b"C-level noise\\n")
            return {"quiet": True}
        server.DEFAULT_OPS["noisy"] = noisy
        from ddic.worker.__main__ import main
        sys.exit(main())
    """)
    w = WorkerProcess(args=("-c", code))
    try:
        response = w.request({"id": 1, "op": "noisy"})
        assert response == {"id": 1, "ok": True, "op": "noisy", "result": {"quiet": True}}
        w.proc.stdin.close()
        assert w.wait() == 0
        time.sleep(0.2)
        assert w.lines.empty()  # nothing but the one response on stdout
        assert "python noise" in "".join(w.stderr) and "C-level noise" in "".join(w.stderr)
    finally:
        w.close()


# ---- in-process ----------------------------------------------------------------------------------


def run_lines(worker: Worker, *requests) -> list[dict]:
    out = io.StringIO()
    worker.serve(io.StringIO("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in requests)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_ops_are_a_dict_so_translate_can_be_added_and_bugs_are_reported_not_fatal():
    worker = Worker()
    assert set(DEFAULT_OPS) <= set(worker.ops) and callable(worker.ops["predict"])

    def translate(session, request):
        for step in range(2):
            session.progress(step + 1, 2, "step")
        return {"echo": request["text"]}

    def broken(session, request):
        raise ZeroDivisionError("division by zero")

    worker.register("translate", translate)
    worker.register("broken", broken)
    lines = run_lines(worker, {"id": 1, "op": "broken"}, "\n", {"id": 2, "op": "translate", "text": "hi"},
                      {"id": 3, "op": "predict", "points": [[1, 1]], "out": "x.png"}, {"id": 4, "op": "shutdown"},
                      {"id": 5, "op": "hello"})
    assert lines[0]["id"] == 1 and not lines[0]["ok"] and lines[0]["unexpected"] is True
    assert lines[0]["type"] == "ZeroDivisionError" and "worker log" in lines[0]["error"]
    assert [line.get("progress", {}).get("done") for line in lines[1:3]] == [1, 2]
    assert "ok" not in lines[1] and lines[1]["id"] == 2
    assert lines[3] == {"id": 2, "ok": True, "op": "translate", "result": {"echo": "hi"}}
    assert lines[4]["id"] == 3 and not lines[4]["ok"] and "load" in lines[4]["error"]
    assert lines[5]["id"] == 4 and lines[5]["ok"]
    assert len(lines) == 6  # nothing served after shutdown


def test_responses_are_strict_json_lines():
    line = encode({"id": 1, "ok": True, "result": {"score": float("nan"), "all": [float("inf"), 0.5]}})
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line)["result"] == {"score": None, "all": [None, 0.5]}


# ---- faults (issue 13): every request gets an answer or the worker exits cleanly, never a hang ---------


def test_worker_refuses_huge_non_finite_and_unwritable_work_and_keeps_serving(worker, tmp_path):
    from faults_support import read_only_folder, write_huge_header, write_nan_nrrd

    assert worker.request({"id": 1, "op": "load", "backend": "classical"})["ok"]
    huge = worker.request({"id": 2, "op": "set_image", "path": str(write_huge_header(tmp_path / "huge.nrrd"))})
    assert not huge["ok"] and huge["type"] == "DDICInputError" and "declares a 100000 × 100000" in huge["error"]
    nan = worker.request({"id": 3, "op": "set_image", "path": str(write_nan_nrrd(tmp_path / "nan.nrrd"))})
    assert not nan["ok"] and "non-finite" in nan["error"]
    write_frame(tmp_path / "frame.nrrd", np.random.default_rng(3))
    assert worker.request({"id": 4, "op": "set_image", "path": str(tmp_path / "frame.nrrd")})["ok"]
    nothing = worker.request({"id": 5, "op": "predict", "points": [[2, 2]], "box": [0, 0, 6, 6],
                              "out": str(tmp_path / "empty.nrrd")})
    if not nothing["ok"]:  # a corner box may or may not hold a region; when none, it is an error, not a file
        assert "found no region" in nothing["error"] and not (tmp_path / "empty.nrrd").exists()
    with read_only_folder(tmp_path) as locked:
        denied = worker.request({"id": 6, "op": "predict", "points": [[70, 40]], "box": [45, 25, 95, 55],
                                 "out": str(locked / "mask.nrrd")})
        assert not denied["ok"] and denied["type"] == "DDICOutputError" and "unexpected" not in denied
        assert str(locked) in denied["error"]
    too_long = worker.request('{"id": 7, "op": "hello", "pad": "' + "x" * (2 << 20) + '"}\n')
    assert not too_long["ok"] and "longer than" in too_long["error"]
    assert worker.request({"id": 8, "op": "hello"})["ok"]  # still serving


def test_worker_answers_a_request_cut_off_by_the_end_of_input_and_exits(worker):
    worker.send('{"id": 1, "op": "hel')  # stdin closes in the middle of a request
    worker.proc.stdin.close()
    cut = worker.read()
    assert not cut["ok"] and cut["type"] == "RequestError" and "Malformed JSON" in cut["error"]
    assert worker.wait() == 0


def test_worker_exits_after_shutdown_without_reading_more(worker):
    worker.send(json.dumps({"id": 1, "op": "shutdown"}) + "\n" + json.dumps({"id": 2, "op": "hello"}) + "\n")
    assert worker.read() == {"id": 1, "ok": True, "op": "shutdown", "result": {"bye": True}}
    assert worker.wait() == 0
    time.sleep(0.2)
    assert worker.lines.empty()  # the request after shutdown got no answer: the worker had gone
    with pytest.raises((BrokenPipeError, OSError)):
        for _ in range(64):  # a client writing to a worker that is gone gets an error, not a hang
            worker.send(json.dumps({"id": 3, "op": "hello"}) + "\n")
