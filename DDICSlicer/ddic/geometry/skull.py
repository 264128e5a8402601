"""Fetal parietal-bone thickness from the biparietal diameter: the one place this law lives.

Wong et al. 2018 (PMC8409806; ``shared/docs/anatomy.md`` §1.1) measured both BPD conventions on the
same fetuses: BPD(outer–outer) = 0.555934 + 1.027318 · BPD(outer–inner), in mm. Their difference is
one parietal-bone thickness, t = 0.555934 + 0.027318 · BPD(outer–inner) (≈ 2.0 mm at 21 w, 3.1 mm at
38 w). The phantom draws its skull thickness from it (:mod:`ddic.data.phantom.biometry`) and the skull
detector uses it to step from the bone's inner surface to its outer one
(:mod:`ddic.geometry.skull_outer_surface`), so both sides of the pipeline share the numbers. Scalars or
numpy arrays.
"""

from __future__ import annotations

import numpy as np

WONG_2018_INTERCEPT_MM = 0.555934
WONG_2018_SLOPE = 1.027318


def bpd_outer_outer_mm(bpd_outer_inner_mm):
    """Wong 2018: BPD(outer–outer) = 0.555934 + 1.027318 · BPD(outer–inner) (mm)."""
    return WONG_2018_INTERCEPT_MM + WONG_2018_SLOPE * np.asarray(bpd_outer_inner_mm, dtype=np.float64)


def skull_thickness_from_bpd_mm(bpd_outer_inner_mm):
    """One parietal-bone thickness = BPD(oo) − BPD(oi) = 0.555934 + 0.027318 · BPD(oi) (mm)."""
    return WONG_2018_INTERCEPT_MM + (WONG_2018_SLOPE - 1.0) * np.asarray(bpd_outer_inner_mm,
                                                                           dtype=np.float64)
