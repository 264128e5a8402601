"""Markups ↔ frame pixels in the panel's helpers, against numpy stand-ins that follow MRML's conventions.

What is reproduced from Slicer's source (Slicer/Slicer 583e9b37d5), see ``slicer_stand_ins.py``:

* Libs/MRML/Core/vtkMRMLMarkupsROINode.cxx — ObjectToWorld = NodeToWorld · ObjectToNode
  (UpdateObjectToWorldMatrix); GetCenter() is ObjectToNode's translation, so ObjectToWorld already holds
  the centre; the box is a cube of side Size around the object origin (CreateROIBoxPolyDataWorld).
* Libs/MRML/Core/vtkMRMLVolumeNode.cxx GetIJKToRASMatrix — [directions · spacing | origin]; a frame read
  from an LPS file (NRRD/DICOM) gets directions with x and y negated.
* Libs/MRML/Core/vtkMRMLTransformNode.cxx GetTransformBetweenNodes(source, target) — node coordinates
  under ``source`` → under ``target``, None = world.
* vtkMRMLMarkupsNode.h PositionStatus; Base/Python/slicer/util.py arrayFromMarkupsControlPoints returns
  every control point whatever its status.

Each geometry: the frame of the self-test (800 × 540, 0.1687 mm), plain, LPS-flipped, oblique, and
oblique under a parent transform (the markups under another one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import slicer_stand_ins as si

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DDICSlicer"))

SPACING = 0.168735453677
SHAPE = (540, 800)  # rows, columns

GEOMETRIES = {
    "plain": dict(directions=np.eye(3), origin=(0.0, 0.0, 0.0), parent=None, markups_parent=None),
    "lps": dict(directions=si.LPS_TO_RAS, origin=(-0.0, -0.0, 0.0), parent=None, markups_parent=None),
    "oblique": dict(directions=si.LPS_TO_RAS @ si.rotation([0.2, 0.1, 1.0], 25.0), origin=(12.0, -7.0, 33.0),
                    parent=None, markups_parent=None),
    "parent transform": dict(directions=si.LPS_TO_RAS @ si.rotation([0.2, 0.1, 1.0], 25.0),
                             origin=(12.0, -7.0, 33.0),
                             parent=si.rigid(si.rotation([1.0, 1.0, 0.0], 40.0), (5.0, -3.0, 9.0)),
                             markups_parent=si.rigid(si.rotation([0.0, 0.3, 1.0], -15.0), (-2.0, 4.0, 1.0))),
}


@pytest.fixture(params=list(GEOMETRIES), ids=list(GEOMETRIES))
def scene(request, monkeypatch):
    slicer = si.install(monkeypatch)
    g = GEOMETRIES[request.param]
    parent = si.TransformNode(g["parent"]) if g["parent"] is not None else None
    markups_parent = si.TransformNode(g["markups_parent"]) if g["markups_parent"] is not None else None
    frame = (np.arange(SHAPE[0] * SHAPE[1]) % 251).reshape(1, *SHAPE).astype(np.uint8)
    volume = si.VolumeNode(frame, spacing=(SPACING, SPACING, 1.0), origin=g["origin"],
                           directions=g["directions"], parent=parent)
    return slicer, volume, markups_parent


def pixel_to_world(volume, x, y, k=0.0):
    ras = volume.ijk_to_ras() @ np.array([x, y, k, 1.0])
    return (si.to_world_of(volume) @ ras)[:3]


def world_to_node(markups_parent, world):
    to_world = markups_parent.to_world() if markups_parent is not None else np.eye(4)
    return (np.linalg.inv(to_world) @ np.array([*world, 1.0]))[:3]


def roi_on_pixels(volume, markups_parent, cx, cy, width, height):
    """An ROI the user drew over pixels [cx ± width/2] × [cy ± height/2], aligned with the image axes."""
    to_world = si.to_world_of(volume)[:3, :3] @ volume.directions  # image axes in world
    node_from_world = np.linalg.inv(markups_parent.to_world())[:3, :3] if markups_parent is not None else np.eye(3)
    axes = node_from_world @ to_world
    center = world_to_node(markups_parent, pixel_to_world(volume, cx, cy))
    return si.ROINode(center=center, size=(width * SPACING, height * SPACING, 1.0), axes=axes,
                      parent=markups_parent)


def test_roi_becomes_the_pixel_box_under_it(scene):
    """The issue's case: on the 800×540 frame the box must land around 409,266–418,276, not off the image."""
    from DDICSlicerLib import cnr

    _slicer, volume, markups_parent = scene
    roi = roi_on_pixels(volume, markups_parent, cx=413.3, cy=270.7, width=9.0, height=10.0)
    box = cnr.roi_to_box(roi, volume)
    # pixel centres inside x ∈ [408.8, 417.8], y ∈ [265.7, 275.7] (half-open box)
    assert (box.x0, box.y0, box.x1, box.y1) == (409, 266, 418, 276)


def test_prompt_box_is_the_roi_in_pixels(scene):
    from DDICSlicerLib import segments

    _slicer, volume, markups_parent = scene
    roi = roi_on_pixels(volume, markups_parent, cx=300.0, cy=200.0, width=120.0, height=80.0)
    assert segments.prompt_box(volume, roi) == pytest.approx([240.0, 160.0, 360.0, 240.0], abs=1e-6)


def test_a_box_still_being_placed_is_no_prompt(scene):
    from DDICSlicerLib import segments

    _slicer, volume, markups_parent = scene
    roi = roi_on_pixels(volume, markups_parent, cx=300.0, cy=200.0, width=120.0, height=80.0)
    roi.statuses = [si.MarkupsNode.PositionPreview]
    assert segments.prompt_box(volume, roi) is None
    assert segments.prompt_box(volume, None) is None


def test_prompt_points_are_the_defined_points_in_pixels(scene):
    from DDICSlicerLib import segments

    _slicer, volume, markups_parent = scene
    inside = [(100.5, 200.25), (700.0, 30.0)]
    outside = [(640.0, 500.0)]

    def node(pixels, statuses):
        return si.MarkupsNode([world_to_node(markups_parent, pixel_to_world(volume, x, y)) for x, y in pixels],
                              statuses=statuses, parent=markups_parent)

    D, P, U = si.MarkupsNode.PositionDefined, si.MarkupsNode.PositionPreview, si.MarkupsNode.PositionUndefined
    positive = node(inside + [(5.0, 5.0), (0.0, 0.0)], [D, D, P, U])  # a preview and an undefined point
    negative = node(outside + [(1.0, 1.0)], [D, si.MarkupsNode.PositionMissing])
    prompts = segments.prompt_points(volume, positive, negative)
    assert np.asarray(prompts) == pytest.approx(np.array([[100.5, 200.25, 1], [700.0, 30.0, 1], [640.0, 500.0, 0]]),
                                                abs=1e-6)


def test_ellipse_shown_then_fitted_is_the_same_ellipse(scene):
    """Detect/fit → show as a curve (world) → skull points placed on it → fit: the same ellipse back."""
    from DDICSlicerLib import volumes

    from ddic.geometry.ellipse import Ellipse

    _slicer, volume, markups_parent = scene
    ellipse = Ellipse(400.0, 270.0, 250.0, 180.0, 20.0)
    curve = volumes.show_ellipse(volume, ellipse, si.ClosedCurveNode())
    world = [curve.GetNthControlPointPositionWorld(i) for i in range(curve.GetNumberOfControlPoints())]
    skull = si.MarkupsNode([world_to_node(markups_parent, w) for w in world], parent=markups_parent)
    fitted = volumes.fit_ellipse_to_points(volume, skull)
    assert (fitted.cx, fitted.cy, fitted.a, fitted.b, fitted.angle_deg) == pytest.approx(
        (400.0, 270.0, 250.0, 180.0, 20.0), abs=1e-3)
    # and the curve lies on the frame where the ellipse is: its first point is at (cx + a·cos, cy + a·sin)
    first = world[0]
    expected = pixel_to_world(volume, 400.0 + 250.0 * np.cos(np.radians(20.0)), 270.0 + 250.0 * np.sin(np.radians(20.0)))
    assert np.asarray(first) == pytest.approx(expected, abs=1e-6)


def test_atrium_width_uses_the_pixel_size_override(monkeypatch):
    """PNG frames load with 1 mm pixels; with the override set, widths are in the real pixel size."""
    from DDICSlicerLib import segments

    si.install(monkeypatch)
    mask = np.zeros((200, 200), bool)
    mask[60:140, 80:120] = True  # a 40-px-wide bar
    volume = si.VolumeNode(mask[None].astype(np.uint8), spacing=(1.0, 1.0, 1.0))
    natural = segments.atrium_width_mm(mask, volume)
    override = segments.atrium_width_mm(mask, volume, pixel_size_mm=0.2)
    assert natural is not None and override is not None
    assert override.width_mm == pytest.approx(natural.width_mm * 0.2, rel=1e-6)
