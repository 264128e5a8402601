"""A fetal-head B-mode frame drawn independently of the project's phantom, for checking the ventricle
plausibility rule on data it was not designed on.

Nothing here comes from ``ddic.data.phantom``: shapes are plain ellipses and boxes placed by their own
random laws (broader than the phantom's), intensities are flat levels with multiplicative gamma speckle and
a Gaussian blur (no PSF, no beam model), and the atria sit anywhere in a wide anatomical window. Returns
the frame, its pixel size, the true skull ellipse, which end is frontal, and the true distal atrium mask.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

H, W = 540, 800


def _local(ellipse_centre, angle, xx, yy):
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xx - ellipse_centre[0], yy - ellipse_centre[1]
    return dx * c + dy * s, -dx * s + dy * c  # along the major axis (t), across it (s)


def _in_ellipse(t, s, t0, s0, a, b, tilt):
    c, sn = math.cos(tilt), math.sin(tilt)
    u, v = (t - t0) * c + (s - s0) * sn, -(t - t0) * sn + (s - s0) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def independent_frame(seed: int, ventriculomegaly: bool = False) -> dict:
    """One frame (see the module docstring): ``image`` uint8 (H, W), ``pixel_size_mm``, ``ellipse``
    (cx, cy, a, b, angle_deg) of the outer skull in pixels, ``anterior_right``, ``atrium`` (the distal
    one, bool mask) and ``atrium_width_mm``."""
    rng = np.random.default_rng(seed)
    hc = rng.uniform(190.0, 320.0)
    ratio = rng.uniform(0.76, 0.88)
    a_mm = hc / (math.pi * (3 * (1 + ratio) - math.sqrt((3 + ratio) * (1 + 3 * ratio)))) 
    b_mm = ratio * a_mm
    ps = 2.0 * a_mm / (rng.uniform(0.6, 0.8) * H)
    a, b = a_mm / ps, b_mm / ps
    angle = math.radians(rng.uniform(-25.0, 25.0))
    centre = (rng.uniform(W / 2 - 90, W / 2 + 90), rng.uniform(H / 2 - 20, H / 2 + 40))
    anterior_right = bool(rng.random() < 0.5)
    front = 1.0 if anterior_right else -1.0
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    t, s = _local(centre, angle, xx, yy)
    t_mm, s_mm = t * ps, s * ps
    r = np.sqrt((t / a) ** 2 + (s / b) ** 2)
    skull_mm = rng.uniform(2.0, 3.2)
    inner = r < 1.0 - skull_mm / b_mm
    a_in, b_in = a_mm - skull_mm, b_mm - skull_mm

    image = np.full((H, W), 0.06)  # amniotic fluid
    image[inner] = rng.uniform(0.22, 0.32)  # parenchyma
    ring = np.abs(r - (1.0 - 0.5 * skull_mm / b_mm)) * b_mm < 0.5 * skull_mm
    image[ring] = rng.uniform(0.75, 0.95)
    image[inner & (np.abs(s_mm) < 0.5)] = 0.5  # falx
    csp = inner & (np.abs(s_mm) < rng.uniform(1.8, 3.0)) & (front * t_mm > 0.22 * a_in) & (front * t_mm < 0.42 * a_in)
    image[csp] = 0.03
    for side in (-1.0, 1.0):  # thalami, slightly darker ovals beside the midline
        th = _in_ellipse(t_mm, s_mm, -front * 0.05 * a_in, side * 0.13 * b_in, 0.12 * a_in, 0.09 * b_in, 0.0)
        image[th & inner] *= 0.8
    # atria: anywhere in a wide window behind the centre, lateral; distal = farther from the frame's top
    atria = {}
    for side in (-1.0, 1.0):
        width = rng.uniform(10.0, 16.0) if ventriculomegaly else rng.uniform(4.0, 8.5)
        length = max(width * rng.uniform(1.6, 2.6), 10.0)
        u, v = rng.uniform(0.35, 0.65), rng.uniform(0.3, 0.5)
        tilt = side * front * math.radians(rng.uniform(10.0, 35.0))
        t0, s0 = -front * u * a_in, side * v * b_in
        lumen = _in_ellipse(t_mm, s_mm, t0, s0, length / 2, width / 2, tilt) & inner
        fill = rng.uniform(0.35, 0.55) if ventriculomegaly else rng.uniform(0.55, 0.85)
        glomus = _in_ellipse(t_mm, s_mm, t0 - front * 0.1 * length, s0, 0.35 * length, fill * width / 2, tilt)
        image[lumen] = 0.03
        image[lumen & glomus] = rng.uniform(0.55, 0.75)
        atria[side] = (lumen, width)
    top = _local(centre, angle, np.array([centre[0]]), np.array([0.0]))[1][0]  # s of the frame's top
    distal = -1.0 if top > 0 else 1.0
    mask, width = atria[distal]

    image *= rng.gamma(4.0, 0.25, image.shape)  # speckle
    image = ndimage.gaussian_filter(image, 1.0)
    image *= np.linspace(0.8, 1.2, H)[:, None]  # a plain depth-gain ramp
    frame = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    return {"image": frame, "pixel_size_mm": ps, "ellipse": (centre[0], centre[1], a, b, math.degrees(angle)),
            "anterior_right": anterior_right if math.cos(angle) >= 0 else not anterior_right,
            "atrium": mask, "atrium_width_mm": width}
