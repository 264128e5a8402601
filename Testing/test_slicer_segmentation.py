"""A Segment click, end to end through the panel's logic, against a scripted fake worker.

The fake is the real :class:`DDICSlicerLib.workerclient.WorkerClient` with its process replaced: requests
are answered by a script (as ``python -m ddic.worker`` would answer them, ``ddic/worker/protocol.py``)
and the replies go through the client's own queue, ``poll`` and dispatch. Whatever fails — a reply, the
worker process, sending — the click must have exactly one outcome and leave the panel not busy.
``DDICSlicer.py`` is imported against the stand-ins of ``slicer_stand_ins.py``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

import slicer_stand_ins as si

MODULE_DIR = Path(__file__).resolve().parents[1] / "DDICSlicer"
sys.path.insert(0, str(MODULE_DIR))

from DDICSlicerLib import models  # noqa: E402
from DDICSlicerLib.workerclient import WorkerClient, WorkerError  # noqa: E402


class FakeWorker(WorkerClient):
    """WorkerClient whose process is a script: ``answer(op, fields) → reply`` (or raise to fail sending)."""

    def __init__(self, answer):
        super().__init__(["fake-worker"])
        self.answer = answer
        self.sent = []
        self.stopped = False
        self.alive = True
        self._stderr_reader = threading.Thread(target=lambda: None)
        self._stderr_reader.start()

    @property
    def running(self):
        return self.alive

    def request(self, op, callback=None, **fields):
        if not self.alive:
            raise WorkerError("The segmentation worker is not running; press Segment again to restart it.")
        reply = self.answer(op, fields)  # may raise: the pipe broke while sending
        self._next_id += 1
        self._pending[self._next_id] = ({"id": self._next_id, "op": op, **fields}, callback)
        self.sent.append((op, fields))
        if reply == "die":
            self._replies.put(("log", "fatal: killed"))
            self._replies.put(("eof", None))
        elif reply is not None:
            self._replies.put(("reply", {"id": self._next_id, "op": op, **reply}))
        return self._next_id

    def stop(self, timeout_s=3.0):
        self.stopped, self.alive = True, False
        self._pending.clear()


def classical_worker(fail=None, mask=None):
    """Answers like the real worker; ``fail``: op → error message (or "die", or an exception to raise)."""
    state = {"loaded": None}

    def answer(op, fields):
        what = (fail or {}).get(op)
        if isinstance(what, Exception):
            raise what
        if what == "die":
            return "die"
        if what:
            return {"ok": False, "error": what, "type": "DDICModelError"}
        if op == "load":
            state["loaded"] = fields["backend"]
            return {"ok": True, "result": {"backend": fields["backend"]}}
        if op == "set_image":
            return {"ok": True, "result": {"path": fields["path"]}}
        if op == "predict":
            if state["loaded"] is None:  # what ddic.worker.segment_ops answers without a loaded backend
                return {"ok": False, "error": "No segmentation backend is loaded", "type": "RequestError"}
            pixels = np.zeros((20, 30), np.uint8) if mask is None else mask
            if mask is None:
                pixels[5:15, 10:20] = 1
            sitk.WriteImage(sitk.GetImageFromArray(pixels), fields["out"])
            return {"ok": True, "result": {"out": fields["out"], "backend": state["loaded"], "score": 0.9}}
        return {"ok": False, "error": f"unknown op {op}", "type": "RequestError"}

    return answer


@pytest.fixture
def panel(monkeypatch, tmp_path):
    slicer = si.install_framework(monkeypatch, tmp_path)
    module = si.import_module_file(MODULE_DIR / "DDICSlicer.py")
    logic = module.DDICSlicerLogic()
    volume = slicer.mrmlScene.AddNode(si.VolumeNode((np.arange(600) % 200).reshape(1, 20, 30).astype(np.float32),
                                                    spacing=(0.5, 0.5, 1.0), directions=si.LPS_TO_RAS))
    inside = volume.ijk_to_ras() @ np.array([15.0, 10.0, 0.0, 1.0])
    p = SimpleNamespace(inputVolume=volume, outputVolume=None, segmentSource="Ultrasound", backend="classical",
                        samModel="sam-vit-b", forceCpu=False, target=module.TARGET_NAMES[0], pixelSize=0.0,
                        positivePoints=si.MarkupsNode([inside[:3]]), negativePoints=si.MarkupsNode(),
                        promptBox=None, segmentationNode=None)
    return SimpleNamespace(slicer=slicer, module=module, logic=logic, p=p, tmp=tmp_path)


def click(panel, worker, **kwargs):
    """One Segment click with ``worker``; polls like the panel's timer until the run ends. Returns outcomes."""
    outcomes = []
    panel.logic.segmenter = worker
    panel.logic.segment(panel.p, lambda *outcome: outcomes.append(outcome), **kwargs)
    for _ in range(20):
        panel.logic.pollSegmentation()
    return outcomes


def test_success_writes_the_mask_once_and_cleans_up(panel):
    worker = FakeWorker(classical_worker())
    outcomes = click(panel, worker)
    assert len(outcomes) == 1 and outcomes[0][0] == "succeeded", outcomes
    assert "Proximal lateral ventricle: classical, score 0.90, 100 pixels" in outcomes[0][1]
    assert not panel.logic.segmentationBusy
    segmentation = panel.p.segmentationNode
    (segment_id, mask), = segmentation.masks.items()
    assert mask.shape == (1, 20, 30) and int(mask.sum()) == 100
    assert [op for op, _ in worker.sent] == ["load", "set_image", "predict"]
    folder = panel.logic._segmentationDir
    assert os.listdir(folder) == ["image.nrrd"]  # the mask file was read and removed
    assert panel.slicer.util.saved == []  # the image went through a storage node of its own
    # a second click on the same image only predicts (SAM keeps the embedding)
    outcomes = click(panel, worker)
    assert outcomes[0][0] == "succeeded" and [op for op, _ in worker.sent][-1:] == ["predict"]
    assert [op for op, _ in worker.sent].count("set_image") == 1
    panel.logic.shutdown()
    assert not os.path.exists(folder) and worker.stopped  # segmentation temp folder removed


@pytest.mark.parametrize("failure", [
    {"load": "cannot load the backend"},
    {"set_image": "cannot read the image"},
    {"predict": "no mask"},
    {"set_image": "die"},
    {"load": WorkerError("The segmentation worker is not running")},
    {"predict": BrokenPipeError(32, "Broken pipe")},
], ids=["load fails", "set_image fails", "predict fails", "worker dies", "send raises", "pipe breaks"])
def test_every_failure_is_one_error_and_never_leaves_the_panel_busy(panel, failure):
    worker = FakeWorker(classical_worker(fail=failure))
    outcomes = click(panel, worker)
    assert len(outcomes) == 1, f"one failure, one message: {outcomes}"
    assert outcomes[0][0] == "failed"
    assert not panel.logic.segmentationBusy
    # and the next click works again (a healthy worker)
    assert click(panel, FakeWorker(classical_worker()))[0][0] == "succeeded"


def test_cancel_ends_the_run_once_and_late_replies_are_ignored(panel):
    worker = FakeWorker(lambda op, fields: None)  # never answers: an embedding that takes forever
    outcomes = click(panel, worker)
    assert outcomes == [] and panel.logic.segmentationBusy
    done, total, label = panel.logic.segmentationRun.progress
    assert (done, total) == (0, 3) and "Loading" in label
    panel.logic.cancelSegmentation()
    assert worker.stopped and not panel.logic.segmentationBusy
    assert outcomes == [("cancelled", "Segmentation cancelled.")]
    panel.logic.segmentationRun._reply(0, {"ok": False, "error": "late"})
    assert len(outcomes) == 1 and panel.logic.segmenter is None


def test_prompt_errors_are_raised_before_anything_starts(panel):
    panel.p.positivePoints = si.MarkupsNode()
    with pytest.raises(ValueError, match="Place at least one inside point"):
        click(panel, FakeWorker(classical_worker()))
    assert not panel.logic.segmentationBusy


def test_sam_that_cannot_load_falls_back_to_classical_with_a_note(panel, monkeypatch, tmp_path):
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"
    checkpoint.write_bytes(b"x")
    monkeypatch.setattr(models, "resolve", lambda spec: checkpoint)
    monkeypatch.setattr(models.Catalog, "is_available", lambda self, spec: True)
    panel.p.backend = "sam"
    worker = FakeWorker(classical_worker())
    original = worker.answer

    def answer(op, fields):
        if op == "load" and fields["backend"] == "sam":
            return {"ok": False, "error": "SAM segmentation needs the segment-anything package", "type": "DDICModelError"}
        return original(op, fields)

    worker.answer = answer
    outcomes = click(panel, worker)
    assert len(outcomes) == 1 and outcomes[0][0] == "succeeded"
    assert "classical" in outcomes[0][1] and "SAM could not be loaded" in outcomes[0][1]
    assert "segment-anything" in outcomes[0][1]
    loads = [fields for op, fields in worker.sent if op == "load"]
    assert [f["backend"] for f in loads] == ["sam", "classical"] and loads[0]["checkpoint"] == str(checkpoint)
    click(panel, worker)  # the failure is remembered: SAM is not retried on every click
    assert [f["backend"] for op, f in worker.sent if op == "load"] == ["sam", "classical"]


def test_sam_without_its_packages_or_model_uses_classical_and_says_why(panel, monkeypatch):
    panel.p.backend = "sam"
    monkeypatch.setattr(models.Catalog, "is_available", lambda self, spec: False)
    worker = FakeWorker(classical_worker())
    outcomes = click(panel, worker)
    assert outcomes[0][0] == "succeeded" and "sam-vit-b is not downloaded" in outcomes[0][1]
    monkeypatch.setattr(models.Catalog, "is_available", lambda self, spec: True)
    panel.logic.segmenter = None
    worker = FakeWorker(classical_worker())
    outcomes = click(panel, worker, samUnavailable="SAM's Python packages are not installed")
    assert "SAM's Python packages are not installed; the classical backend was used" in outcomes[0][1]
    assert {f["backend"] for op, f in worker.sent if op == "load"} == {"classical"}


def test_classical_backend_never_wants_sam(panel, monkeypatch):
    monkeypatch.setattr(models.Catalog, "is_available", lambda self, spec: True)
    panel.p.backend = "classical"
    assert not panel.logic.wantsSam(panel.p)
    panel.p.backend = "auto"
    assert panel.logic.wantsSam(panel.p)
    panel.p.samModel = "mobile-sam"  # in the manifest, but the worker cannot load it
    assert not panel.logic.wantsSam(panel.p)


# --- the run itself -------------------------------------------------------------------------------------

def test_run_without_steps_and_with_an_exception_in_a_callback_path():
    from DDICSlicerLib.segmentation import SegmentationRun, Step

    outcomes = []
    run = SegmentationRun(FakeWorker(classical_worker()), [], outcomes.append, outcomes.append)
    run.start()
    assert outcomes == ["Nothing to do."] and not run.busy
    run = SegmentationRun(FakeWorker(classical_worker()), [Step("load", {"backend": "classical"}, "x")],
                          lambda reply: outcomes.append(reply["ok"]), outcomes.append)
    run.start()
    run.client.poll()
    assert outcomes[-1] is True and run.progress == (1, 1, "Done")


# --- model lists ----------------------------------------------------------------------------------------

def test_sam_list_offers_only_models_the_worker_can_load():
    """SAM 2.1 and MobileSAM need other packages (ddic/segment/sam.py): offering them ends in an error."""
    from ddic.errors import DDICModelError
    from ddic.models import load_manifest
    from ddic.segment.backend import resolve_checkpoint
    from ddic.segment.sam import SAM_MODEL_TYPES

    manifest = load_manifest()
    offered = models.sam_entries(manifest)
    assert [e.id for e in offered] == ["sam-vit-b", "sam-vit-l", "sam-vit-h"]
    for entry in manifest:
        if entry.kind != "sam":
            continue
        try:
            resolve_checkpoint(entry.id)
            loadable = True
        except DDICModelError as exc:  # "not downloaded" still means loadable once downloaded
            loadable = "not a Segment Anything v1 checkpoint" not in str(exc)
        assert loadable == (entry in offered), entry.id
        if entry in offered:
            assert entry.arch in SAM_MODEL_TYPES


class FakeComboBox:
    """QComboBox signals: clear() emits currentIndexChanged(-1), adding the first item emits (0)."""

    def __init__(self, handler):
        self.items, self.current, self.blocked, self.handler = [], -1, False, handler

    def blockSignals(self, value):
        was, self.blocked = self.blocked, value
        return was

    def _set(self, index):
        if index != self.current:
            self.current = index
            if not self.blocked:
                self.handler(index)

    def clear(self):
        self.items = []
        self._set(-1)

    def addItem(self, label):
        self.items.append(label)
        if self.current == -1:
            self._set(0)

    def setCurrentIndex(self, index):
        self._set(index)


def test_refilling_a_model_list_keeps_the_saved_choice():
    from DDICSlicerLib import combos

    saved = {"samModel": "sam-vit-l"}
    entries = [SimpleNamespace(id=i) for i in ("sam-vit-b", "sam-vit-l", "sam-vit-h")]
    combo = FakeComboBox(lambda index: saved.update(samModel=entries[index].id) if index >= 0 else None)
    selected = combos.refill(combo, [e.id for e in entries], models.entry_index(entries, saved["samModel"]))
    assert saved["samModel"] == "sam-vit-l" and selected == 1 and combo.current == 1 and not combo.blocked
    assert combos.refill(combo, [], None) == -1
    pairs = [models.TranslationPair("a", "a-us", "a-mri"), models.TranslationPair("b", "b-us", "b-mri")]
    assert models.pair_index(pairs, "b-us", "b-mri") == 1 and models.pair_index(pairs, "b-us", "a-mri") is None
