"""The phantom frames as Slicer sample data, so the tutorial works offline.

The files ship inside the extension (Resources/SampleData, made with ``ddic phantom --n 2 --seed 2026``,
case 001; pixel spacing in the NRRD header) and are registered with ``file://`` URIs, which Sample Data
copies into its cache like any download — SHA-256 checked, so a damaged installation is reported instead
of silently loading a wrong image. Registration runs at ``startupCompleted()``, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path

CATEGORY = "DDICSlicer"
# (sample name, file, node name, SHA-256, thumbnail): Testing/test_slicer_module.py checks the digests
SAMPLES = (
    ("DDIC phantom ultrasound frame", "DDICPhantomFrame.nrrd", "DDICPhantomFrame",
     "77b43e28d88de7f73e92658866a20fde5e5f75ce6e0adcbacb83e1561cb7acc0", "DDICPhantomFrame.png"),
    ("DDIC phantom canonical head", "DDICPhantomCanonical.nrrd", "DDICPhantomCanonical",
     "8478057e4f121f468668f020ed7720a3031338e450af0f17351c43f32d168ab6", "DDICPhantomCanonical.png"),
)

SELF_TEST_FRAME = "DDICPhantomFrame.nrrd"
# Where the self-test (DDICSlicerTest.test_LightSelfTest) prompts on that frame, in pixels (column, row):
# an anechoic region inside the head — the classical backend grows about 2100 pixels from it — and two
# CNR boxes given as (centre column, centre row, width, height). Testing/test_slicer_self_test.py runs
# the same prompts offline.
SELF_TEST_POINT = (500.0, 260.0)
SELF_TEST_CNR_BOXES = {"roi": (500.3, 260.2, 16.0, 12.0), "background": (300.3, 150.2, 16.0, 12.0)}


def sample_folder(module_dir: str | os.PathLike) -> Path:
    return Path(module_dir) / "Resources" / "SampleData"


def register(module_dir: str | os.PathLike) -> None:
    """Add the DDICSlicer category and its samples to the Sample Data module."""
    import SampleData

    folder = sample_folder(module_dir)
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):  # ≥ 5.12; 5.10 makes it itself
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(CATEGORY, CATEGORY)
    for sample_name, file_name, node_name, digest, thumbnail in SAMPLES:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category=CATEGORY, sampleName=sample_name, uris=(folder / file_name).as_uri(), fileNames=file_name,
            nodeNames=node_name, checksums=f"SHA256:{digest}", thumbnailFileName=str(folder / thumbnail),
            loadFileType="VolumeFile")
