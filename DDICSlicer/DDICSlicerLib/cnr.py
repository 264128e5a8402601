"""CNR table from two Markups ROIs, measured by the engine (``ddic.measure``) on both images.

The ROIs become pixel boxes of the ultrasound grid (the pseudo-MRI shares it), so the ultrasound and
the pseudo-MRI are measured on exactly the same pixels. Numbers come from ``ddic.measure.measure_pair``
(CNR of method.md eq. 14 with sample SD, ddof = 1, and gCNR); this module only moves them into a table.
"""

from __future__ import annotations

import numpy as np

from .segments import roi_corners_world

COLUMNS = ("Image", "ROI mean", "ROI SD", "Background mean", "Background SD", "CNR", "gCNR")


def roi_to_box(roi_node, volume_node):
    """A Markups ROI → ``ddic.measure.PixelBox`` on the volume's grid (clipped to the image)."""
    import slicer
    import vtk
    from ddic.measure import box_from_physical

    corners = roi_corners_world(roi_node)
    if volume_node.GetParentTransformNode() is not None:  # bring the corners into the volume's frame
        transform = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volume_node.GetParentTransformNode(), transform)
        corners = np.asarray([transform.TransformPoint(c) for c in corners])
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASDirectionMatrix(matrix)
    directions = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    shape = slicer.util.arrayFromVolume(volume_node).shape[-2:]
    return box_from_physical(corners, volume_node.GetOrigin(), volume_node.GetSpacing(), directions,
                             shape=shape, name=roi_node.GetName())


def frame_array(volume_node) -> np.ndarray:
    """(H, W) float array of a one-slice volume (RGB → luminance)."""
    import slicer

    array = np.asarray(slicer.util.arrayFromVolume(volume_node), dtype=np.float64)
    if array.ndim == 4:  # (1, H, W, C)
        array = luminance(array)
    return array[0] if array.ndim == 3 else array


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of the last axis (RGB or RGBA), as Slicer's VectorToScalarVolume LUMINANCE."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def measure(us_volume, pseudo_mri_volume, roi_node, background_node):
    """``ddic.measure.PairedContrast`` of the two ROIs on the ultrasound and the pseudo-MRI."""
    from ddic.measure import measure_pair

    roi = roi_to_box(roi_node, us_volume)
    background = roi_to_box(background_node, us_volume)
    return measure_pair(frame_array(us_volume), frame_array(pseudo_mri_volume), roi, background)


def update_table(table_node, paired) -> None:
    """Write a ``PairedContrast`` into ``table_node`` (one row per image, columns :data:`COLUMNS`)."""
    import slicer

    rows = [("Ultrasound", paired.us), ("Pseudo-MRI", paired.pseudo_mri)]
    with slicer.util.NodeModify(table_node):
        table_node.RemoveAllColumns()
        for name in COLUMNS:
            column = table_node.AddColumn()
            column.SetName(name)
        for label, m in rows:
            row = table_node.AddEmptyRow()
            values = (label, m.roi.mean, m.roi.sd, m.background.mean, m.background.sd, m.cnr, m.gcnr)
            for col, value in enumerate(values):
                table_node.SetCellText(row, col, value if isinstance(value, str) else _fmt(value))


def _fmt(value) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.3f}"
