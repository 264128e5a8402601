"""Preparers: public datasets → canonical 128×128 training images (``ddic prepare DATASET``).

Each preparer writes ``OUT/train/*.png``, ``OUT/test/*.png`` and ``OUT/manifest.csv`` (one row per source
file, kept or skipped, with the reason), atomically: a failed run leaves no partial output folder.
"""

PREPARERS = ("hc18",)
"""The datasets ``ddic prepare`` knows; FeTA and the CRL atlas (MRI side) are to come."""
