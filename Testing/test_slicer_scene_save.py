"""Frames go to the engine and results come back without touching what a scene save will write.

Slicer semantics reproduced in ``slicer_stand_ins.py`` (Slicer/Slicer 583e9b37d5):

* ``slicer.util.saveNode`` → Base/QTGUI/qSlicerNodeWriter.cxx write(): looks the node up by ID in the
  *main* scene (getNodeByID) and points the node's own storage node at the file (SetFileName) — so a
  user's input would later be saved as a reference to a deleted temporary file, and a sequence's data
  nodes (which live in the sequence's own scene, vtkMRMLSequenceNode.cxx SetDataNodeAtValue →
  DeepCopyNodeToScene) cannot be written at all.
* vtkMRMLStorableNode::GetModifiedSinceRead: a node without storage node counts as modified, so a
  scene save writes its data.
* Selecting a browser item updates the proxy node (vtkSlicerSequencesLogic::ProcessMRMLNodesEvents →
  UpdateProxyNodesFromSequences).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import slicer_stand_ins as si

MODULE_DIR = Path(__file__).resolve().parents[1] / "DDICSlicer"
sys.path.insert(0, str(MODULE_DIR))
SLICER_LAYER = [MODULE_DIR / "DDICSlicer.py", *sorted((MODULE_DIR / "DDICSlicerLib").glob("*.py"))]


@pytest.fixture
def slicer(monkeypatch):
    return si.install(monkeypatch)


def frame(seed, shape=(6, 9)):
    return (np.random.default_rng(seed).random((1, *shape)) * 200).astype(np.float32)


def test_writing_a_frame_leaves_the_users_node_alone(slicer, tmp_path):
    from DDICSlicerLib.volumes import write_frame

    user = slicer.mrmlScene.AddNode(si.VolumeNode(frame(1), spacing=(0.3, 0.3, 1.0), directions=si.LPS_TO_RAS))
    path = write_frame(user, tmp_path / "in" / "frame.nrrd")
    assert slicer.util.saved == [], "saveNode re-points the user's storage node at a temporary file"
    assert user.GetStorageNode() is None and user.calls == []
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), frame(1))
    assert si.StorageNode.written[0][0] == str(path)
    assert np.allclose(si.StorageNode.written[0][2], user.ijk_to_ras())


def test_an_rgb_frame_is_written_as_luminance_without_adding_nodes(slicer, tmp_path):
    from DDICSlicerLib.volumes import write_frame

    rgb = np.zeros((1, 4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 50, 10
    user = slicer.mrmlScene.AddNode(si.VectorVolumeNode(rgb))
    before = dict(slicer.mrmlScene.nodes)
    path = write_frame(user, tmp_path / "frame.nrrd")
    assert slicer.mrmlScene.nodes == before and slicer.util.saved == []
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert written.shape == (1, 4, 5) and np.allclose(written, 100 * 0.299 + 50 * 0.587 + 10 * 0.114, atol=1e-3)


def make_sequence(slicer, n=3, selected=1):
    master = si.SequenceNode("US sequence", index_name="frame", index_unit="")
    for i in range(n):
        item = si.VolumeNode(frame(10 + i), spacing=(0.2 + 0.01 * i, 0.2 + 0.01 * i, 1.0), name=f"item {i}")
        master.SetDataNodeAtValue(item, str(i * 40))
    proxy = slicer.mrmlScene.AddNode(si.VolumeNode(name="US"))
    browser = si.SequenceBrowserNode(master, proxy, selected=selected)
    browser.playback = True
    return master, proxy, browser


def test_sequence_frames_are_written_by_stepping_the_browser(slicer, tmp_path):
    """Break 3: the data nodes are not in the main scene; the proxy of each selected item is."""
    from DDICSlicerLib.volumes import write_sequence_frames

    master, proxy, browser = make_sequence(slicer)
    frames = write_sequence_frames(browser, proxy, tmp_path / "frames")
    assert slicer.util.saved == []
    assert [f.index_value for f in frames] == ["0", "40", "80"]
    for i, f in enumerate(frames):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(f.path))), master.GetNthDataNode(i).array)
        assert np.allclose(f.ijk_to_ras, master.GetNthDataNode(i).ijk_to_ras())
    assert browser.GetSelectedItemNumber() == 1 and browser.GetPlaybackActive() is True  # as the user left it


def test_saving_a_sequence_data_node_would_fail(slicer, tmp_path):
    """Why the old way broke: the writer cannot find a sequence data node in the main scene."""
    master, _proxy, _browser = make_sequence(slicer)
    assert slicer.util.saveNode(master.GetNthDataNode(0), str(tmp_path / "x.nrrd")) is False


def write_result(path, pixels):
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


def test_a_result_survives_a_scene_save(slicer, tmp_path):
    """The pseudo-MRI is loaded from a folder that is deleted: it must not keep a storage node there."""
    from DDICSlicerLib.volumes import load_result

    parent = si.TransformNode(si.rigid(si.rotation([0, 0, 1], 30), (1, 2, 3)))
    user = slicer.mrmlScene.AddNode(si.VolumeNode(frame(2), spacing=(0.3, 0.3, 1.0), origin=(4, 5, 6),
                                                  directions=si.LPS_TO_RAS, parent=parent))
    pixels = frame(3)[0]
    node = load_result(write_result(tmp_path / "pmri.nrrd", pixels), user, "US pseudo-MRI")
    assert slicer.util.loaded == [] and node.GetStorageNode() is None and node.GetModifiedSinceRead()
    assert np.array_equal(node.array, pixels[None])
    assert np.allclose(node.ijk_to_ras(), user.ijk_to_ras())
    assert ("SetAndObserveTransformNodeID", parent.GetID()) in node.calls
    assert node.GetDisplayNode().color_node == "vtkMRMLColorTableNodeGrey"
    assert node.scene is slicer.mrmlScene


def test_translated_frames_become_a_synchronised_sequence(slicer, tmp_path):
    from DDICSlicerLib.volumes import results_to_sequence, write_sequence_frames

    master, proxy, browser = make_sequence(slicer)
    frames = write_sequence_frames(browser, proxy, tmp_path / "frames")
    outputs = [write_result(tmp_path / f"out{i}.nrrd", frame(20 + i)[0]) for i in range(len(frames))]
    sequence, result_proxy = results_to_sequence(outputs, frames, browser, "US pseudo-MRI")
    assert slicer.util.loaded == [] and slicer.util.saved == []
    assert [sequence.GetNthIndexValue(i) for i in range(3)] == ["0", "40", "80"]
    assert sequence.GetIndexName() == "frame"
    for i in range(3):
        assert np.array_equal(sequence.GetNthDataNode(i).array, frame(20 + i))
        assert np.allclose(sequence.GetNthDataNode(i).ijk_to_ras(), master.GetNthDataNode(i).ijk_to_ras())
    assert result_proxy.GetName() == "US pseudo-MRI" and browser.save_changes[sequence.id] is False
    with pytest.raises(RuntimeError, match="2 translated frames came back for 3"):
        results_to_sequence(outputs[:2], frames, browser, "x")


def calls_named(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.name}:{n.lineno} {n.func.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in names]


@pytest.mark.parametrize("path", SLICER_LAYER, ids=lambda p: p.name)
def test_no_save_node_and_no_sequence_data_node_access(path):
    """AST rule: saveNode re-points user nodes (qSlicerNodeWriter.cxx); sequence data nodes are reached
    through the browser's proxy only."""
    assert calls_named(path, {"saveNode", "GetNthDataNode"}) == []
