"""The phantom's label set: one id per tissue class, shared by the anatomy, both renderers, the FeTA
writer and the evaluation. Ids and names follow ``shared/docs/anatomy.md`` §6.1; FeTA classes map the
phantom onto the FeTA label layout (0 background, 1 eCSF, 2 GM, 3 WM, 4 ventricles, 5 cerebellum,
6 deep GM, 7 brainstem) so FeTA-style loaders run on phantom volumes unchanged.
"""

from __future__ import annotations

from enum import IntEnum


class Label(IntEnum):
    BACKGROUND = 0
    AMNIOTIC_FLUID = 1
    MATERNAL_WALL = 2
    SCALP = 3
    SKULL = 4
    EXTRA_AXIAL_CSF = 5
    CORTEX = 6
    WHITE_MATTER = 7
    LATERAL_VENTRICLE = 8
    CHOROID_PLEXUS = 9
    CAVUM_SEPTUM_PELLUCIDUM = 10
    THIRD_VENTRICLE = 11
    THALAMUS = 12
    BASAL_GANGLIA = 13
    GERMINAL_MATRIX = 14
    SYLVIAN_FISSURE = 15
    FALX = 16
    AMBIENT_CISTERN = 17


FETA_CLASS = {
    Label.BACKGROUND: 0, Label.AMNIOTIC_FLUID: 0, Label.MATERNAL_WALL: 0, Label.SCALP: 0, Label.SKULL: 0,
    Label.EXTRA_AXIAL_CSF: 1, Label.CORTEX: 2, Label.WHITE_MATTER: 3, Label.LATERAL_VENTRICLE: 4,
    Label.CHOROID_PLEXUS: 4, Label.CAVUM_SEPTUM_PELLUCIDUM: 1, Label.THIRD_VENTRICLE: 4, Label.THALAMUS: 6,
    Label.BASAL_GANGLIA: 6, Label.GERMINAL_MATRIX: 3, Label.SYLVIAN_FISSURE: 1, Label.FALX: 1,
    Label.AMBIENT_CISTERN: 1,
}
"""Phantom label → FeTA class. CSP and choroid plexus assignments are open items (anatomy.md §9)."""

BRAIN_LABELS = frozenset(label for label, feta in FETA_CLASS.items() if feta != 0)
"""Labels inside the brain mask (what an MRI brain extraction keeps)."""

HEAD_LABELS = BRAIN_LABELS | {Label.SKULL, Label.SCALP}
