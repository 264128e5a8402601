"""Segmentation targets with fixed names and colours, prompts from markups, masks into segments.

Fixed names and colours make a saved scene, a screenshot and the README agree: a proximal lateral
ventricle is always the same blue whoever segmented it. Prompts are read in the ultrasound's pixel
grid (x = I = column, y = J = row), which is also the pseudo-MRI's grid (it is written with the
ultrasound's geometry), so points placed on either view mean the same pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Target:
    key: str
    name: str
    color: tuple  # RGB 0…1
    ventricle: bool


TARGETS = (
    Target("proximal_ventricle", "Proximal lateral ventricle", (0.12, 0.47, 0.71), True),
    Target("distal_ventricle", "Distal lateral ventricle", (0.17, 0.63, 0.17), True),
    Target("proximal_sylvian", "Proximal Sylvian fissure", (1.00, 0.50, 0.05), False),
    Target("distal_sylvian", "Distal Sylvian fissure", (0.84, 0.15, 0.16), False),
)
TARGET_NAMES = tuple(t.name for t in TARGETS)
POSITIVE_COLOR, NEGATIVE_COLOR, BOX_COLOR = (0.1, 0.9, 0.1), (0.95, 0.1, 0.1), (1.0, 0.85, 0.0)


def target_by_name(name: str) -> Target:
    for target in TARGETS:
        if target.name == name:
            return target
    raise ValueError(f"Unknown target {name!r}; choose one of: {', '.join(TARGET_NAMES)}.")


def ensure_segment(segmentation_node, target: Target) -> str:
    """The segment id of ``target`` in the node, created (empty, with its colour) if absent."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(target.name)
    if not segment_id:
        segment_id = segmentation.AddEmptySegment(target.key, target.name, list(target.color))
    return segment_id


def ras_to_ijk_points(volume_node, ras_points) -> np.ndarray:
    """World RAS points (N, 3) → continuous IJK (N, 3) of ``volume_node``, through its parent transforms."""
    import slicer
    import vtk

    points = np.atleast_2d(np.asarray(ras_points, dtype=float))
    if points.size == 0:
        return np.zeros((0, 3))
    transform = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volume_node.GetParentTransformNode(), transform)
    ras_to_ijk = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(ras_to_ijk)
    out = []
    for p in points:
        local = transform.TransformPoint(p[:3])
        out.append(ras_to_ijk.MultiplyPoint([*local, 1.0])[:3])
    return np.asarray(out)


def control_points(markups_node) -> np.ndarray:
    """World positions (N, 3) of the *defined* control points of a point list.

    A point being placed (preview) or without a position (undefined, missing) is not a prompt:
    ``slicer.util.arrayFromMarkupsControlPoints`` returns every control point whatever its status
    (Base/Python/slicer/util.py), so the status is checked here (vtkMRMLMarkupsNode.h, PositionStatus).
    """
    if markups_node is None:
        return np.zeros((0, 3))
    defined = markups_node.PositionDefined
    out = []
    for index in range(markups_node.GetNumberOfControlPoints()):
        if markups_node.GetNthControlPointPositionStatus(index) == defined:
            position = np.zeros(3)  # filled in place, as slicer.util.arrayFromMarkupsControlPoints does
            markups_node.GetNthControlPointPositionWorld(index, position)
            out.append(position)
    return np.asarray(out, dtype=float).reshape(-1, 3)


def prompt_points(volume_node, positive_node, negative_node) -> list:
    """``[[x, y, label], ...]`` in frame pixels; label 1 = inside, 0 = outside."""
    prompts = []
    for node, label in ((positive_node, 1), (negative_node, 0)):
        for i, j, _k in ras_to_ijk_points(volume_node, control_points(node)):
            prompts.append([float(i), float(j), label])
    return prompts


def roi_corners_world(roi_node) -> np.ndarray:
    """The eight world corners (8, 3) of a Markups ROI (rotated and transformed ROIs included).

    vtkMRMLMarkupsROINode.cxx: ObjectToWorld = NodeToWorld · ObjectToNode, and the centre is
    ObjectToNode's translation, so ObjectToWorld already holds it; the box is a cube of side ``Size``
    around the *object* origin (CreateROIBoxPolyDataWorld). Adding the centre again would move the box.
    """
    import vtk

    size = [0.0, 0.0, 0.0]
    roi_node.GetSize(size)
    to_world = vtk.vtkMatrix4x4()
    to_world.DeepCopy(roi_node.GetObjectToWorldMatrix())
    corners = []
    for sx in (-0.5, 0.5):
        for sy in (-0.5, 0.5):
            for sz in (-0.5, 0.5):
                corners.append(to_world.MultiplyPoint([sx * size[0], sy * size[1], sz * size[2], 1.0])[:3])
    return np.asarray(corners)


def roi_is_placed(roi_node) -> bool:
    """A box the user has finished placing: it has control points and all of them are defined.

    While a box ROI is being placed its second point is a preview (vtkMRMLMarkupsROINode.cxx,
    UpdateBoxROIFromControlPoints); once placed it keeps one defined point at its centre.
    """
    if roi_node is None:
        return False
    count = roi_node.GetNumberOfControlPoints()
    return count > 0 and roi_node.GetNumberOfDefinedControlPoints() == count


def prompt_box(volume_node, roi_node):
    """``[x0, y0, x1, y1]`` (frame pixels) of a placed box ROI, or None when there is none."""
    if not roi_is_placed(roi_node):
        return None
    ijk = ras_to_ijk_points(volume_node, roi_corners_world(roi_node))
    x0, y0 = ijk[:, :2].min(axis=0)
    x1, y1 = ijk[:, :2].max(axis=0)
    return [float(x0), float(y0), float(x1), float(y1)]


def write_mask(segmentation_node, target: Target, mask: np.ndarray, reference_volume) -> str:
    """Replace the target's segment with ``mask`` (H, W) on the reference (ultrasound) geometry."""
    import slicer

    if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    segment_id = ensure_segment(segmentation_node, target)
    data = (np.asarray(mask) > 0).astype(np.uint8)
    if data.ndim == 2:
        data = data[np.newaxis]
    with slicer.util.RenderBlocker():
        slicer.util.updateSegmentBinaryLabelmapFromArray(data, segmentation_node, segment_id, reference_volume)
    return segment_id


def atrium_width_mm(mask: np.ndarray, volume_node, pixel_size_mm: float | None = None):
    """Atrium width of a ventricle mask through the engine (``ddic.measure.atrium_width``), or None.

    ``pixel_size_mm`` is the panel's pixel-size override: picture files load with 1 mm pixels, so when
    the user gives the real size, that size (not the node's spacing) is the one to measure with.
    """
    from ddic.errors import DDICInputError
    from ddic.measure import atrium_width

    if pixel_size_mm:
        spacing_xy = (float(pixel_size_mm), float(pixel_size_mm))
    else:
        spacing = volume_node.GetSpacing()
        spacing_xy = (spacing[0], spacing[1])
    try:
        return atrium_width(np.asarray(mask) > 0, spacing_xy=spacing_xy)
    except DDICInputError:
        return None
