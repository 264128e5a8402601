"""Automatic orientation (which end of the head is frontal) against phantom truth.

For every case of a phantom US dataset (``ddic phantom ... --domains us``) the true skull ellipse is fitted
from the annotation and :func:`ddic.geometry.head.guess_anterior` decides — or abstains (None) — whether the
frontal end is the one on the frame's right; truth is ``anterior_right`` in ``us/paired/paired.csv``.

    python benchmarks/orientation.py /tmp/ph60/us /tmp/ph60s11/us
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ddic.geometry.ellipse import fit_annotation
from ddic.geometry.head import ANTERIOR_MARGIN, guess_anterior
from ddic.io.images import read_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="phantom OUT/us folders")
    args = parser.parse_args()
    for root in args.roots:
        with open(root / "paired" / "paired.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        decided = correct = 0
        for row in rows:
            frame = read_frame(root / "hc18" / row["frame"])
            ellipse = fit_annotation(read_frame(root / "hc18" / row["annotation"]).pixels)
            guess = guess_anterior(frame.pixels, ellipse)
            if guess is not None:
                decided += 1
                correct += guess == (row["anterior_right"] == "1")
        print(f"{root}: margin {ANTERIOR_MARGIN}: decided {decided}/{len(rows)}, correct {correct}/{decided}")


if __name__ == "__main__":
    main()
