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
from pathlib import Path

import numpy as np

from .cnr import luminance

ELLIPSE_CURVE_POINTS = 72


def is_vector(volume_node) -> bool:
    return volume_node is not None and volume_node.IsA("vtkMRMLVectorVolumeNode")


def write_frame(volume_node, path: str | os.PathLike) -> Path:
    """Write a one-frame scalar NRRD of ``volume_node`` (RGB → luminance) with its geometry."""
    import slicer
    import vtk

    path = Path(path)
    node = volume_node
    temporary = None
    if is_vector(volume_node):
        temporary = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "DDIC temporary luminance")
        temporary.HideFromEditorsOn()
        matrix = vtk.vtkMatrix4x4()
        volume_node.GetIJKToRASMatrix(matrix)
        temporary.SetIJKToRASMatrix(matrix)
        gray = luminance(slicer.util.arrayFromVolume(volume_node)).astype(np.float32)
        slicer.util.updateVolumeFromArray(temporary, gray)
        node = temporary
    try:
        if not slicer.util.saveNode(node, str(path), {"useCompression": 0}):
            raise RuntimeError(f"Could not write the frame to {path}; check free disk space in the temporary folder.")
    finally:
        if temporary is not None:
            slicer.mrmlScene.RemoveNode(temporary)
    return path


def sequence_of_proxy(volume_node):
    """(browser, master sequence) if ``volume_node`` is the proxy of a sequence browser, else (None, None)."""
    import slicer

    if volume_node is None or not hasattr(slicer.modules, "sequences"):
        return None, None
    browser = slicer.modules.sequences.logic().GetFirstBrowserNodeForProxyNode(volume_node)
    if browser is None:
        return None, None
    return browser, browser.GetSequenceNode(volume_node)


def write_sequence_frames(sequence_node, folder: str | os.PathLike) -> list:
    """Write every frame of a volume sequence as ``frame_NNNN.nrrd``; returns the paths in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(sequence_node.GetNumberOfDataNodes()):
        paths.append(write_frame(sequence_node.GetNthDataNode(index), folder / f"frame_{index:04d}.nrrd"))
    return paths


def load_result(path: str | os.PathLike, input_node, name: str):
    """Load one pseudo-MRI as a new scalar volume with ``input_node``'s geometry, next to it."""
    import slicer
    import vtk

    node = slicer.util.loadVolume(str(path), {"singleFile": True, "show": False, "name": name})
    matrix = vtk.vtkMatrix4x4()
    input_node.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)  # exactly the ultrasound's grid, whatever the file format kept
    if input_node.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(input_node.GetParentTransformNode().GetID())
    place_beside(node, input_node)
    display = node.GetDisplayNode()
    if display is not None:
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
    return node


def place_beside(node, reference_node) -> None:
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    parent = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(reference_node))
    hierarchy.SetItemParent(hierarchy.GetItemByDataNode(node), parent)


def results_to_sequence(paths: list, browser, input_sequence, name: str):
    """Put translated frames into a new sequence synchronised with ``browser`` (same index values)."""
    import slicer

    sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName(input_sequence.GetIndexName())
    sequence.SetIndexUnit(input_sequence.GetIndexUnit())
    for index, path in enumerate(paths):
        frame = slicer.util.loadVolume(str(path), {"singleFile": True, "show": False})
        reference = input_sequence.GetNthDataNode(index)
        frame.CopyOrientation(reference)
        sequence.SetDataNodeAtValue(frame, input_sequence.GetNthIndexValue(index))
        slicer.mrmlScene.RemoveNode(frame)
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
    """Automatic skull ellipse through the engine (``ddic.geometry.ellipse.detect_skull_ellipse``)."""
    from ddic.geometry.ellipse import detect_skull_ellipse

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
    """Draw ``ellipse`` (frame pixels) as a closed curve over the frame; returns the curve node."""
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
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    points = vtk.vtkPoints()
    for xi, yi in zip(x, y):
        points.InsertNextPoint(ijk_to_ras.MultiplyPoint([float(xi), float(yi), 0.0, 1.0])[:3])
    curve_node.SetControlPointPositionsWorld(points)
    curve_node.SetLocked(True)
    return curve_node


def ellipse_text(ellipse) -> str:
    return f"{ellipse.cx:.1f},{ellipse.cy:.1f},{ellipse.a:.1f},{ellipse.b:.1f},{ellipse.angle_deg:.1f}"


def parse_ellipse(text: str):
    values = [float(v) for v in text.split(",")] if text else []
    return tuple(values) if len(values) == 5 else None
