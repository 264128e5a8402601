"""The atrium plausibility rule (ddic/measure/plausibility.py) on a head drawn here in millimetres — not the
phantom — so each check is seen to pass on an atrium and fail on the wrong region it is there to catch,
at two pixel sizes."""

from __future__ import annotations

import numpy as np
import pytest

from ddic.measure.plausibility import HeadAxes, assess_atrium
from ddic.measure.width import atrium_width

HEAD_A, HEAD_B, BONE = 45.0, 36.0, 2.5  # mm: outer semi-axes and skull thickness


def scene(ps: float, atrium_width_mm: float = 7.0, glomus_fill: float = 0.7, seed: int = 0):
    """(ultrasound, atrium lumen mask, glomus mask, head axes) at pixel size ``ps`` mm: anterior to the
    right, distal (far from the transducer at the top) downwards, the atrium behind the centre."""
    h, w = int(round(110 / ps)), int(round(140 / ps))
    cx, cy = w / 2.0, h / 2.0
    yy, xx = np.mgrid[0:h, 0:w]
    t, s = (xx - cx) * ps, (yy - cy) * ps  # mm: along the midline (anterior +), across (distal +)
    r = np.sqrt((t / HEAD_A) ** 2 + (s / HEAD_B) ** 2)
    a_in, b_in = HEAD_A - BONE, HEAD_B - BONE
    t0, s0 = -0.5 * a_in, 0.4 * b_in
    lumen = ((t - t0) / 8.0) ** 2 + ((s - s0) / (atrium_width_mm / 2)) ** 2 <= 1.0
    glomus = ((t - t0) / 5.5) ** 2 + ((s - s0) / (glomus_fill * atrium_width_mm / 2)) ** 2 <= 1.0
    # echo amplitudes re parenchyma (anatomy.md §3.1): CSF at the noise floor, choroid +18 dB, skull +30 dB;
    # Rayleigh speckle, log-compressed to 8-bit over a 55 dB display range
    amplitude = np.full((h, w), 0.02)
    amplitude[r < 1.0] = 1.0
    amplitude[np.abs(r - (1.0 - 0.5 * BONE / HEAD_B)) * HEAD_B < 0.5 * BONE] = 30.0
    amplitude[lumen] = 0.01
    amplitude[glomus] = 8.0
    amplitude *= np.random.default_rng(seed).rayleigh(1.0, amplitude.shape) / 1.2533
    image = np.clip(255.0 * (20.0 * np.log10(amplitude / 30.0 + 1e-9) + 55.0) / 55.0, 0.0, 255.0)
    axes = HeadAxes(centre_xy=(cx, cy), anterior_xy=(1.0, 0.0), distal_xy=(0.0, 1.0), inner_a_mm=a_in,
                    inner_b_mm=b_in, pixel_size_mm=ps)
    return image, lumen, glomus, axes


def box_around(mask, ps, margin_mm=3.0):
    ys, xs = np.nonzero(mask)
    m = margin_mm / ps
    return (xs.min() - m, ys.min() - m, xs.max() + m, ys.max() + m)


def verdict(image, mask, axes, box, ps):
    width = atrium_width(mask, (ps, ps), posterior=(-1.0, 0.0)).width_mm
    return assess_atrium(mask, image, None, axes, box, width), width


@pytest.mark.parametrize("ps", [0.15, 0.3])
def test_an_atrium_passes_and_its_figures_are_in_mm(ps):
    image, lumen, _, axes = scene(ps)
    result, width = verdict(image, lumen, axes, box_around(lumen, ps), ps)
    assert result.reliable and result.plausibility >= 0.5 and result.reasons == [], result.to_dict()
    assert width == pytest.approx(7.0, abs=0.5)  # the same millimetres whatever the pixel size
    assert result.features["area_mm2"] == pytest.approx(np.pi * 8.0 * 3.5, rel=0.05)
    assert set(result.to_dict()["checks"]) >= {"contained", "size", "shape", "position", "echo", "complete",
                                                "orientation"}


@pytest.mark.parametrize("ps", [0.15, 0.3])
def test_a_piece_of_parenchyma_is_unreliable(ps):
    image, lumen, _, axes = scene(ps)
    shifted = np.roll(lumen, int(round(14 / ps)), axis=1)  # the same shape, 14 mm forward, on brain tissue
    result, _ = verdict(image, shifted, axes, box_around(shifted, ps), ps)
    assert not result.reliable and result.plausibility < 0.5
    assert any("looks like the tissue around it" in r for r in result.reasons)


def test_a_region_that_leaked_to_its_box_is_unreliable():
    ps = 0.3
    image, lumen, _, axes = scene(ps)
    grown = lumen.copy()
    x0, y0, x1, y1 = (int(v) for v in box_around(lumen, ps, margin_mm=1.0))
    grown[y0:y1 + 1, x0:x1 + 1] = True  # filled the whole prompt box
    result, _ = verdict(image, grown, axes, (x0, y0, x1, y1), ps)
    assert not result.reliable and any("edge of its prompt box" in r for r in result.reasons)


def test_the_glomus_inside_a_dilated_atrium_is_not_its_width():
    ps = 0.3
    image, lumen, glomus, axes = scene(ps, atrium_width_mm=15.0, glomus_fill=0.35)
    result, width = verdict(image, glomus, axes, box_around(lumen, ps), ps)
    assert width < 7.0  # would read as a normal atrium, missing ventriculomegaly
    assert not result.reliable and any("only part of a larger fluid space" in r for r in result.reasons)
    whole, width = verdict(image, lumen, axes, box_around(lumen, ps), ps)
    assert whole.reliable and width == pytest.approx(15.0, abs=1.0)


def test_position_is_judged_against_the_midline_and_the_skull():
    ps = 0.3
    image, lumen, _, axes = scene(ps)
    across = np.roll(lumen, -int(round(14 / ps)), axis=0)  # moved over the midline to the near side
    result, _ = verdict(image, across, axes, box_around(across, ps), ps)
    assert not result.reliable
    assert not result.to_dict()["checks"]["position"]["passed"]


def test_an_undecided_orientation_makes_it_unreliable():
    from dataclasses import replace

    ps = 0.3
    image, lumen, _, axes = scene(ps)
    result, _ = verdict(image, lumen, replace(axes, orientation_decided=False), box_around(lumen, ps), ps)
    assert not result.reliable and any("orientation was not decided" in r for r in result.reasons)


def test_nothing_found_is_unreliable():
    ps = 0.3
    image, lumen, _, axes = scene(ps)
    result = assess_atrium(np.zeros_like(lumen), image, None, axes, None, None)
    assert not result.reliable and result.plausibility == 0.0 and result.reasons
