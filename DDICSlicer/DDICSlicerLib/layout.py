"""Ultrasound left, pseudo-MRI right, linked and fitted — and one click back to the user's own layout.

Side by side is Slicer's built-in layout 29 (Red + Yellow, both axial; vtkMRMLLayoutLogic); each view
gets its own background volume through its slice composite node, since ``setSliceViewerLayers``
would set the same volume in every view.
"""

from __future__ import annotations

LEFT_VIEW, RIGHT_VIEW = "Red", "Yellow"


class SideBySide:
    """Remembers the layout it replaced so :meth:`restore` can go back to it."""

    def __init__(self):
        self.previous_layout = None

    @property
    def active(self) -> bool:
        return self.previous_layout is not None

    def show(self, left_volume, right_volume) -> None:
        import slicer

        manager = slicer.app.layoutManager()
        if manager is None:  # no GUI (PythonSlicer, --no-main-window)
            return
        side_by_side = slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView
        if manager.layout != side_by_side and self.previous_layout is None:
            self.previous_layout = manager.layout
        manager.setLayout(side_by_side)
        for view, volume in ((LEFT_VIEW, left_volume), (RIGHT_VIEW, right_volume)):
            widget = manager.sliceWidget(view)
            if widget is None or volume is None:
                continue
            logic = widget.sliceLogic()
            composite = logic.GetSliceCompositeNode()
            composite.SetBackgroundVolumeID(volume.GetID())
            composite.SetForegroundVolumeID(None)
            composite.SetLinkedControl(True)  # pan/zoom in one view follows in the other
            logic.GetSliceNode().RotateToVolumePlane(volume)
            logic.FitSliceToBackground()

    def restore(self) -> None:
        import slicer

        manager = slicer.app.layoutManager()
        if manager is not None and self.previous_layout is not None:
            manager.setLayout(self.previous_layout)
        self.previous_layout = None

    def toggle(self, left_volume, right_volume) -> bool:
        """Show side by side, or go back; returns whether side by side is now shown."""
        if self.active:
            self.restore()
            return False
        self.show(left_volume, right_volume)
        return True
