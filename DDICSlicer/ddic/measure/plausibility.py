"""Does a segmented region look like the distal lateral-ventricle atrium? A plausibility score.

Why: automatic prompts come from an atlas, not from the image. On a head that is not like the atlas —
another scanner, another simulator, a front/back orientation guessed wrong — they land on brain tissue,
region growing returns *some* region, and its "atrium width" is a plausible-looking number (8–22 mm where
the truth is 5–6 mm) that reads as ventriculomegaly. So every automatic measurement is checked against
what a distal atrium is, and is reported as **unreliable — not as a result —** when any check fails.

The checks (each from anatomy, anatomy.md §1.1 (IG PV), §2.2–2.3, §3.1, §6.1; not tuned on one phantom):

* **contained** — the region must not run into the edge of its prompt box (:data:`MAX_BOX_CONTACT`). An
  atrium lies inside the box drawn around where it is expected; a region that reaches the box on a
  good part of its outline has leaked into the surrounding parenchyma (or is larger than the box, so its
  width is cut). Either way the width is not the atrium's.
* **size** — width between :data:`WIDTH_RANGE_MM` (IG: normal atrium mean ≈ 5.5–6.2 mm, −2 SD ≈ 2.5–3 mm;
  ventriculomegaly 10–20 mm, beyond that the plane is not a measurable TT/TV plane) and length along its
  axis at most :data:`MAX_LENGTH_FRACTION` of the inner occipito-frontal diameter (the atrium is the
  trigone of one lateral ventricle, never most of the hemisphere).
* **shape** — solidity (area / convex-hull area) ≥ :data:`MIN_SOLIDITY`: the atrial lumen is a convex,
  tear-drop cavity; a region grown through speckle into parenchyma is ragged.
* **position** — relative to the midline and the skull, in the head's own axes (fractions of the inner
  semi-axes, so independent of head size and pixel size): centroid in the posterior half
  (:data:`POSTERIOR_RANGE`), off the midline on the distal side (:data:`LATERAL_RANGE`), never crossing
  the midline, and clear of the inner skull by :data:`MIN_SKULL_CLEARANCE_MM` (cortex, extra-axial CSF
  and white-matter mantle lie between the atrium and the bone).
* **echo** — on the ultrasound the atrium is anechoic CSF around the echogenic choroid-plexus glomus
  (§3.1: CSF at the noise floor, choroid ≈ +15–20 dB over parenchyma), so its echo levels separate from
  the parenchyma around it: gCNR(region, ring) ≥ :data:`MIN_US_GCNR`. For fully developed (Rayleigh)
  speckle a 10 dB difference gives gCNR ≈ 0.70, 15 dB ≈ 0.87, 20 dB ≈ 0.95, anechoic fluid ≈ 1; a piece
  of parenchyma against parenchyma gives ≈ 0.
* **complete** — the ring around the region must be atrial wall and parenchyma, not more fluid: at most
  :data:`MAX_RING_FLUID` of it may be anechoic (darker than the brain's :data:`ANECHOIC_PERCENTILE`-th
  percentile). A region whose surroundings are largely CSF is only part of a fluid space — typically
  the bright glomus inside a dilated atrium — and its width would miss ventriculomegaly.
* **contrast** — on the image it was segmented on (the pseudo-MRI in the demo) the region must stand
  out from the ring around it (gCNR ≥ :data:`MIN_GCNR`): region growing that stopped at a real edge
  separates two populations; one that wandered through texture does not.
* **orientation** — the position check and the prompts assume which end is frontal; if that was not
  decided (from the image or by the user) nothing that depends on it is reported.

``plausibility`` is the smallest per-check score; each check scores 1 well inside its bounds, 0.5 at a
bound and 0 beyond it by its margin, so the number says how close the weakest check came to failing.
``reliable`` ⇔ every check passes (plausibility ≥ 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .contrast import gcnr_from_values

WIDTH_RANGE_MM = (2.0, 22.0)
MAX_LENGTH_FRACTION = 0.45
MAX_BOX_CONTACT = 0.10
MIN_SOLIDITY = 0.60
POSTERIOR_RANGE = (-0.9, -0.1)
LATERAL_RANGE = (0.15, 0.85)
MIN_SKULL_CLEARANCE_MM = 2.0
MIN_US_GCNR = 0.70
MIN_GCNR = 0.5
MAX_RING_FLUID = 0.35
ANECHOIC_PERCENTILE = 5.0
"""Echoes darker than this percentile of the brain's pixels (away from the region) count as anechoic."""
RING_MM = 3.0
"""Width of the ring of surrounding tissue compared with the region (about one atrial wall + mantle)."""


@dataclass(frozen=True)
class HeadAxes:
    """The head in frame pixels: centre, unit vectors to the frontal end and to the distal side, the inner
    semi-axes (mm) and the pixel size (mm). Built from a head transform by the caller."""

    centre_xy: tuple[float, float]
    anterior_xy: tuple[float, float]
    distal_xy: tuple[float, float]
    inner_a_mm: float
    inner_b_mm: float
    pixel_size_mm: float
    orientation_decided: bool = True


@dataclass
class Check:
    name: str
    passed: bool
    score: float
    value: object
    expected: str
    reason: str  # the sentence shown when it fails

    def to_dict(self) -> dict:
        value = self.value
        if isinstance(value, float):
            value = round(value, 3)
        elif isinstance(value, tuple):
            value = [round(v, 3) if isinstance(v, float) else v for v in value]
        return {"passed": self.passed, "score": round(self.score, 3), "value": value, "expected": self.expected}


@dataclass
class Plausibility:
    """The verdict on one segmented region (see the module docstring)."""

    plausibility: float
    reliable: bool
    checks: list[Check] = field(default_factory=list)
    features: dict = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {"plausibility": round(self.plausibility, 3), "reliable": self.reliable, "reasons": self.reasons,
                "checks": {c.name: c.to_dict() for c in self.checks},
                "rule": "reliable only if every check passes; plausibility = the weakest check's score "
                        "(0.5 at its bound); see ddic/measure/plausibility.py"}


def _ramp(value: float, low: float | None, high: float | None, margin: float) -> float:
    """1 well inside [low, high], 0.5 at a bound, 0 at ``margin`` beyond it (linear in between)."""
    score = 1.0
    if low is not None:
        score = min(score, 0.5 + 0.5 * (value - low) / margin)
    if high is not None:
        score = min(score, 0.5 + 0.5 * (high - value) / margin)
    return float(np.clip(score, 0.0, 1.0))


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def box_contact(mask: np.ndarray, box) -> float:
    """Fraction of the region's outline within one pixel of the box's edge (0: well inside the box)."""
    h, w = mask.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
    edge = np.zeros_like(mask)
    edge[y0:y1 + 1, x0:x1 + 1] = True
    inner = np.zeros_like(mask)
    inner[y0 + 2:y1 - 1, x0 + 2:x1 - 1] = True
    edge &= ~inner
    outline = _outline(mask)
    return float((outline & edge).sum() / max(outline.sum(), 1))


def solidity(mask: np.ndarray) -> float:
    """Area / convex-hull area of the region (pixel squares), 1 for a convex region."""
    from scipy.spatial import ConvexHull, QhullError

    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
    try:
        hull = ConvexHull(corners)
    except (QhullError, ValueError):
        return 1.0
    return float(mask.sum() / hull.volume)


def _spread(values: np.ndarray) -> float:
    lo, hi = np.percentile(values, [10, 90])
    return float(hi - lo)


def gcnr(inside: np.ndarray, outside: np.ndarray) -> float:
    """gCNR of two samples (:func:`ddic.measure.contrast.gcnr_from_values`, its bin rule); 0 if one is empty."""
    if inside.size == 0 or outside.size == 0:
        return 0.0
    return gcnr_from_values(inside, outside)[0]


def assess_atrium(mask, ultrasound, segmented, head: HeadAxes, box, width_mm: float | None) -> Plausibility:
    """Check a segmented region (``mask`` on the frame grid) against what a distal atrium is.

    ``ultrasound``: the frame's pixels; ``segmented``: the image the mask was grown on (the pseudo-MRI in
    the demo), or ``None`` when that was the ultrasound itself; ``box``: the prompt box (x0, y0, x1, y1, frame pixels);
    ``width_mm``: the atrium width measured on the mask (None if it could not be measured).
    """
    mask = np.asarray(mask, dtype=bool)
    us = np.asarray(ultrasound, dtype=np.float64)
    seg = us if segmented is None or segmented is ultrasound else np.asarray(segmented, dtype=np.float64)
    ps = float(head.pixel_size_mm)
    checks: list[Check] = []
    features: dict = {}
    if mask.sum() < 3:
        checks.append(Check("size", False, 0.0, int(mask.sum()), "a region of at least 3 pixels",
                            "the segmentation found (almost) no region"))
        return Plausibility(0.0, False, checks, features)

    # contained
    contact = box_contact(mask, box) if box is not None else 0.0
    features["box_contact"] = contact
    checks.append(Check("contained", contact <= MAX_BOX_CONTACT, _ramp(contact, None, MAX_BOX_CONTACT, 0.1),
                        contact, f"≤ {MAX_BOX_CONTACT:.0%} of the outline on the prompt box",
                        f"the region runs into the edge of its prompt box on {contact:.0%} of its outline: "
                        "it leaked into the tissue around it (or is larger than the box)"))

    # size: width and length
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], 1).astype(np.float64) * ps
    centred = pts - pts.mean(0)
    eigval, eigvec = np.linalg.eigh(np.cov(centred.T) if len(pts) > 2 else np.eye(2))
    axis = eigvec[:, -1]
    along = centred @ axis
    length = float(along.max() - along.min() + ps)
    inner_ofd = 2.0 * head.inner_a_mm
    features.update(width_mm=width_mm, length_mm=length, area_mm2=float(mask.sum()) * ps * ps)
    lo_w, hi_w = WIDTH_RANGE_MM
    width_ok = width_mm is not None and lo_w <= width_mm <= hi_w
    width_score = 0.0 if width_mm is None else _ramp(width_mm, lo_w, hi_w, 1.0)
    length_limit = MAX_LENGTH_FRACTION * inner_ofd
    length_score = _ramp(length, None, length_limit, 0.1 * length_limit)
    checks.append(Check("size", width_ok and length <= length_limit, min(width_score, length_score),
                        (width_mm, length), f"width {lo_w:g}–{hi_w:g} mm, length ≤ {length_limit:.0f} mm",
                        f"its size is not an atrium's (width {_mm(width_mm)}, length {length:.0f} mm; an atrium is "
                        f"{lo_w:g}–{hi_w:g} mm wide and at most {length_limit:.0f} mm long in this head)"))

    # shape
    sol = solidity(mask)
    features["solidity"] = sol
    checks.append(Check("shape", sol >= MIN_SOLIDITY, _ramp(sol, MIN_SOLIDITY, None, 0.1), sol,
                        f"solidity ≥ {MIN_SOLIDITY}", f"its outline is ragged (solidity {sol:.2f}), not the "
                        "convex cavity of an atrium"))

    # position in the head's axes
    centre = np.asarray(head.centre_xy, dtype=np.float64)
    ant = np.asarray(head.anterior_xy, dtype=np.float64)
    dist = np.asarray(head.distal_xy, dtype=np.float64)
    rel = np.stack([xs, ys], 1) - centre
    t_mm, s_mm = rel @ ant * ps, rel @ dist * ps
    u, v = float(t_mm.mean() / head.inner_a_mm), float(s_mm.mean() / head.inner_b_mm)
    crossing = float((s_mm < 0).mean())
    r = np.sqrt((t_mm / head.inner_a_mm) ** 2 + (s_mm / head.inner_b_mm) ** 2)
    clearance = float(((1.0 - r.max()) * min(head.inner_a_mm, head.inner_b_mm)))
    features.update(u=u, v=v, midline_crossing=crossing, skull_clearance_mm=clearance)
    position_score = min(_ramp(u, *POSTERIOR_RANGE, 0.1), _ramp(v, *LATERAL_RANGE, 0.1),
                         _ramp(clearance, MIN_SKULL_CLEARANCE_MM, None, 1.0), 1.0 if crossing == 0 else 0.0)
    checks.append(Check("position", position_score >= 0.5, position_score, (u, v, clearance),
                        f"centre {POSTERIOR_RANGE[0]}…{POSTERIOR_RANGE[1]} × semi-OFD (posterior), "
                        f"{LATERAL_RANGE[0]}…{LATERAL_RANGE[1]} × semi-BPD to the distal side, "
                        f"≥ {MIN_SKULL_CLEARANCE_MM:g} mm from the skull, not across the midline",
                        "it is not where a distal atrium is (relative to the midline and the skull)"))

    # image evidence: the region against a ring of the tissue around it (inside the head)
    ring = ndimage.binary_dilation(mask, iterations=max(1, int(round(RING_MM / ps)))) & ~mask
    ry, rx = np.nonzero(ring)
    rrel = np.stack([rx, ry], 1) - centre
    in_head = (rrel @ ant * ps / head.inner_a_mm) ** 2 + (rrel @ dist * ps / head.inner_b_mm) ** 2 < 1.0
    if in_head.sum() >= 3:
        ry, rx = ry[in_head], rx[in_head]
    echo = gcnr(us[mask], us[ry, rx])
    features["us_gcnr"] = echo
    checks.append(Check("echo", echo >= MIN_US_GCNR, _ramp(echo, MIN_US_GCNR, None, 0.15), echo,
                        f"gCNR ≥ {MIN_US_GCNR} against the tissue around it on the ultrasound",
                        f"on the ultrasound it looks like the tissue around it (gCNR {echo:.2f}), not like "
                        "anechoic CSF with an echogenic choroid plexus"))
    # complete: the ring should be wall and parenchyma, not more fluid (then only part of a fluid space,
    # e.g. the glomus inside a dilated atrium, was segmented and its width is not the atrium's)
    far = ~ndimage.binary_dilation(mask, iterations=3 * max(1, int(round(RING_MM / ps))))
    hy, hx = np.nonzero(far)
    hrel = np.stack([hx, hy], 1) - centre
    in_brain = (hrel @ ant * ps / head.inner_a_mm) ** 2 + (hrel @ dist * ps / head.inner_b_mm) ** 2 < 0.81
    reference = us[hy[in_brain], hx[in_brain]] if in_brain.sum() >= 20 else us[ry, rx]
    anechoic = float(np.percentile(reference, ANECHOIC_PERCENTILE))
    fluid = float((us[ry, rx] < anechoic).mean())
    features["ring_fluid"] = fluid
    checks.append(Check("complete", fluid <= MAX_RING_FLUID, _ramp(fluid, None, MAX_RING_FLUID, 0.15), fluid,
                        f"≤ {MAX_RING_FLUID:.0%} of the ring around it anechoic",
                        f"{fluid:.0%} of its surroundings is anechoic fluid: only part of a larger fluid space (e.g. "
                        "the choroid plexus inside a wider atrium) was segmented, so its width is not the atrium's"))
    if seg is not us:
        contrast = gcnr(seg[mask], seg[ry, rx])
        features["gcnr"] = contrast
        checks.append(Check("contrast", contrast >= MIN_GCNR, _ramp(contrast, MIN_GCNR, None, 0.15), contrast,
                            f"gCNR ≥ {MIN_GCNR} against the surrounding ring on the segmented image",
                            f"it barely stands out from its surroundings on the image it was segmented on "
                            f"(gCNR {contrast:.2f})"))

    checks.append(Check("orientation", head.orientation_decided, 1.0 if head.orientation_decided else 0.0,
                        head.orientation_decided, "front/back orientation decided (from the image or by the user)",
                        "the front/back orientation was not decided from the image (a default was assumed), "
                        "and the atrium's expected place depends on it"))
    score = min(c.score for c in checks)
    return Plausibility(score, all(c.passed for c in checks), checks, features)


def _mm(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f} mm"
