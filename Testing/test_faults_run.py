"""Faults while ``ddic translate`` runs (issue 13): killed half-way, disk full, two runs into one folder,
no network. Each test fails on the broken variant it names (results recorded only at the end, writes
that are not atomic, no lock, a network call)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from faults_support import ddic_env, enospc_writer, run_ddic, tiny_filesystem, visible_files

from ddic.cli.main import main
from ddic.io.lock import LOCK_NAME, FolderLock

TIMEOUT = 300.0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_frames(folder: Path, n: int, size: int = 32, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"f{i}.nrrd"
        sitk.WriteImage(sitk.GetImageFromArray((rng.random((size, size)) * 255).astype(np.float32)), str(path))
        paths.append(path)
    return paths


def translate_cmd(frames: Path, out: Path, models, steps: int = 2, *extra) -> list[str]:
    us, mri = models
    return ["translate", str(frames), "--us-model", str(us), "--mri-model", str(mri), "--out", str(out),
            "--steps", str(steps), "--cpu", "--geometry", "square", "--batch-size", "1", *extra]


def start_ddic(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ddic", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ddic_env())


def wait_for(condition, timeout: float = TIMEOUT, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(poll)


def recorded(out: Path) -> list[dict]:
    try:
        return json.loads((out / "translate.json").read_text())["frames"]
    except (OSError, ValueError, KeyError):
        return []


def assert_only_complete_frames(out: Path) -> list[dict]:
    """Every visible file is the report or an output of a recorded frame, whole and as recorded."""
    records = json.loads((out / "translate.json").read_text())["frames"]
    allowed = {"translate.json"}
    for r in records:
        for key in ("pseudo_mri", "preview"):
            path = Path(r[key])
            assert sha(path) == r[f"{key}_sha256"], f"{path} is not the file its record describes"
            sitk.ReadImage(str(path))  # and it reads back whole
            allowed.add(path.name)
    assert visible_files(out) <= allowed, visible_files(out) - allowed
    return records


@pytest.mark.slow
def test_killed_half_way_leaves_only_complete_frames_and_a_rerun_finishes_the_rest(tmp_path, random_models):
    frames = tmp_path / "frames"
    write_frames(frames, 6)
    out = tmp_path / "out"
    proc = start_ddic(translate_cmd(frames, out, random_models, steps=40))
    try:
        wait_for(lambda: len(recorded(out)) >= 2 or proc.poll() is not None)
        assert proc.poll() is None, "the run ended before it could be killed half-way: use more steps"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = assert_only_complete_frames(out)
    assert 2 <= len(records) < 6
    kept = {r["pseudo_mri"]: (os.stat(r["pseudo_mri"]).st_mtime_ns, os.stat(r["pseudo_mri"]).st_ino)
            for r in records}
    assert json.loads((out / "translate.json").read_text())["status"] == "running"

    done = run_ddic(translate_cmd(frames, out, random_models, steps=40), timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming: {len(records)} of 6 frame(s) already complete" in done.stderr
    final = assert_only_complete_frames(out)
    assert sorted(Path(r["frame"]).name for r in final) == [f"f{i}.nrrd" for i in range(6)]
    for path, stamp in kept.items():  # the complete frames were not touched
        assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == stamp
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file, no lock
    assert json.loads((out / "translate.json").read_text())["status"] == "complete"


def test_a_frame_whose_preview_cannot_be_written_leaves_no_pseudo_mri_behind(tmp_path, capsys, monkeypatch,
                                                                             random_models):
    """The disk fills between a frame's two files: its pseudo-MRI (already written) is removed again, so the
    folder never holds a pseudo-MRI without its preview and record."""
    import errno

    frames = tmp_path / "frames"
    write_frames(frames, 2, size=160, seed=3)
    write_image = sitk.WriteImage

    def full_for_pngs(image, path, *args, **kwargs):  # the NRRD fits, the PNG after it does not
        if ".png" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_image(image, path, *args, **kwargs)

    monkeypatch.setattr(sitk, "WriteImage", full_for_pngs)
    out = tmp_path / "out"
    capsys.readouterr()
    code = main(translate_cmd(frames, out, random_models, 2, "--method", "ddib"))
    err = capsys.readouterr().err
    assert code == 2 and "is full" in err and "Traceback" not in err, err
    assert not [p for p in out.rglob("*") if "pseudo_mri" in p.name or "side_by" in p.name]


@pytest.mark.parametrize("disk", ["tmpfs", "patched writer"])
def test_disk_full_gives_a_clear_error_no_partial_file_and_leaves_the_input_alone(tmp_path, capsys, monkeypatch,
                                                                                random_models, disk):
    frames = tmp_path / "frames"
    paths = write_frames(frames, 2, size=160, seed=3)
    before = {p: sha(p) for p in paths}
    with tiny_filesystem(tmp_path, 12) as tiny:  # 3 pages: the lock and the report fit, a result does not
        if disk == "tmpfs" and tiny is None:
            pytest.skip("mounting a small tmpfs is not permitted here (the patched-writer case still runs)")
        if disk == "patched writer":  # the writer fails as a full disk does, after writing half a file
            tiny = tmp_path / "disk"
            monkeypatch.setattr(sitk, "WriteImage", enospc_writer())
        out = tiny / "out"
        capsys.readouterr()
        code = main(translate_cmd(frames, out, random_models, 2, "--method", "ddib"))
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error" in line]
        assert code == 2 and len(lines) == 1 and "is full" in lines[0] and "Traceback" not in err, err
        assert "nothing was left half-written" in lines[0]
        leftovers = list(out.rglob("*")) if out.exists() else []
        assert not [p for p in leftovers if ".partial" in p.name or "pseudo_mri" in p.name or "side_by" in p.name]
        assert not (out / LOCK_NAME).exists()
        if (out / "translate.json").exists():
            assert json.loads((out / "translate.json").read_text())["frames"] == []
    assert {p: sha(p) for p in paths} == before and sorted(frames.iterdir()) == sorted(paths)


@pytest.mark.slow
def test_two_runs_into_one_folder_one_refuses_and_neither_corrupts_the_other(tmp_path, random_models):
    frames = tmp_path / "frames"
    write_frames(frames, 3)
    other = tmp_path / "other"
    write_frames(other, 2, seed=9)
    out = tmp_path / "out"
    first = start_ddic(translate_cmd(frames, out, random_models, steps=30))
    try:
        wait_for(lambda: (out / LOCK_NAME).exists() or first.poll() is not None)
        assert first.poll() is None
        second = run_ddic(translate_cmd(other, out, random_models, steps=2), timeout=TIMEOUT)
        assert second.returncode == 2
        assert f"in use by another ddic translate run (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.wait(timeout=TIMEOUT) == 0, first.stderr.read()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    records = assert_only_complete_frames(out)
    assert sorted(Path(r["frame"]).name for r in records) == ["f0.nrrd", "f1.nrrd", "f2.nrrd"]
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_run_is_taken_over_and_said(tmp_path, capsys, random_models):
    frames = tmp_path / "frames"
    write_frames(frames, 1)
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"pid": gone.pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00", "token": "x",
              "purpose": "ddic translate"}
    (out / LOCK_NAME).write_text(json.dumps(record))
    (out / ".f0_pseudo_mri.abc123.partial.nrrd").write_bytes(b"half a file")  # left by the dead run
    code = main(translate_cmd(frames, out, random_models, 2, "--method", "ddib"))
    err = capsys.readouterr().err
    assert code == 0 and f"took over the lock of a run that is gone (pid {gone.pid}" in err
    assert "removed 1 temporary file(s)" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_folder_lock_refuses_live_foreign_and_fresh_holders(tmp_path, monkeypatch):
    from ddic.errors import DDICOutputError
    from ddic.io import lock as lock_module

    with FolderLock(tmp_path, purpose="first") as held:
        assert held.held and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(DDICOutputError, match=rf"in use by another first run \(pid {os.getpid()}"):
            FolderLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    # a holder on another machine cannot be checked from here: held, and the message says where the file is
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "t"}))
    with pytest.raises(DDICOutputError, match="on elsewhere.*delete"):
        FolderLock(tmp_path).acquire()
    # an empty lock file is one being written right now, unless it is old
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(DDICOutputError, match="being written"):
        FolderLock(tmp_path).acquire()
    old = time.time() - 2 * lock_module.UNREADABLE_GRACE_S
    os.utime(tmp_path / LOCK_NAME, (old, old))
    taken = FolderLock(tmp_path).acquire()
    assert taken.stale == {} and taken.held
    taken.release()
    # a live pid that now belongs to a process started after the lock was taken: pid reuse, stale
    if lock_module._proc_start(os.getpid()) is not None:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                      "proc_start": "1", "since": "t"}))
        assert FolderLock(tmp_path).acquire().stale["pid"] == os.getpid()


# Audit events of every attempt to reach another machine (resolving a name, connecting, sending). A bind
# is left out: urllib3, imported by diffusers, binds a socket to ::1 at import to learn whether IPv6
# works, which sends nothing.
NETWORK_GUARD = """
import json, sys
calls = []
def hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg",
                 "urllib.Request", "http.client.connect", "socket.gethostbyname", "socket.gethostbyaddr"):
        calls.append([event, repr(args)[:200]])
sys.addaudithook(hook)
import atexit
log, module = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(log, "w").write(json.dumps(calls)))
sys.argv = [module, *sys.argv[3:]]
import runpy
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _guarded(module: str, args: list[str], log: Path, prefix: list[str], **kwargs):
    """``python -m MODULE ARGS`` recording every network call it attempts into ``log``."""
    script = log.with_suffix(".py")
    script.write_text(NETWORK_GUARD)
    return subprocess.run([*prefix, sys.executable, str(script), str(log), module, *args], capture_output=True,
                          text=True, timeout=TIMEOUT, env=ddic_env(), **kwargs)


def _no_network_prefix() -> list[str]:
    if not shutil.which("unshare"):
        pytest.skip("unshare is not available: the network namespace cannot be removed here")
    probe = subprocess.run(["unshare", "-rn", sys.executable, "-c", "pass"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rn is not permitted here ({probe.stderr.decode().strip()[:120]})")
    return ["unshare", "-rn"]


@pytest.mark.slow
def test_translation_segmentation_and_worker_run_without_network_and_never_try_it(tmp_path, random_models):
    offline = _no_network_prefix()
    frames = tmp_path / "frames"
    write_frames(frames, 1)
    results = {}
    for name, prefix in (("online", []), ("offline", offline)):
        out = tmp_path / name
        done = _guarded("ddic", translate_cmd(frames, out / "t", random_models, 3), out.with_suffix(".t.log"), prefix)
        assert done.returncode == 0, done.stderr[-2000:]
        seg = _guarded("ddic", ["segment", frames / "f0.nrrd", "--points", "16,16", "--box", "4,4,28,28",
                                "--backend", "classical", "--out", out / "mask.nrrd"], out.with_suffix(".s.log"),
                       prefix)
        assert seg.returncode in (0, 2), seg.stderr[-2000:]
        requests = "\n".join(json.dumps(r) for r in (
            {"id": 1, "op": "hello"}, {"id": 2, "op": "load", "backend": "classical"},
            {"id": 3, "op": "set_image", "path": str(frames / "f0.nrrd")}, {"id": 4, "op": "shutdown"})) + "\n"
        worker = _guarded("ddic.worker", [], out.with_suffix(".w.log"), prefix, input=requests)
        assert worker.returncode == 0 and [json.loads(x)["ok"] for x in worker.stdout.splitlines()] == [True] * 4
        calls = [json.loads(out.with_suffix(f".{k}.log").read_text()) for k in "tsw"]
        assert calls == [[], [], []], calls  # nothing tried to reach the network
        results[name] = (sha(out / "t" / "f0_pseudo_mri.nrrd"), seg.returncode, seg.stderr.splitlines()[-1:])
    assert results["online"] == results["offline"]  # the same behaviour with the network namespace removed


def test_batches_hold_a_bounded_number_of_frame_pixels():
    from ddic.translate.service import MAX_BATCH_FRAME_PIXELS, _batches

    paths = [Path(f"f{i}") for i in range(7)]
    big = MAX_BATCH_FRAME_PIXELS // 2
    pixels = {p: (big if i in (1, 2, 3) else 100) for i, p in enumerate(paths)}
    batches = _batches(paths, pixels, batch_size=3)
    assert [len(b) for b in batches] == [2, 2, 3]  # f0+f1 | f2+f3 (two big ones fill a batch) | f4 f5 f6
    assert all(sum(pixels[p] for p in b) <= MAX_BATCH_FRAME_PIXELS for b in batches)
    assert [p for b in batches for p in b] == paths


def test_translate_prints_an_undecided_orientation_and_a_memory_warning(tmp_path, capsys, monkeypatch,
                                                                        random_models):
    """Notes the user must read reach the output (not only translate.json): the default orientation that was
    assumed, and a peak memory near the machine's RAM (here faked through getrusage)."""
    import resource

    from hc18_synthetic import random_head, skull_frame

    rng = np.random.default_rng(5)
    ellipse, pixel_size, _ = random_head(rng)
    frame = tmp_path / "head.png"
    sitk.WriteImage(sitk.GetImageFromArray(skull_frame(rng, ellipse, pixel_size).astype(np.uint8)), str(frame))
    real = resource.getrusage
    total_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024

    def near_full(who):
        usage = real(who)
        return type("Usage", (), {"ru_maxrss": int(0.95 * total_kib), "__getattr__": lambda s, k: getattr(usage, k)})()

    monkeypatch.setattr(resource, "getrusage", near_full)
    us, mri = random_models
    capsys.readouterr()
    assert main(["translate", str(frame), "--us-model", str(us), "--mri-model", str(mri), "--out", str(tmp_path / "o"),
                 "--steps", "2", "--cpu", "--method", "ddib", "--pixel-size", f"{pixel_size:.6f}"]) == 0
    err = capsys.readouterr().err
    assert "head.png: front/back orientation undecided from the image; assumed the frontal end on the right" in err
    assert "--anterior left" in err
    assert "peak memory" in err and "use --batch-size 8" in err
    placed = json.loads((tmp_path / "o" / "translate.json").read_text())["frames"][0]["placement"]
    assert placed["orientation_source"] == "default" and placed["orientation_decided"] is False
