"""What the panel may report: the trust number of each pseudo-MRI, a reliable atrium width or none, a decided
front/back orientation, and a time estimate measured on the device (issues 11, 13, 14).

``DDICSlicer.py`` is imported against the stand-ins of ``slicer_stand_ins.py`` (node attributes as
Libs/MRML/Core/vtkMRMLNode.cxx keeps them: written into the scene, copied by CopyContent into a sequence's
items and from them into its proxy); the engine runs for real on the bundled phantom frame.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

import slicer_stand_ins as si
from test_slicer_segmentation import FakeWorker, classical_worker

MODULE_DIR = Path(__file__).resolve().parents[1] / "DDICSlicer"
sys.path.insert(0, str(MODULE_DIR))

from DDICSlicerLib import models, reliability, sampledata  # noqa: E402
from DDICSlicerLib import process as worker  # noqa: E402
from DDICSlicerLib.reliability import ATTRIBUTE_ANTERIOR  # noqa: E402
from DDICSlicerLib.translation import ATTRIBUTE_RMSE, ATTRIBUTE_TRUSTED, UNTRUSTED_SUFFIX  # noqa: E402

FRAME = sampledata.sample_folder(MODULE_DIR) / sampledata.SELF_TEST_FRAME


def sample_pixels():
    image = sitk.ReadImage(str(FRAME))
    return sitk.GetArrayFromImage(image).reshape(1, 540, 800).astype(np.float32), image.GetSpacing()[0]


class FakeJob:
    """Stands for DDICSlicerLib.process.WorkerProcess: records the command, starts nothing."""

    started = []

    def __init__(self, args, **kwargs):
        self.args, self.kwargs, self.state = list(args), kwargs, worker.IDLE

    def start(self):
        self.state = worker.RUNNING
        FakeJob.started.append(self)


@pytest.fixture
def panel(monkeypatch, tmp_path):
    slicer = si.install_framework(monkeypatch, tmp_path)
    slicer.modules = SimpleNamespace()  # no Sequences module: every volume is a single frame
    module = si.import_module_file(MODULE_DIR / "DDICSlicer.py")
    logic = module.DDICSlicerLogic()
    logs = []
    logic.logCallback = logs.append
    logic.catalog = models.Catalog(load=lambda: {}, resolve_spec=lambda spec: Path(spec),
                                   read_card=lambda path: {"preset": "slim", "image_size": 64})
    monkeypatch.setattr(logic, "_resolveModel", lambda spec: Path(tmp_path / spec))
    monkeypatch.setattr(module.worker, "WorkerProcess", FakeJob)
    FakeJob.started = []
    pixels, spacing = sample_pixels()
    volume = slicer.mrmlScene.AddNode(si.VolumeNode(pixels, spacing=(spacing, spacing, 1.0),
                                                    directions=si.LPS_TO_RAS, name="US"))
    p = SimpleNamespace(inputVolume=volume, outputVolume=None, translateAllFrames=False, pixelSize=0.0,
                        useEllipse=False, ellipse="", anterior="auto", method="ddic", steps=10, solver="ddim",
                        forceCpu=True, usModel="us", mriModel="mri", segmentSource="Ultrasound",
                        backend="classical", samModel="sam-vit-b", target=module.TARGET_NAMES[1],
                        positivePoints=None, negativePoints=si.MarkupsNode(), promptBox=None, segmentationNode=None,
                        ellipseCurve=None)
    return SimpleNamespace(slicer=slicer, module=module, logic=logic, p=p, logs=logs, volume=volume, tmp=tmp_path)


def undecidable(monkeypatch):
    """A frame whose front/back the image does not show (the CSP heuristic abstains, as on 9 of 30 frames of
    the independent simulator in issue 13)."""
    import ddic.geometry.head as head

    monkeypatch.setattr(head, "guess_anterior", lambda pixels, ellipse, margin=None: None)


def written_placement(job):
    from ddic.translate.options_document import read

    return read(job.args[job.args.index("--options-json") + 1])[1]


# --- orientation ----------------------------------------------------------------------------------------------

def test_an_undecided_orientation_is_asked_for_before_translating(panel, monkeypatch):
    undecidable(monkeypatch)
    orientation = panel.logic.orientation(panel.p, "translation")
    assert orientation.source == "default" and orientation.needs_confirmation and not orientation.decided
    with pytest.raises(panel.module.OrientationNotConfirmed):
        panel.logic.startTranslation(panel.p)
    assert FakeJob.started == []  # nothing ran on an assumed orientation
    note = panel.logic.confirmOrientation(panel.p, "left")
    assert panel.volume.GetAttribute(ATTRIBUTE_ANTERIOR) == "left"  # recorded on the frame: a saved scene keeps it
    assert "confirmed by the user" in panel.volume.GetAttribute(reliability.ATTRIBUTE_ANTERIOR_NOTE)
    assert any(note in line for line in panel.logs)
    panel.logic.startTranslation(panel.p)
    (job,) = FakeJob.started
    assert written_placement(job).anterior_right is False  # the engine is told: "given", never "default"
    assert panel.logic._jobContext["orientation"].source == "confirmed"


def test_a_decided_orientation_is_not_asked_for(panel, monkeypatch):
    orientation = panel.logic.orientation(panel.p, "translation")
    assert orientation.source == "heuristic" and not orientation.needs_confirmation  # the CSP shows it here
    panel.p.anterior = "right"
    assert panel.logic.orientation(panel.p, "width").source == "given"
    panel.logic.startTranslation(panel.p)
    assert written_placement(FakeJob.started[0]).anterior_right is True
    # a canonical frame of the model's size is translated as it is: no head orientation involved
    canonical = panel.slicer.mrmlScene.AddNode(si.VolumeNode(np.zeros((1, 64, 64), np.float32)))
    panel.p.inputVolume, panel.p.anterior = canonical, "auto"
    undecidable(monkeypatch)
    assert panel.logic.orientation(panel.p, "translation").source == "not needed"


def test_the_question_marks_the_two_ends_on_the_views(panel, monkeypatch):
    """End 1 is the end the engine calls right (Ellipse.major_axis), end 2 the other: the answer maps exactly."""
    from DDICSlicerLib.segments import control_points, ras_to_ijk_points
    from DDICSlicerLib.volumes import ellipse_text

    undecidable(monkeypatch)
    orientation = panel.logic.orientation(panel.p, "translation")
    panel.logic.showHeadEnds(panel.p, orientation)
    ends = panel.logic._headEnds
    ellipse = orientation.placement.transform.ellipse
    ijk = ras_to_ijk_points(panel.volume, control_points(ends))[:, :2]
    centre = np.array([ellipse.cx, ellipse.cy])
    assert np.allclose(ijk, [centre + ellipse.a * ellipse.major_axis, centre - ellipse.a * ellipse.major_axis])
    assert ends.labels == ["1", "2"] and ends.locked
    assert panel.p.ellipse == ellipse_text(ellipse) and panel.p.ellipseCurve is not None


def sequence_in_scene(panel, count: int):
    """A US sequence of ``count`` sample frames, its proxy volume in the scene and its browser."""
    master = si.SequenceNode("US sequence", index_name="frame", index_unit="")
    pixels, spacing = sample_pixels()
    for i in range(count):
        master.SetDataNodeAtValue(si.VolumeNode(pixels, spacing=(spacing, spacing, 1.0)), str(i))
    proxy = panel.slicer.mrmlScene.AddNode(si.VolumeNode(name="US proxy"))
    return master, proxy, si.SequenceBrowserNode(master, proxy)


def test_a_sequence_is_confirmed_once_on_its_browser(panel):
    master, proxy, browser = sequence_in_scene(panel, 2)
    logic = SimpleNamespace(GetFirstBrowserNodeForProxyNode=lambda node: browser if node is proxy else None)
    panel.slicer.modules.sequences = SimpleNamespace(logic=lambda: logic)
    panel.p.inputVolume, panel.p.translateAllFrames = proxy, True
    orientation = panel.logic.orientation(panel.p, "translation")
    assert orientation.source == "sequence" and orientation.needs_confirmation  # frames would be guessed one by one
    assert "On the frame shown, the image suggests end 1." in reliability.question_text(orientation, 2)
    with pytest.raises(panel.module.OrientationNotConfirmed):
        panel.logic.startTranslation(panel.p)
    panel.logic.confirmOrientation(panel.p, "right")
    browser.SetSelectedItemNumber(1)  # stepping replaces the proxy's attributes (CopyContent), not the browser's
    assert browser.GetAttribute(ATTRIBUTE_ANTERIOR) == "right" and proxy.GetAttribute(ATTRIBUTE_ANTERIOR) is None
    assert panel.logic.orientation(panel.p, "translation").source == "confirmed"


# --- the atrium width -----------------------------------------------------------------------------------------

def segment_click(panel, mask, target, place_point=True):
    panel.p.target = target
    if place_point:
        panel.p.positivePoints = si.MarkupsNode([(panel.volume.ijk_to_ras() @ np.array([500.0, 260.0, 0.0, 1.0]))[:3]])
    outcomes = []
    panel.logic.segmenter = FakeWorker(classical_worker(mask=mask.astype(np.uint8)))
    panel.logic.segment(panel.p, lambda *outcome: outcomes.append(outcome))
    for _ in range(20):
        panel.logic.pollSegmentation()
    assert len(outcomes) == 1 and outcomes[0][0] == "succeeded", outcomes
    return outcomes[0][1]


@pytest.fixture(scope="module")
def masks():
    """Two regions of the bundled frame the classical backend grows: from the self-test's point (an anechoic
    region in the *front* half, near the midline: not an atrium, 6 mm wide) and from the atlas prompts of the
    distal atrium (ddic.segment.distal_atrium, which the demo uses)."""
    import SimpleITK as sitk

    from ddic.segment.backend import make_segmenter
    from ddic.segment.distal_atrium import measure_distal_atrium
    from ddic.segment.prompts import Prompts

    pixels, spacing = sample_pixels()
    segmenter = make_segmenter("classical")
    segmenter.set_image(pixels[0])
    front = np.asarray(segmenter.predict(Prompts(positive=[sampledata.SELF_TEST_POINT])).mask, bool)
    placement = reliability.head_placement(pixels[0], spacing, "auto", None, mode="head")
    atrium = measure_distal_atrium(pixels[0], None, placement.transform, segmenter)
    assert atrium.reliable  # the engine's own verdict on this region
    del sitk
    return {"front": front, "atrium": atrium.mask, "atrium_width": atrium.candidate_width_mm,
            "atrium_plausibility": atrium.plausibility.plausibility, "atrium_prompts": atrium.prompts,
            "atrium_box": atrium.box}


def test_a_width_is_shown_only_for_a_plausible_atrium(panel, masks):
    text = segment_click(panel, masks["front"], "Distal lateral ventricle")
    assert "atrium width not reported — unreliable" in text
    assert "not where a distal atrium is" in text  # the reason, from the engine's checks
    assert "atrium width 6" not in text  # the old panel reported "atrium width 6.0 mm" for this region
    assert panel.logic.lastAtrium.width_mm is None and panel.logic.lastAtrium.candidate_width_mm > 5
    text = segment_click(panel, masks["atrium"], "Distal lateral ventricle")
    assert f"atrium width {masks['atrium_width']:.1f} mm (plausibility" in text
    segmentation = panel.p.segmentationNode
    assert segmentation.GetAttribute("DDIC.AtriumWidth.distal_ventricle").startswith("atrium width")


def test_an_unconfirmed_orientation_withholds_the_width(panel, masks, monkeypatch):
    undecidable(monkeypatch)
    text = segment_click(panel, masks["atrium"], "Distal lateral ventricle")
    assert "not reported — unreliable" in text and "front/back orientation was not decided" in text
    panel.logic.confirmOrientation(panel.p, "right")  # what the panel asks before segmenting a ventricle
    text = segment_click(panel, masks["atrium"], "Distal lateral ventricle")
    assert f"atrium width {masks['atrium_width']:.1f} mm" in text


def test_every_mm_figure_uses_the_pixel_size_in_force(panel, masks):
    _pixels, spacing = sample_pixels()
    segment_click(panel, masks["atrium"], "Distal lateral ventricle")
    at_spacing = panel.logic.lastAtrium
    panel.p.pixelSize = 2.0 * spacing
    segment_click(panel, masks["atrium"], "Distal lateral ventricle")
    doubled = panel.logic.lastAtrium
    assert doubled.pixel_size_mm == pytest.approx(2 * spacing)
    assert doubled.candidate_width_mm == pytest.approx(2 * at_spacing.candidate_width_mm, rel=1e-6)
    assert doubled.area_mm2 == pytest.approx(4 * at_spacing.area_mm2)


def test_a_head_that_cannot_be_found_gives_no_width(panel):
    blank = panel.slicer.mrmlScene.AddNode(si.VolumeNode(np.zeros((1, 540, 800), np.float32),
                                                         spacing=(0.17, 0.17, 1.0), directions=si.LPS_TO_RAS))
    panel.p.inputVolume = panel.volume = blank
    mask = np.zeros((540, 800), bool)
    mask[300:330, 300:340] = True
    text = segment_click(panel, mask, "Proximal lateral ventricle")
    assert "not reported — unreliable" in text and "head (skull ellipse) was not found" in text


def test_automatic_prompts_wait_for_the_orientation_and_get_the_demos_verdict(panel, masks, monkeypatch):
    """Atlas prompts depend on which end is frontal (the atrium is in the back half): asked first. Placed into
    the panel's markups, segmented, and checked with their box: the same verdict as ddic demo's
    measure_distal_atrium on the same region."""
    from DDICSlicerLib.segments import prompt_box, prompt_points

    p = panel.p
    p.positivePoints, p.skullPoints, p.cnrTable = si.MarkupsNode(), si.MarkupsNode(), object()
    p.promptBox = panel.slicer.mrmlScene.AddNode(si.ROINode(size=(0, 0, 0), statuses=[]))
    p.target = panel.module.TARGET_NAMES[0]
    undecidable(monkeypatch)
    with pytest.raises(panel.module.OrientationNotConfirmed):
        panel.logic.placeAutomaticPrompts(p)
    panel.logic.confirmOrientation(p, "right")
    panel.logic.placeAutomaticPrompts(p)
    assert p.target == "Distal lateral ventricle"
    (x, y, label), = prompt_points(panel.volume, p.positivePoints, p.negativePoints)
    assert label == 1 and np.allclose((x, y), masks["atrium_prompts"].point, atol=1e-6)
    assert np.allclose(prompt_box(panel.volume, p.promptBox), masks["atrium_box"], atol=1e-6)
    text = segment_click(panel, masks["atrium"], "Distal lateral ventricle", place_point=False)
    assert f"atrium width {masks['atrium_width']:.1f} mm (plausibility {masks['atrium_plausibility']:.2f})" in text
    assert panel.logic.lastAtrium.plausibility == pytest.approx(masks["atrium_plausibility"], abs=1e-9)


# --- the trust number -----------------------------------------------------------------------------------------

def done_event(outputs, trusted):
    return {"event": "done", "outputs": [str(o) for o in outputs],
            "frames": [{"pseudo_mri": str(o), "us_round_trip_rmse": 0.03 if t else 0.41, "trust_threshold": 0.08,
                        "trusted": t, "orientation_source": "heuristic", "anterior_right": True}
                       for o, t in zip(outputs, trusted)]}


def write_output(path, seed=0):
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(seed).random((540, 800)).astype(np.float32)),
                    str(path))
    return path


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_each_pseudo_mri_carries_its_trust_number(panel, trusted):
    out = write_output(panel.tmp / "pmri.nrrd")
    result = worker.ProcessResult(worker.SUCCEEDED, 0, [str(out)], done=done_event([out], [trusted]))
    context = {"parameterNode": panel.p, "input": panel.volume, "browser": None, "sequenceFrames": None,
               "orientation": reliability.Orientation("heuristic", True)}
    panel.logic._importResults(result, context)
    node = panel.p.outputVolume
    assert node.GetAttribute(ATTRIBUTE_TRUSTED) == ("true" if trusted else "false")
    assert node.GetAttribute(ATTRIBUTE_RMSE) == ("0.0300" if trusted else "0.4100")
    assert node.GetAttribute(reliability.ATTRIBUTE_ORIENTATION) == "frontal end on the right (decided from the image)"
    line = next(line for line in panel.logs if "US round-trip RMSE" in line)
    if trusted:
        assert "0.030 ≤ threshold 0.080" in line and panel.logic.lastTrustWarning == ""
        assert not node.GetName().endswith(UNTRUSTED_SUFFIX)
    else:
        assert "WARNING US round-trip RMSE 0.410 > threshold 0.080" in line and "must not be trusted" in line
        assert node.GetName().endswith(UNTRUSTED_SUFFIX)  # seen in every node list, kept in a saved scene
        assert "does not represent this frame" in panel.logic.lastTrustWarning
        assert "must not be trusted" in node.GetAttribute("DDIC.TrustWarning")


def test_a_sequence_marks_each_untrusted_item(panel):
    from DDICSlicerLib.volumes import SequenceFrame

    master, proxy, browser = sequence_in_scene(panel, 3)
    outputs = [write_output(panel.tmp / f"p{i}.nrrd", i) for i in range(3)]
    frames = [SequenceFrame(o, str(i), master.GetNthDataNode(i).ijk_to_ras()) for i, o in enumerate(outputs)]
    result = worker.ProcessResult(worker.SUCCEEDED, 0, [str(o) for o in outputs],
                                  done=done_event(outputs, [True, False, True]))
    context = {"parameterNode": panel.p, "input": proxy, "browser": browser, "sequenceFrames": frames,
               "orientation": reliability.Orientation("confirmed", True)}
    panel.logic._importResults(result, context)
    sequence = next(n for n in panel.slicer.mrmlScene.nodes.values() if n.className == "vtkMRMLSequenceNode")
    assert [sequence.GetNthDataNode(i).GetAttribute(ATTRIBUTE_TRUSTED) for i in range(3)] == ["true", "false", "true"]
    assert sequence.GetAttribute("DDIC.UntrustedFrames") == "2" and sequence.GetName().endswith(UNTRUSTED_SUFFIX)
    result_proxy = panel.p.outputVolume
    browser.SetSelectedItemNumber(1)
    assert result_proxy.GetAttribute(ATTRIBUTE_TRUSTED) == "false"  # the proxy shows the item it displays
    assert "1 of 3 frames (items 2) are UNTRUSTED" in panel.logic.lastTrustWarning
    assert sum("WARNING US round-trip" in line for line in panel.logs) == 1


# --- the measured estimate ------------------------------------------------------------------------------------

class FakeProbe:
    """A device probe that has answered (DDICSlicerLib.device main's done event)."""

    def __init__(self, done):
        self.result = worker.ProcessResult(worker.SUCCEEDED, 0, done=done)
        self.log = worker.CappedLog()

    def poll(self):
        return worker.SUCCEEDED


def test_the_estimate_is_measured_per_model_and_device(panel, monkeypatch):
    started = []

    def start(again=False, p=None):
        started.append((p.usModel, p.forceCpu) if p is not None else None)
        panel.logic._deviceProbe = FakeProbe(answers.pop(0))
        panel.logic._probeRequest = (p.usModel, "cpu" if p.forceCpu else "auto") if p is not None else None
        return True

    cpu = {"torch": "2.6.0", "cuda_build": None, "cuda": False, "mps": False}
    answers = [{"event": "done", "device": cpu,
                "timing": {"device_kind": "cpu", "device": "cpu", "forward_s": 0.02, "forward_backward_s": 0.05}}]
    monkeypatch.setattr(panel.logic, "startDeviceProbe", start)
    p = panel.p
    p.steps, p.solver = 100, "dpmpp2m"
    assert "rough" in panel.logic.estimateText(p)  # nothing measured yet
    panel.logic.startDeviceProbe(p=p)
    assert panel.logic.pollDeviceProbe()
    text = panel.logic.estimateText(p)
    assert "measured: 20 ms per network call, 50 ms with its gradient; 400 calls per frame" in text
    assert "≈ 11 s on this CPU" in text
    assert not panel.logic.requestTiming(p)  # known: no second probe for the same model and device
    p.usModel = "other-us"
    answers.append({"event": "done", "device": cpu, "timing_error": "ModuleNotFoundError: No module named 'diffusers'"})
    assert panel.logic.requestTiming(p) and panel.logic.pollDeviceProbe()
    assert "rough" in panel.logic.estimateText(p) and any("stays rough" in line for line in panel.logs)
    assert not panel.logic.requestTiming(p)  # a failure is not retried until the packages change
    assert started == [("us", True), ("other-us", True)]
