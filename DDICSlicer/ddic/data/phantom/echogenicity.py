"""Acoustic and B-mode appearance of each phantom tissue (``shared/docs/anatomy.md`` §3.1 and §4).

Every label of :class:`ddic.data.labels.Label` gets an :class:`Echo`: the diffuse backscatter level, the
acoustic impedance (specular reflections at label changes) and the attenuation. Levels are in dB relative
to the echo of the skull hit at normal incidence (0 dB), as in anatomy.md §3.1; the ordering is sourced
there, the numbers are design values [D] to tune against real frames.

Besides the anatomical labels the renderer uses a few *render-only* ids (never in a ground-truth label
map): the echogenic borders of the Sylvian fissure and ambient cistern (arachnoid, vessels), the mildly
echogenic periventricular white-matter "halo", and the layers of the maternal abdominal wall.
:func:`render_ids` paints the first two onto a label map; the wall layers follow the probe, not the head,
and are drawn along the beams (:func:`ddic.data.phantom.scan_geometry.world_labels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..labels import Label


@dataclass(frozen=True)
class Echo:
    """How one tissue looks in B-mode.

    ``backscatter_db``: mean envelope of its fully developed speckle, dB re the normal-incidence skull echo.
    ``impedance_mrayl``: acoustic impedance; a change between neighbours along a beam is a specular reflector.
    ``attenuation_db_cm_mhz``: one-way attenuation coefficient.
    ``textured``: whether the low-frequency, non-Rayleigh texture field modulates it (not for fluids).
    """

    backscatter_db: float
    impedance_mrayl: float
    attenuation_db_cm_mhz: float
    textured: bool = True


FLUID_DB = -100.0  # anatomy.md §4.4: fluids ≈ −100 dB so that TGC never lifts them into view
_FLUID = Echo(FLUID_DB, 1.50, 0.002, textured=False)
_CSF = Echo(FLUID_DB, 1.51, 0.002, textured=False)
_BRAIN_Z = 1.57  # parenchyma (anatomy.md §3.1: 1.58–1.65; lower end keeps brain/CSF walls ≈ −24 dB)

SKULL_NOMINAL = Echo(-13.0, 3.0, 6.0)
"""Calvarium: diffuse −10…−15 dB, fetal Z 2.5–4 MRayl, α 4–10 dB/cm/MHz (≈ 10–15 dB two-way loss)."""

ECHO: dict[int, Echo] = {
    Label.BACKGROUND: _FLUID,  # outside the label map's content: treated as amniotic fluid
    Label.AMNIOTIC_FLUID: _FLUID,
    Label.MATERNAL_WALL: Echo(-32.0, 1.60, 0.6),
    Label.SCALP: Echo(-28.0, 1.62, 0.6),
    Label.SKULL: SKULL_NOMINAL,
    Label.EXTRA_AXIAL_CSF: _CSF,
    Label.CORTEX: Echo(-43.0, 1.56, 0.6),
    Label.WHITE_MATTER: Echo(-40.0, _BRAIN_Z, 0.6),
    Label.LATERAL_VENTRICLE: _CSF,
    Label.CHOROID_PLEXUS: Echo(-22.0, 1.62, 0.8, textured=False),  # hyperechoic, homogeneous
    Label.CAVUM_SEPTUM_PELLUCIDUM: _CSF,
    Label.THIRD_VENTRICLE: _CSF,
    Label.THALAMUS: Echo(-45.0, _BRAIN_Z, 0.6),  # slightly hypoechoic (−4…−6 dB vs WM)
    Label.BASAL_GANGLIA: Echo(-42.0, _BRAIN_Z, 0.6),
    Label.GERMINAL_MATRIX: Echo(-40.0, _BRAIN_Z, 0.6),  # not distinguishable from WM
    Label.SYLVIAN_FISSURE: _CSF,  # fluid; its borders are echogenic (ECHOGENIC_BORDER)
    Label.FALX: Echo(-22.0, 1.68, 0.8),  # echogenic line, specular, less bright than the calvarium
    Label.AMBIENT_CISTERN: _CSF,
}

# ---- render-only ids (above every Label value)
ECHOGENIC_BORDER = 32
"""Fluid side of the Sylvian fissure / ambient cistern edge: arachnoid and vessels, −25…−30 dB."""
PERIVENTRICULAR_HALO = 33
"""White matter next to the lateral ventricles: +2…+4 dB over WM (kept subtle, anatomy.md §3.1 [?])."""
WALL_SKIN, WALL_FAT, WALL_MUSCLE, WALL_MYOMETRIUM = 40, 41, 42, 43

ECHO[ECHOGENIC_BORDER] = Echo(-27.0, _BRAIN_Z, 0.6, textured=False)
ECHO[PERIVENTRICULAR_HALO] = Echo(-37.0, _BRAIN_Z, 0.6)
ECHO[WALL_SKIN] = Echo(-27.0, 1.62, 0.6)
ECHO[WALL_FAT] = Echo(-40.0, 1.38, 0.63)
ECHO[WALL_MUSCLE] = Echo(-31.0, 1.65, 1.0)
ECHO[WALL_MYOMETRIUM] = Echo(-33.0, 1.60, 0.7)

RENDER_ONLY_IDS = (ECHOGENIC_BORDER, PERIVENTRICULAR_HALO, WALL_SKIN, WALL_FAT, WALL_MUSCLE, WALL_MYOMETRIUM)
WALL_IDS = (WALL_SKIN, WALL_FAT, WALL_MUSCLE, WALL_MYOMETRIUM)

FLUID_IDS = tuple(sorted(i for i, e in ECHO.items() if e.backscatter_db <= FLUID_DB))
PARENCHYMA_IDS = (Label.WHITE_MATTER, Label.CORTEX, Label.GERMINAL_MATRIX, Label.BASAL_GANGLIA,
                  Label.THALAMUS, PERIVENTRICULAR_HALO)
"""Brain tissue whose median level the auto-gain puts at the chosen parenchyma grey."""

SKULL_REFLECTION = (SKULL_NOMINAL.impedance_mrayl - ECHO[Label.SCALP].impedance_mrayl) / (
    SKULL_NOMINAL.impedance_mrayl + ECHO[Label.SCALP].impedance_mrayl)
"""Pressure reflection coefficient of the nominal scalp→skull interface: the 0 dB reference."""


@dataclass
class TissueTables:
    """Per-id lookup arrays (256 entries) for one rendered frame, after its per-image jitter."""

    backscatter_db: np.ndarray
    impedance: np.ndarray
    attenuation: np.ndarray
    textured: np.ndarray
    known: np.ndarray

    @classmethod
    def build(cls, jitter_db: dict[int, float] | None = None, skull_attenuation_scale: float = 1.0,
              skull_impedance: float | None = None) -> "TissueTables":
        size = 256
        tables = cls(np.full(size, FLUID_DB, np.float32), np.full(size, _FLUID.impedance_mrayl, np.float32),
                     np.full(size, _FLUID.attenuation_db_cm_mhz, np.float32), np.zeros(size, bool),
                     np.zeros(size, bool))
        jitter_db = jitter_db or {}
        for ident, echo in ECHO.items():
            level = echo.backscatter_db
            if level > FLUID_DB:
                level += jitter_db.get(int(ident), 0.0)
            tables.backscatter_db[ident] = level
            tables.impedance[ident] = echo.impedance_mrayl
            tables.attenuation[ident] = echo.attenuation_db_cm_mhz
            tables.textured[ident] = echo.textured
            tables.known[ident] = True
        tables.attenuation[Label.SKULL] *= float(skull_attenuation_scale)
        if skull_impedance is not None:
            tables.impedance[Label.SKULL] = float(skull_impedance)
        return tables


def render_ids(labels: np.ndarray, spacing: float) -> np.ndarray:
    """Labels plus the render-only ids: echogenic fissure/cistern borders, periventricular halo."""
    ids = labels.copy()
    border_px = max(1, int(round(0.6 / spacing)))
    for label in (Label.SYLVIAN_FISSURE, Label.AMBIENT_CISTERN):
        mask = labels == label
        if mask.any():
            box = _bbox(mask, border_px + 1)
            inner = ndimage.binary_erosion(mask[box], iterations=border_px, border_value=1)
            ids[box][mask[box] & ~inner] = ECHOGENIC_BORDER
    ventricles = labels == Label.LATERAL_VENTRICLE
    if ventricles.any():
        halo_px = 2.0 / spacing
        box = _bbox(ventricles, int(math.ceil(halo_px)) + 1)
        distance = ndimage.distance_transform_edt(~ventricles[box])
        sub = ids[box]
        sub[(distance <= halo_px) & (labels[box] == Label.WHITE_MATTER)] = PERIVENTRICULAR_HALO
    return ids


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The bounding box of ``mask``'s pixels grown by ``pad`` (clipped): filters run on it, not the map."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return (slice(max(0, rows[0] - pad), min(mask.shape[0], rows[-1] + pad + 1)),
            slice(max(0, cols[0] - pad), min(mask.shape[1], cols[-1] + pad + 1)))
