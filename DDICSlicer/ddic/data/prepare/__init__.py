"""Preparers: public datasets → canonical 128×128 training images (``ddic prepare DATASET``).

Each preparer writes ``OUT/train/*.png``, ``OUT/test/*.png`` and ``OUT/manifest.csv`` (one row per source
file, kept or skipped, with the reason), atomically: a failed run leaves no partial output folder.
"""

PREPARERS = ("hc18", "feta", "crl")
"""The datasets ``ddic prepare`` knows: HC18 (ultrasound); FeTA and the CRL atlas (MRI, shared slice logic in
:mod:`.mri_common`)."""
