"""Head biometry and structure-size laws versus gestational age (GA): the one place their numbers live.

The phantom samples every size from these laws, the renderers read tissue maturation from them and the
tests compare against them, so a corrected coefficient changes everything consistently. References are
to ``shared/docs/anatomy.md``: **[S]** from a cited source, **[D]** a design value to tune. GA is in
exact weeks (25 + 3/7 = 25.43), sizes in mm. All functions accept scalars or numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry.ellipse import ramanujan_perimeter  # noqa: F401  (re-exported, see below)
from ...geometry.skull import bpd_outer_outer_mm, skull_thickness_from_bpd_mm  # noqa: F401

# ---------------------------------------------------------------------------------------------------
# INTERGROWTH-21st fetal head biometry (anatomy.md §1.1, §1.2) [S]
# Papageorghiou et al., Lancet 2014;384:869; coefficients as in lshtm-gigs `R/ig_fet.R`
# (`ig_fet_mu_sigma`). Valid 14–40 w. Normal models: value = mean + z·SD.
# ---------------------------------------------------------------------------------------------------

IG_VALID_GA_WEEKS = (14.0, 40.0)


def _ga(ga) -> np.ndarray:
    return np.asarray(ga, dtype=np.float64)


def hc_mean_mm(ga):
    """IG-21st mean head circumference (outer skull ellipse), anatomy.md §1.1/§1.2 (e.g. 278.4 mm at 30 w)."""
    g = _ga(ga)
    return -28.2849 + 1.69267 * g**2 - 0.397485 * g**2 * np.log(g)


def hc_sd_mm(ga):
    """IG-21st SD of HC (§1.1; 9.2 mm at 30 w)."""
    g = _ga(ga)
    lg = np.log(g)
    return 1.98735 + 0.0136772 * g**3 - 0.00726264 * g**3 * lg + 0.000976253 * g**3 * lg**2


def bpd_mean_mm(ga):
    """IG-21st mean biparietal diameter, outer-to-inner convention (§1.1; 78.9 mm at 30 w)."""
    g = _ga(ga)
    return 5.60878 + 0.158369 * g**2 - 0.00256379 * g**3


def bpd_sd_mm(ga):
    """IG-21st SD of BPD (§1.1; 3.07 mm at 30 w)."""
    g = _ga(ga)
    lg = np.log(g)
    return np.exp(0.101242 + 0.00150557 * g**3 - 0.000771535 * g**3 * lg + 0.0000999638 * g**3 * lg**2)


def ofd_mean_mm(ga):
    """IG-21st mean occipito-frontal diameter, outer-to-outer (§1.1; 98.0 mm at 30 w)."""
    g = _ga(ga)
    return -12.4097 + 0.626342 * g**2 - 0.148075 * g**2 * np.log(g)


def ofd_sd_mm(ga):
    """IG-21st SD of OFD (§1.1; 3.88 mm at 30 w)."""
    g = _ga(ga)
    lg = np.log(g)
    return np.exp(-0.880034 + 0.0631165 * g**2 - 0.0317136 * g**2 * lg + 0.00408302 * g**2 * lg**2)


def cephalic_index_mean(ga):
    """IG mean cephalic index BPD(oi)/OFD (§1.2 "CI" column; 0.794–0.820 over 21–40 w)."""
    return bpd_mean_mm(ga) / ofd_mean_mm(ga)


CEPHALIC_INDEX_SD = 0.035
"""[D] anatomy.md §6.2 step 3: CI ~ N(IG CI(GA), 0.035), truncated to CEPHALIC_INDEX_RANGE."""
CEPHALIC_INDEX_RANGE = (0.72, 0.90)


def ga_from_hc_weeks(hc_mm):
    """IG late-pregnancy dating from HC alone (Papageorghiou 2016, UOG 48:719; anatomy.md §1.1, §1.3)."""
    hc = np.asarray(hc_mm, dtype=np.float64)
    days = np.exp(0.05970 * np.log(hc) ** 2 + 0.000000006409 * hc**3 + 3.3258)
    return days / 7.0


# ramanujan_perimeter (HC from semi-axes, Ramanujan II, §1.1, §7.1) and the Wong 2018 law
# bpd_outer_outer_mm (§1.1) live in ddic.geometry (one source of truth, shared with the skull detector);
# they are re-exported here under their old names.


def skull_thickness_mm(ga):
    """One parietal-bone thickness = BPDoo − BPDoi at the IG mean BPD (§2.2 "Skull" column: 2.0 → 3.1 mm)."""
    return skull_thickness_from_bpd_mm(bpd_mean_mm(ga))


SKULL_THICKNESS_REL_SD = 0.075
"""[D] §6.1 row 4: skull thickness ±15 % (taken as ±2 SD)."""


# ---------------------------------------------------------------------------------------------------
# INTERGROWTH brain-structure standards (Napolitano et al., UOG 2020;56:359; anatomy.md §1.1) [S]
# Valid 15–36 w; beyond 36 w the 36-w value is used (the laws are nearly flat there).
# ---------------------------------------------------------------------------------------------------

NAPOLITANO_VALID_GA_WEEKS = (15.0, 36.0)


def _napolitano_ga(ga) -> np.ndarray:
    return np.clip(_ga(ga), *NAPOLITANO_VALID_GA_WEEKS)


def atrium_mean_mm(ga):
    """IG atrium (posterior horn, PV) mean width (§1.1; 6.2 mm at 21 w → 5.5 mm at 36 w)."""
    g = _napolitano_ga(ga)
    return 4.389214 + 38.10015 / g + 0.0000020063 * g**3


def atrium_sd_mm(ga):
    """IG atrium SD (§1.1; 1.39 mm at 21 w → 1.90 mm at 36 w)."""
    g = _napolitano_ga(ga)
    return 0.6707227 + 0.034258 * g


ATRIUM_NORMAL_RANGE_MM = (3.5, 9.8)
"""[D] Normal fetuses are sampled below the 10-mm ventriculomegaly cut-off (§2.3 lateral ventricles)."""
VENTRICULOMEGALY_ATRIUM_RANGE_MM = (10.0, 20.0)
"""[S] §2.3 / §6.2 step 9: ventriculomegaly ≥ 10 mm; mild 10–15, severe > 15; the phantom samples 10–20 mm."""
ATRIUM_SIDE_CV = 0.10
"""[D] §6.2 step 6: left/right sizes independent, ≈ 10 % CV around the fetus value."""


def anterior_horn_mean_mm(ga):
    """IG anterior-horn (AV) mean (§1.1). [?] probably includes the midline; used only as a scale check."""
    g = _napolitano_ga(ga)
    return 6.396214 + 0.00006205 * g**3


def sylvian_fissure_mean_mm(ga):
    """IG Sylvian fissure (SF) mean (§1.1; 6.6 mm at 21 w → 15.0 mm at 36 w)."""
    g = _napolitano_ga(ga)
    return 80.27012 - 32.7877 * g**-0.5 - 100.1593 * g**-0.5 * np.log(g)


def pof_mean_mm(ga):
    """IG parieto-occipital fissure depth mean (§1.1; 4.5 mm at 21 w → 7.4 mm at 36 w)."""
    g = _napolitano_ga(ga)
    return 10.29428 - 122.8447 / g + 0.00001038 * g**3


def pof_sd_mm(ga):
    g = _napolitano_ga(ga)
    return 1.596042 - 257.2297 * g**-2


# ---------------------------------------------------------------------------------------------------
# Other structure laws (anatomy.md §2.2–§2.5)
# ---------------------------------------------------------------------------------------------------


def spb_mm(ga):
    """Sylvian fissure midpoint → inner parietal table (Mittal 2007; §2.2): SPB = −2.85 + 0.42·GA [S]."""
    return -2.85 + 0.42 * _ga(ga)


def csp_width_mean_mm(ga):
    """CSP width [D] (§2.2): 0.2705·GA − 1.6121 (Turkish nomogram), capped at 6.5 mm, falling 0.3 mm/w after
    35 w (Falco 2000: slight fall near term) — reproduces the §2.2 column 4.1 (21 w) … 6.5 … 5.6 (38 w)."""
    g = _ga(ga)
    rising = np.minimum(0.2705 * g - 1.6121, 6.5)
    return np.where(g > 35.0, 6.5 - 0.3 * (g - 35.0), rising)


CSP_WIDTH_SD_MM = 0.9
"""[D] §2.3: width SD ≈ 0.8–1.0 mm."""
CSP_WIDTH_RANGE_MM = (2.0, 9.0)
"""[S] Falco 2000: range 2–9 mm."""
CSP_LENGTH_TO_WIDTH = (1.2, 2.0)
"""[D] §2.3: length = width × U(1.2, 2.0)."""


def csp_absent_probability(ga):
    """[D] §2.3: the CSP is absent with probability ≈ 0.2 at 37–38 w (79 % seen at 38–41 w, Falco 2000)."""
    return 0.2 * np.clip(_ga(ga) - 36.0, 0.0, 1.0)


def cortex_thickness_mm(ga):
    """Cortical plate [D] (§2.3): 1.0 mm at 21 w → 2.0 mm at 38 w, linear."""
    return 1.0 + (np.clip(_ga(ga), 21.0, 38.0) - 21.0) / 17.0


def ecsf_width_mm(ga):
    """Extra-axial CSF [D] (§2.3): 2.0–3.0 mm at 21–28 w (mean 2.5) → 1.0–2.0 mm (mean 1.5) by 38 w."""
    return np.interp(_ga(ga), [21.0, 28.0, 38.0], [2.5, 2.5, 1.5])


ECSF_REL_SD = 0.15
ECSF_SIDE_RANGE = (0.7, 1.3)
"""[D] §2.3: per-side eCSF ±30 %."""


def scalp_thickness_mm(ga):
    """Scalp (skin + subcutis) [D] (§2.3): 1.5–3 mm, thicker in the 3rd trimester (1.8 → 2.7 mm mean)."""
    return np.interp(_ga(ga), [21.0, 38.0], [1.8, 2.7])


def germinal_matrix_width_mm(ga):
    """Germinal matrix over the caudate head [S] (§2.3, Ballabh 2004): 2.5 mm at 23–24 w, 1.4 mm at 32 w,
    involuted by ≈ 36 w."""
    return np.interp(_ga(ga), [20.0, 24.0, 32.0, 36.0], [2.5, 2.5, 1.4, 0.0])


def subplate_thickness_mm(ga):
    """T2-bright subplate band under the cortex [S/D] (§2.3, Perkins 2008): up to 4.5 mm, MR-invisible from
    ≈ 28 w (fades 28 → 30 w here)."""
    return np.interp(_ga(ga), [21.0, 25.0, 28.0, 30.0], [3.5, 4.5, 2.0, 0.0])


def sylvian_stage(ga):
    """Continuous Sylvian operculisation score 0–4 (§2.4 stage table [D]): 0 smooth ≤ 19–20 w, 1 obtuse
    20–23 w, 2 box 24–28 w, 3 narrowing 28–32 w, 4 closed ≥ 32–34 w (Toi 2004; Quarello 2008: ≈ 1 unit/w)."""
    return np.interp(_ga(ga), [19.0, 21.5, 26.0, 30.0, 33.5], [0.0, 1.0, 2.0, 3.0, 4.0])


SYLVIAN_STAGE_JITTER_WEEKS = 1.0
"""[D] §2.4: stage GA ±1–1.5 w jitter (on top of the per-fetus maturation offset)."""
MATURATION_OFFSET_SD_WEEKS = 1.0
"""[D] §6.2 step 5: per-fetus maturation offset ~ N(0, 1 w), shared by all maturation features."""


@dataclass(frozen=True)
class SulcationLaw:
    """Convexity sulci per hemisphere [D] (§2.5): none ≤ 23 w, 1–3 at 24–27 w (1–3 mm deep), 4–8 at 28–31 w
    (3–6 mm), 8–15 at ≥ 32 w (5–10 mm, branching). Each sulcus has an onset GA (uniform over the onset window),
    then deepens linearly up to its own maximum depth."""

    slots: int = 14
    onset_window_weeks: tuple[float, float] = (23.5, 34.0)
    growth_mm_per_week: float = 1.2
    max_depth_mm: tuple[float, float] = (5.0, 10.0)
    visible_depth_mm: float = 0.8
    cleft_width_mm: tuple[float, float] = (0.5, 1.0)
    branch_probability: float = 0.5
    branch_min_depth_mm: float = 5.0


SULCATION = SulcationLaw()


def sulcus_depth_mm(ga, onset_ga, max_depth_mm, law: SulcationLaw = SULCATION):
    return np.clip((_ga(ga) - onset_ga) * law.growth_mm_per_week, 0.0, max_depth_mm)


# ---------------------------------------------------------------------------------------------------
# T2 relaxation (anatomy.md §3.2, §5) — 1.5 T; T2 in ms
# ---------------------------------------------------------------------------------------------------


def wm_t2_ms(ga):
    """Unmyelinated WM / intermediate zone T2 [D] (§3.2): ≈ 300 ms at 21 w → 220 ms at 38 w (falls with GA [S])."""
    return np.interp(_ga(ga), [21.0, 38.0], [300.0, 220.0])


def thalamus_t2_ms(ga):
    """Thalamic T2 [D] (§3.2: 0.40–0.45 → ≈ 0.35 relative; T2* 159 ± 32 ms, Vasylechko 2015): 155 → 130 ms."""
    return np.interp(_ga(ga), [21.0, 38.0], [155.0, 130.0])


def basal_ganglia_t2_ms(ga):
    """Basal ganglia T2 [D] (§3.2: ≈ 0.45 relative, slowly darker): 165 → 145 ms."""
    return np.interp(_ga(ga), [21.0, 38.0], [165.0, 145.0])
