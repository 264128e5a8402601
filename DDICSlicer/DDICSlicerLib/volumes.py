"""Volumes in and out of the engine: frames written for the worker, results read back beside their input.

* Any scalar or RGB volume is accepted; RGB becomes luminance (BT.601) before translation, since the
  models are single-channel.
* The proxy volume of a sequence browser can be translated frame by frame in one run; the results
  become a new sequence synchronised with the input's browser.
* A result always becomes a new node (an input is never overwritten) with the ultrasound's IJK→RAS
  geometry, placed in the same subject-hierarchy folder as its input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cnr import luminance

ELLIPSE_CURVE_POINTS = 72


def is_vector(volume_node) -> bool:
    return volume_node is not None and volume_node.IsA("vtkMRMLVectorVolumeNode")


def ijk_to_ras(volume_node) -> list:
    """The node's IJK→RAS matrix as 4 rows of 4 floats."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return [[matrix.GetElement(r, c) for c in range(4)] for r in range(4)]


def _matrix(rows):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(rows[r][c]))
    return matrix


def write_frame(volume_node, path: str | os.PathLike) -> Path:
    """Write a one-frame scalar NRRD of ``volume_node`` (RGB → luminance) with its geometry.

    Written through a storage node of our own, never ``slicer.util.saveNode``: the node writer
    (Base/QTGUI/qSlicerNodeWriter.cxx, write()) points the node's *own* storage node at the file, so a
    later scene save would refer to this temporary file after it is deleted, and it looks the node up in
    the main scene, which does not hold a sequence's data nodes. A standalone storage node writes the
    data and leaves the user's node untouched (as lassoan/SlicerTotalSegmentator and
    SlicerMONAIAuto3DSeg write their inputs).
    """
    import slicer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    node = volume_node
    if is_vector(volume_node):  # a standalone scalar copy, never added to the scene
        node = slicer.vtkMRMLScalarVolumeNode()
        node.SetIJKToRASMatrix(_matrix(ijk_to_ras(volume_node)))
        slicer.util.updateVolumeFromArray(node, luminance(slicer.util.arrayFromVolume(volume_node)).astype(np.float32))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.UseCompressionOff()
    if not storage.WriteData(node):
        raise RuntimeError(f"Could not write the frame to {path}; check free disk space in the temporary folder.")
    return path


def sequence_of_proxy(volume_node):
    """(browser, sequence) if ``volume_node`` is the proxy of a sequence browser, else (None, None)."""
    import slicer

    if volume_node is None or not hasattr(slicer.modules, "sequences"):
        return None, None
    browser = slicer.modules.sequences.logic().GetFirstBrowserNodeForProxyNode(volume_node)
    if browser is None:
        return None, None
    return browser, browser.GetSequenceNode(volume_node)


@dataclass(frozen=True)
class SequenceFrame:
    """One written item of a sequence: file, the browser's index value and the frame's IJK→RAS."""

    path: Path
    index_value: str
    ijk_to_ras: list


def write_sequence_frames(browser, proxy_node, folder: str | os.PathLike) -> list:
    """Write every item of ``browser`` as its ``proxy_node`` shows it; returns :class:`SequenceFrame` s in order.

    The browser is stepped item by item and the proxy written: the Sequences logic copies the selected
    item into the proxy node on every browser change (vtkSlicerSequencesLogic::ProcessMRMLNodesEvents →
    UpdateProxyNodesFromSequences), and the proxy lives in the main scene, unlike the sequence's data
    nodes. Playback is paused meanwhile and the browser goes back to the item it showed (the pattern of
    lassoan/SlicerTotalSegmentator's ``process``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    master = browser.GetMasterSequenceNode()
    selected, playing = browser.GetSelectedItemNumber(), browser.GetPlaybackActive()
    browser.SetPlaybackActive(False)
    frames = []
    try:
        for item in range(browser.GetNumberOfItems()):
            browser.SetSelectedItemNumber(item)
            path = write_frame(proxy_node, folder / f"frame_{item:04d}.nrrd")
            frames.append(SequenceFrame(path, master.GetNthIndexValue(item), ijk_to_ras(proxy_node)))
    finally:
        browser.SetSelectedItemNumber(selected)
        browser.SetPlaybackActive(playing)
    return frames


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """The (rows, columns) pixels of a one-frame image file (SimpleITK ships with Slicer)."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise RuntimeError(f"{path} is not a single 2D frame (array shape {array.shape}).")
    return array


def load_result(path: str | os.PathLike, input_node, name: str):
    """A new scalar volume with the pixels of ``path`` and exactly ``input_node``'s geometry, next to it.

    The pixels are copied into a node that has no storage node (the file is in a temporary folder that
    is removed afterwards): such a node counts as modified (vtkMRMLStorableNode::GetModifiedSinceRead),
    so a scene save writes its data instead of referring to the deleted file.
    """
    import slicer

    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, read_pixels(path))
    node.SetIJKToRASMatrix(_matrix(ijk_to_ras(input_node)))
    if input_node.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(input_node.GetParentTransformNode().GetID())
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
    place_beside(node, input_node)
    return node


def place_beside(node, reference_node) -> None:
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    parent = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(reference_node))
    hierarchy.SetItemParent(hierarchy.GetItemByDataNode(node), parent)


def results_to_sequence(paths: list, frames: list, browser, name: str, attributes: list | None = None):
    """Translated frames → a new sequence synchronised with ``browser`` (same index values and geometry).

    ``frames`` are the :class:`SequenceFrame` s the inputs were written as. Each result is copied into
    the sequence from a standalone node (SetDataNodeAtValue deep-copies it into the sequence's own
    scene, vtkMRMLSequenceNode.cxx), so nothing refers to the temporary files.
    """
    import slicer

    if len(paths) != len(frames):
        raise RuntimeError(f"{len(paths)} translated frames came back for {len(frames)} written; nothing was added.")
    master = browser.GetMasterSequenceNode()
    sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName(master.GetIndexName())
    sequence.SetIndexUnit(master.GetIndexUnit())
    for index, (path, frame) in enumerate(zip(paths, frames)):
        item = slicer.vtkMRMLScalarVolumeNode()
        item.SetName(name)
        for key, value in (attributes[index] if attributes else {}).items():
            item.SetAttribute(key, value)  # copied into the sequence, and into the proxy as it steps (CopyContent)
        slicer.util.updateVolumeFromArray(item, read_pixels(path))
        item.SetIJKToRASMatrix(_matrix(frame.ijk_to_ras))
        sequence.SetDataNodeAtValue(item, frame.index_value)
    browser.AddSynchronizedSequenceNode(sequence)
    browser.SetSaveChanges(sequence, False)
    proxy = browser.GetProxyNode(sequence)
    if proxy is not None:
        proxy.SetName(name)
    return sequence, proxy


# --- head ellipse ---------------------------------------------------------------------------------------------

def frame_pixels(volume_node) -> np.ndarray:
    """(H, W) float frame of a one-slice volume (RGB → luminance)."""
    import slicer

    array = np.asarray(slicer.util.arrayFromVolume(volume_node), dtype=np.float64)
    if array.ndim == 4:
        array = luminance(array)
    return array[0]


def detect_ellipse(volume_node, pixel_size_mm: float | None = None):
    """Automatic skull ellipse through the engine (``ddic.geometry.skull_detection.detect_skull_ellipse``)."""
    from ddic.geometry.skull_detection import detect_skull_ellipse

    spacing = pixel_size_mm or volume_node.GetSpacing()[0]
    return detect_skull_ellipse(frame_pixels(volume_node), float(spacing))


def fit_ellipse_to_points(volume_node, markups_node):
    """Ellipse through ≥ 5 skull points clicked on the frame (``ddic.geometry.ellipse.fit_ellipse``)."""
    from ddic.geometry.ellipse import fit_ellipse

    from .segments import control_points, ras_to_ijk_points

    ijk = ras_to_ijk_points(volume_node, control_points(markups_node))
    if len(ijk) < 5:
        raise ValueError(f"Place at least 5 points on the skull echo to fit the head ellipse ({len(ijk)} placed).")
    return fit_ellipse(ijk[:, :2])


def show_ellipse(volume_node, ellipse, curve_node=None):
    """Draw ``ellipse`` (frame pixels) as a closed curve over the frame; returns the curve node.

    Pixels → the volume's RAS (IJK→RAS) → world through the volume's parent transforms
    (vtkMRMLTransformNode::GetTransformBetweenNodes(parent, None)), since the curve's positions are
    set in world coordinates: :func:`fit_ellipse_to_points` reads them back the same way in reverse.
    """
    import slicer
    import vtk

    if curve_node is None:
        curve_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "DDIC head ellipse")
        curve_node.CreateDefaultDisplayNodes()
        curve_node.GetDisplayNode().SetSelectedColor(1.0, 0.85, 0.0)
        curve_node.GetDisplayNode().SetPointLabelsVisibility(False)
    t = np.linspace(0.0, 2.0 * np.pi, ELLIPSE_CURVE_POINTS, endpoint=False)
    c, s = np.cos(np.radians(ellipse.angle_deg)), np.sin(np.radians(ellipse.angle_deg))
    x = ellipse.cx + ellipse.a * np.cos(t) * c - ellipse.b * np.sin(t) * s
    y = ellipse.cy + ellipse.a * np.cos(t) * s + ellipse.b * np.sin(t) * c
    ijk_to_ras_matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras_matrix)
    to_world = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(volume_node.GetParentTransformNode(), None, to_world)
    points = vtk.vtkPoints()
    for xi, yi in zip(x, y):
        local = ijk_to_ras_matrix.MultiplyPoint([float(xi), float(yi), 0.0, 1.0])[:3]
        points.InsertNextPoint(to_world.TransformPoint(local))
    curve_node.SetControlPointPositionsWorld(points)
    curve_node.SetLocked(True)
    return curve_node


def pixels_to_world(volume_node, points_xy) -> list:
    """Frame pixels (x = column, y = row) → world positions: the volume's IJK→RAS, then its parent transforms
    (as :func:`show_ellipse` does)."""
    import slicer
    import vtk

    ijk_to_ras_matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras_matrix)
    to_world = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(volume_node.GetParentTransformNode(), None, to_world)
    return [to_world.TransformPoint(ijk_to_ras_matrix.MultiplyPoint([float(x), float(y), 0.0, 1.0])[:3])
            for x, y in points_xy]


def show_points(volume_node, points_xy, labels, node=None, name: str = "DDIC points"):
    """Labelled points over the frame (pixels), in a locked point list (made when ``node`` is None)."""
    import slicer

    if node is None or node.GetScene() is None:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        node.CreateDefaultDisplayNodes()
    node.RemoveAllControlPoints()
    for position, label in zip(pixels_to_world(volume_node, points_xy), labels):
        node.AddControlPointWorld(*position, label)
    node.SetLocked(True)
    return node


def set_box(roi_node, volume_node, box) -> None:
    """Make a box ROI cover the frame pixels ``box`` (x0, y0, x1, y1), aligned with the frame's axes: the ROI
    goes under the volume's parent transform and its object axes are the volume's IJK directions, so
    :func:`DDICSlicerLib.segments.prompt_box` reads the same pixels back (vtkMRMLMarkupsROINode.cxx: ObjectToNode
    = [axes | centre]; setting centre and size defines its one control point)."""
    import vtk

    x0, y0, x1, y1 = (float(v) for v in box)
    parent = volume_node.GetParentTransformNode()
    roi_node.SetAndObserveTransformNodeID(parent.GetID() if parent is not None else None)
    directions = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASDirectionMatrix(directions)
    roi_node.GetObjectToNodeMatrix().DeepCopy(directions)
    ijk_to_ras_matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras_matrix)
    roi_node.SetCenter(ijk_to_ras_matrix.MultiplyPoint([(x0 + x1) / 2.0, (y0 + y1) / 2.0, 0.0, 1.0])[:3])
    spacing = volume_node.GetSpacing()
    roi_node.SetSize((x1 - x0) * spacing[0], (y1 - y0) * spacing[1], spacing[2])


def ellipse_text(ellipse) -> str:
    return f"{ellipse.cx:.1f},{ellipse.cy:.1f},{ellipse.a:.1f},{ellipse.b:.1f},{ellipse.angle_deg:.1f}"


def parse_ellipse(text: str):
    values = [float(v) for v in text.split(",")] if text else []
    return tuple(values) if len(values) == 5 else None
