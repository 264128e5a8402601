"""Frame ⇄ model grid by fitting the whole frame into a square (no head detection).

The model works on an S×S grid. A frame that already is S×S is used as it is (no interpolation); any
other frame is resampled (linear, SimpleITK) onto an S×S grid centred on the frame that covers its
longer side, padding the shorter one with the frame's minimum; the result is resampled back onto the
frame's own grid and geometry afterwards. The head-ellipse canonical transform (issue "canonical
geometry") has the same two methods and replaces this one when a head is found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.images import Frame


@dataclass
class SquareFit:
    """The invertible map between one frame's grid and an S×S model grid, as SimpleITK reference images."""

    frame: Frame
    size: int

    @property
    def is_identity(self) -> bool:
        return self.frame.shape == (self.size, self.size)

    def _model_grid(self):
        import SimpleITK as sitk

        image = self.frame.image2d
        width, height = image.GetSize()
        spacing_x, spacing_y = image.GetSpacing()
        side_mm = max(width * spacing_x, height * spacing_y)
        spacing = side_mm / self.size
        centre = image.TransformContinuousIndexToPhysicalPoint(((width - 1) / 2.0, (height - 1) / 2.0))
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(2, 2)
        half = spacing * (self.size - 1) / 2.0
        origin = np.asarray(centre) - direction @ np.array([half, half])
        grid = sitk.Image(self.size, self.size, sitk.sitkFloat32)
        grid.SetSpacing((spacing, spacing))
        grid.SetOrigin(tuple(float(v) for v in origin))
        grid.SetDirection(image.GetDirection())
        return grid

    def to_model(self, pixels: np.ndarray | None = None) -> np.ndarray:
        """Frame pixels (default: the frame's own) → (S, S) float32 on the model grid."""
        import SimpleITK as sitk

        pixels = self.frame.pixels if pixels is None else np.asarray(pixels, dtype=np.float32)
        if self.is_identity:
            return pixels.astype(np.float32, copy=True)
        source = sitk.GetImageFromArray(pixels.astype(np.float32))
        source.CopyInformation(self.frame.image2d)
        fill = float(np.min(pixels))
        resampled = sitk.Resample(source, self._model_grid(), sitk.Transform(), sitk.sitkLinear, fill,
                                  sitk.sitkFloat32)
        return sitk.GetArrayFromImage(resampled)

    def to_frame(self, model_pixels: np.ndarray) -> np.ndarray:
        """(S, S) model-grid pixels → the frame's grid (H, W) float32."""
        import SimpleITK as sitk

        model_pixels = np.asarray(model_pixels, dtype=np.float32)
        if self.is_identity:
            return model_pixels.copy()
        source = sitk.GetImageFromArray(model_pixels)
        source.CopyInformation(self._model_grid())
        resampled = sitk.Resample(source, self.frame.image2d, sitk.Transform(), sitk.sitkLinear,
                                  float(model_pixels.min()), sitk.sitkFloat32)
        return sitk.GetArrayFromImage(resampled)
