"""Measurements on 2D frames, pure numpy (+ scipy): regions (pixel boxes, masks), contrast (CNR, gCNR) and the
lateral-ventricle atrium width.

Why a package of its own: the CLI, the evaluation (:mod:`ddic.metrics`) and the Slicer panel all measure the
same way, on plain arrays, without torch, SimpleITK or Slicer (architecture.md).
"""

from .contrast import (  # noqa: F401
    ContrastMeasurement,
    PairedContrast,
    RegionStats,
    cnr,
    cnr_from_values,
    gcnr,
    gcnr_bins,
    gcnr_from_values,
    measure_contrast,
    measure_images,
    measure_pair,
    region_stats,
)
from .regions import (  # noqa: F401
    MIN_REGION_PIXELS,
    PixelBox,
    box_from_physical,
    continuous_index,
    lps_from_ras,
    region_mask,
    region_values,
)
from .width import WidthMeasurement, atrium_width, principal_axis  # noqa: F401
