"""Is a measurement the panel shows reliable, and is the head's front/back orientation it depends on decided?

Issue 13: on heads unlike the training phantom, segmented "atria" landed on brain tissue and their widths
(8–22 mm where the truth was 5–6 mm) read as ventriculomegaly; three of five such misses followed from a
front/back orientation that the image did not decide and that was silently assumed. So the panel

* finds the head and its orientation exactly as the translation process will (the engine's
  :func:`ddic.translate.placement.place_frame` on the same pixels and pixel size), *before* anything that
  depends on the orientation runs — the translation's canonical grid, the atrium's expected place, the
  width's posterior direction. When the image does not decide (``orientation_source`` "default"), the panel
  asks the user and records the answer on the frame's node (:data:`ATTRIBUTE_ANTERIOR`; on the sequence
  browser for a sequence, whose proxy takes its items' attributes), so a saved scene keeps it;
* measures an atrium width only together with the engine's plausibility verdict
  (:func:`ddic.measure.plausibility.assess_atrium`, the checks the demo applies to its automatic prompts):
  the width is shown only when every check passes, otherwise "not reported — unreliable" with the reasons.

Everything here runs in Slicer's own process and uses only numpy, scipy and SimpleITK, which Slicer bundles
(a test runs it under an import blocker). No ``slicer`` import: nodes are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ATTRIBUTE_ANTERIOR = "DDIC.AnteriorConfirmed"
"""Node attribute: "right" or "left", the frontal end the user confirmed for this frame (or sequence)."""
ATTRIBUTE_ANTERIOR_NOTE = "DDIC.OrientationConfirmation"
"""Node attribute: the confirmation in words (what was asked, the answer, when)."""
ATTRIBUTE_ORIENTATION = "DDIC.Orientation"
"""Attribute of a pseudo-MRI: the orientation its canonical grid used and where it came from."""
WIDTH_SIZE_PX = 128
"""Canonical grid of the head transform used to check a width (the atlas grid; only its axes matter)."""
CHOICES = ("right", "left")


@dataclass(frozen=True)
class Orientation:
    """The front/back orientation a purpose depends on, and whether it is decided.

    ``source``: "given" (Anterior side set to right/left), "confirmed" (the user answered for this frame),
    "heuristic" (decided from the image), "default" (undecided: the engine would assume the right end),
    "not needed" (a canonical model-sized frame is translated as it is), "sequence" (every frame is
    guessed on its own in the translation; a sequence is confirmed once for all its frames).
    """

    source: str
    anterior_right: bool | None = None
    placement: object | None = None  # ddic.translate.placement.Placement, when the head was found
    error: str = ""  # why the head could not be found (then nothing orientation-dependent can be checked)
    suggestion: str = ""  # for a sequence: how the frame shown was decided ("heuristic" or "default")

    @property
    def decided(self) -> bool:
        return self.source in ("given", "confirmed", "heuristic", "not needed")

    @property
    def needs_confirmation(self) -> bool:
        """Ask the user: undecided (or a whole sequence), and the head was found (else the run says why)."""
        return self.source in ("default", "sequence") and not self.error

    @property
    def choice(self) -> str:
        return "auto" if self.anterior_right is None else ("right" if self.anterior_right else "left")

    def describe(self) -> str:
        if self.source == "not needed":
            return "no head orientation needed (a canonical frame is translated as it is)"
        if self.error:
            return f"head not found ({self.error})"
        side = self.choice
        how = {"given": "chosen in Anterior side", "confirmed": "confirmed by the user",
               "heuristic": "decided from the image", "default": "UNDECIDED: the image does not show it",
               "sequence": "decided per frame from the image"}.get(self.source, self.source)
        return f"frontal end on the {side} ({how})" if side != "auto" else f"front/back orientation {how}"


def frame_from_pixels(pixels: np.ndarray, pixel_size_mm: float):
    """An engine :class:`~ddic.io.images.Frame` of (H, W) pixels with square pixels of ``pixel_size_mm``.

    Only pixel-index geometry matters to head finding and orientation (``Ellipse.major_axis`` and
    ``guess_anterior`` work on pixel indices; the near-field side is invariant to the direction matrix), so
    the frame's direction is left as identity whatever the node's IJK→RAS is.
    """
    from ddic.io.images import Frame

    return Frame.from_array(np.asarray(pixels, dtype=np.float32), spacing=(pixel_size_mm, pixel_size_mm))


def head_placement(pixels: np.ndarray, pixel_size_mm: float, anterior: str = "auto", ellipse=None,
                   model_size: int | None = None, mode: str = "auto"):
    """The engine's :class:`~ddic.translate.placement.Placement` of one frame, as ``ddic translate`` makes it
    (``mode`` "auto" with the model's size) or always with a head transform (``mode`` "head")."""
    from ddic.geometry.ellipse import Ellipse
    from ddic.translate.placement import PlacementOptions, anterior_from_choice, place_frame

    options = PlacementOptions(mode=mode, ellipse=Ellipse(*ellipse) if ellipse is not None else None,
                               pixel_size_mm=float(pixel_size_mm), anterior_right=anterior_from_choice(anterior))
    return place_frame(frame_from_pixels(pixels, pixel_size_mm), int(model_size or WIDTH_SIZE_PX), options)


def orientation_of(placement, anterior: str, confirmed: str | None) -> Orientation:
    """The :class:`Orientation` of a placement made with ``anterior`` (the panel's choice) and ``confirmed``
    (the user's recorded answer for this frame, used when the choice is "auto")."""
    if placement is None:
        return Orientation("default")
    info = placement.info or {}
    if info.get("kind") != "canonical_head":
        return Orientation("not needed", placement=placement)
    right = bool(info.get("anterior_right"))
    if anterior in CHOICES:
        return Orientation("given", right, placement)
    if confirmed in CHOICES:
        return Orientation("confirmed", right, placement)
    source = info.get("orientation_source")
    return Orientation("heuristic" if source == "heuristic" else "default", right, placement)


def effective_anterior(anterior: str, confirmed: str | None) -> str:
    """What the engine is told: the panel's choice, or the user's confirmed answer when the choice is auto."""
    return confirmed if anterior == "auto" and confirmed in CHOICES else anterior


def confirmed_anterior(node) -> str | None:
    """The answer recorded on ``node`` (:data:`ATTRIBUTE_ANTERIOR`), or None."""
    if node is None:
        return None
    value = node.GetAttribute(ATTRIBUTE_ANTERIOR)
    return value if value in CHOICES else None


def record_confirmation(node, choice: str, when: str, what: str) -> str:
    """Record the user's answer on ``node`` (kept in a saved scene); returns the sentence recorded."""
    if choice not in CHOICES:
        raise ValueError(f"The frontal end is 'right' or 'left', not {choice!r}.")
    note = (f"frontal end on the {choice} end of the head's long axis, confirmed by the user on {when} "
            f"({what})")
    node.SetAttribute(ATTRIBUTE_ANTERIOR, choice)
    node.SetAttribute(ATTRIBUTE_ANTERIOR_NOTE, note)
    return note


def question_text(orientation: Orientation, frames: int = 1) -> str:
    """What the panel asks when the orientation must be confirmed. The two ends of the head's long axis are
    marked on the views: "1" is the end the engine calls right (``anterior right``), "2" the other."""
    if frames > 1:
        guess = ""
        if orientation.suggestion == "heuristic":
            guess = f" On the frame shown, the image suggests end {1 if orientation.anterior_right else 2}."
        elif orientation.suggestion == "default":
            guess = " The image of the frame shown does not decide it."
        return (f"Translating all {frames} frames needs the head's front/back orientation, and frames the image "
                f"does not decide would otherwise get a default.{guess} Which end of the head's long axis is "
                "frontal (where the cavum septi pellucidi is)? The answer is used for every frame of the sequence "
                "and recorded in the scene.")
    return ("The image does not show which end of the head is frontal, and the translation's head grid, the "
            "atrium's expected place and its width depend on it (a wrong guess mirrors the head front to back). "
            "Which end of the head's long axis is frontal (where the cavum septi pellucidi is)? The answer is "
            "recorded in the scene.")


# --- the atrium width -----------------------------------------------------------------------------------------

@dataclass
class AtriumAssessment:
    """An atrium width and the engine's verdict on the region it was measured on (see the module docstring)."""

    reliable: bool
    plausibility: float
    reasons: list = field(default_factory=list)
    candidate_width_mm: float | None = None  # what was measured, for auditing only when unreliable
    pixel_size_mm: float | None = None
    area_mm2: float | None = None
    checks: dict = field(default_factory=dict)

    @property
    def width_mm(self) -> float | None:
        """The width as a result: only when the region is a plausible atrium."""
        return self.candidate_width_mm if self.reliable else None

    def text(self) -> str:
        if self.reliable and self.width_mm is not None:
            return f"atrium width {self.width_mm:.1f} mm (plausibility {self.plausibility:.2f})"
        reasons = "; ".join(self.reasons) or "it could not be measured"
        return f"atrium width not reported — unreliable ({reasons})"

    def to_dict(self) -> dict:
        return {"reliable": self.reliable, "plausibility": round(self.plausibility, 3),
                "atrium_width_mm": _round(self.width_mm), "candidate_width_mm": _round(self.candidate_width_mm),
                "reasons": list(self.reasons), "pixel_size_mm": self.pixel_size_mm,
                "area_mm2": _round(self.area_mm2), "checks": self.checks}


def _round(value):
    return None if value is None or not np.isfinite(value) else round(float(value), 2)


def unreliable(reason: str, mask=None, pixel_size_mm: float | None = None) -> AtriumAssessment:
    """A verdict without the checks (no head, no region): never a width."""
    area = None
    if mask is not None and pixel_size_mm:
        area = float(np.count_nonzero(mask)) * pixel_size_mm ** 2
    return AtriumAssessment(False, 0.0, [reason], None, pixel_size_mm, area)


def assess_atrium_mask(mask, ultrasound, segmented, orientation: Orientation, distal: bool = True,
                       box=None) -> AtriumAssessment:
    """Measure the atrium width of a ventricle mask (frame grid) and check the region with the engine.

    ``ultrasound``: the frame's pixels (the echo checks read them); ``segmented``: the pixels the mask was
    grown on (the pseudo-MRI) or None for the ultrasound; ``orientation``: from :func:`orientation_of` with a
    head placement (``mode`` "head"); ``distal``: the distal (far-field) ventricle, else the proximal one,
    whose expected side is the transducer's; ``box``: the prompt box (x0, y0, x1, y1) if one was drawn.
    Every mm figure uses the placement's pixel size (the panel's Pixel size when set, else the spacing).
    """
    from ddic.data.ventricle_atlas import head_axes
    from ddic.measure.plausibility import assess_atrium
    from ddic.measure.width import atrium_width

    mask = np.asarray(mask) > 0
    placement = orientation.placement
    if placement is None or (placement.info or {}).get("kind") != "canonical_head":
        why = orientation.error or "no head transform"
        return unreliable(f"the head (skull ellipse) was not found, so the region's place cannot be checked: {why}")
    transform = placement.transform
    ps = float(transform.geometry.pixel_size_mm)
    near = transform.near_field_side()
    side = ("bottom" if near == "top" else "top") if distal else near
    axes = head_axes(transform, side, orientation.decided)
    width = None
    if mask.sum() >= 3:
        posterior = tuple(-np.asarray(axes.anterior_xy)) if orientation.decided else None
        try:
            width = atrium_width(mask, (ps, ps), posterior=posterior).width_mm
        except Exception:  # noqa: BLE001 - an unmeasurable region: the verdict below says why
            width = None
    verdict = assess_atrium(mask, ultrasound, segmented, axes, box, width)
    reasons = list(verdict.reasons)
    if width is None and verdict.reliable:
        reasons.append("the width could not be measured on the region")
    checks = {c.name: c.to_dict() for c in verdict.checks}
    return AtriumAssessment(bool(verdict.reliable and width is not None), float(verdict.plausibility), reasons,
                            None if width is None else float(width), ps, float(mask.sum()) * ps * ps, checks)
