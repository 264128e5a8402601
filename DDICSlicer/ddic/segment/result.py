"""What every backend returns: one chosen mask plus the evidence for the choice."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DDICInputError


@dataclass
class SegmentationResult:
    """A binary mask on the image's own grid and why it was chosen.

    ``score`` is the backend's confidence in [0, 1]: SAM's predicted IoU of the chosen mask, or for the
    classical backend the gCNR (histogram separability) between the mask and a ring around it.
    ``scores`` lists the scores of every candidate (three SAM masks with ``multimask``), ``chosen`` the
    index picked and ``reason`` a sentence saying why, so a user or a test can audit the choice.
    """

    mask: np.ndarray  # (H, W) bool
    score: float
    backend: str
    scores: tuple[float, ...] = ()
    chosen: int = 0
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def area_px(self) -> int:
        return int(self.mask.sum())

    def require_region(self) -> SegmentationResult:
        """This result, or a :class:`DDICInputError` when the mask is empty: finding nothing is a
        failure to report (and to exit non-zero for), not an empty result to save."""
        if not self.mask.any():
            raise DDICInputError(
                f"Segmentation ({self.backend}) found no region at the prompts ({self.reason}); no mask was "
                "written. Move the positive point onto the structure, or draw a box around it.")
        return self

    def summary(self) -> dict:
        """JSON-ready description without the mask itself (for the worker and the CLI)."""
        return {"backend": self.backend, "score": float(self.score), "scores": [float(s) for s in self.scores],
                "chosen": int(self.chosen), "reason": self.reason, "area_px": self.area_px,
                **{k: v for k, v in self.details.items()}}


@dataclass
class ImageInfo:
    """What a backend's ``set_image`` did: the image's content key, its shape, whether it computed
    anything (SAM: ran the encoder) and how long that took."""

    key: str
    shape: tuple[int, int]
    computed: bool
    seconds: float

    def summary(self) -> dict:
        return {"shape": list(self.shape), "computed": self.computed, "seconds": round(self.seconds, 4),
                "image_key": self.key[:16]}
