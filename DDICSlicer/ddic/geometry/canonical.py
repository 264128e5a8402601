"""The canonical head image: the one place its size and pixel spacing are defined.

The paper preprocesses both domains to 128×128 px at 1.094 mm/px (a 140 mm field of view around the
head). A model trained at another size keeps the same field of view, so its spacing follows from it.
"""

CANONICAL_SIZE_PX = 128
CANONICAL_SPACING_MM = 1.094
CANONICAL_FIELD_OF_VIEW_MM = CANONICAL_SIZE_PX * CANONICAL_SPACING_MM

HEAD_MASK_MARGIN_MM = 2.0
"""*[decision]* Canonical US pixels farther than this outside the skull ellipse are zeroed, in the
training data (``ddic prepare``) and at translation alike, so the models never see maternal tissue."""


def spacing_for_size(image_size: int) -> float:
    """Pixel spacing (mm) of a canonical image resampled to ``image_size`` pixels a side."""
    return CANONICAL_FIELD_OF_VIEW_MM / int(image_size)

CANONICAL_ORIENTATION = "midline horizontal; occiput (atria) at the left edge, frontal horns and CSP at the right"
"""*[decision]* method.md §5: "third ventricle horizontal and lateral ventricles on the left". The image x
axis runs posterior → anterior and the head centre sits at the image centre."""
