"""Mask clean-up shared by the backends: one connected piece tied to the prompts, holes filled.

Both SAM and region growing produce stray islands (speckle, a neighbouring structure with similar
contrast). A prompt says which object is meant, so the piece kept is the largest connected component
that touches a positive point (contains it or one of its 8 neighbours); with only a box, the largest
component inside the box. The box is treated as a promise that the object lies inside it, so nothing
outside the box survives.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .prompts import Prompts

# 8-connectivity: thin oblique structures (a ventricle rim, the Sylvian fissure) stay in one piece
CONNECTIVITY = np.ones((3, 3), dtype=bool)
# a component "touches" a point when it reaches the point's pixel or one of its 8 neighbours: a click
# lands on a speckle grain or an edge pixel as often as not
TOUCH_RADIUS = 1


def restrict_to_box(mask: np.ndarray, prompts: Prompts) -> np.ndarray:
    """``mask`` with everything outside the prompt box cleared (unchanged without a box)."""
    slices = prompts.box_slices()
    if slices is None:
        return mask
    inside = np.zeros_like(mask, dtype=bool)
    inside[slices] = True
    return mask & inside


def keep_prompted_component(mask: np.ndarray, prompts: Prompts) -> np.ndarray:
    """The largest connected component of ``mask`` that touches a positive point (``TOUCH_RADIUS``).

    Without positive points (box only) the largest component is kept. When no component contains a
    positive point (the backend missed the click) the mask comes back empty rather than showing an
    unrelated structure.
    """
    mask = restrict_to_box(np.asarray(mask, dtype=bool), prompts)
    labels, count = ndimage.label(mask, structure=CONNECTIVITY)
    if count == 0:
        return mask
    if prompts.positive:
        r = TOUCH_RADIUS
        ids = {int(v) for x, y in prompts.pixel_points("positive")
               for v in labels[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].ravel()} - {0}
        if not ids:
            return np.zeros_like(mask)
    else:
        ids = set(range(1, count + 1))
    sizes = ndimage.sum_labels(mask, labels, index=sorted(ids))
    best = sorted(ids)[int(np.argmax(sizes))]
    return labels == best


def fill_holes(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_fill_holes(mask)


def clean_mask(mask: np.ndarray, prompts: Prompts) -> np.ndarray:
    """Fill holes, then keep the prompted component.

    Filling first means a click that fell on a dark speckle grain inside the object (a hole in the raw
    mask) still selects the object around it.
    """
    return keep_prompted_component(fill_holes(restrict_to_box(np.asarray(mask, dtype=bool), prompts)), prompts)
