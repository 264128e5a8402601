"""Fit the per-pixel Gaussian "exact models" of the test suite to canonical training images.

For each domain the per-pixel mean and standard deviation of the images (64 px, [−1, 1] scale) define a
Gaussian whose exact denoiser (:class:`ddic.diffusion.denoisers.GaussianDenoiser`) needs no training: DDIB
and DDIC run on it exactly, so the method's effect can be checked in CI without a network
(``Testing/test_exact_models.py``). Fitted on the demo models' training data (phantom seed 1000, disjoint
from every evaluation and test seed):

  python benchmarks/fit_gaussian_models.py --us US_FOLDER --mri MRI_FOLDER --out Testing/data/gaussian_models_64.npz

US_FOLDER: canonical US images (the `us/paired/*_us.png` of `ddic phantom --seed 1000`); MRI_FOLDER: canonical
brain-extracted MRI slices (`mri/canonical` of `ddic phantom --seed 1000 --domains mri`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ddic.diffusion.dataset import load_training_images

SIZE = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--us", type=Path, required=True)
    parser.add_argument("--mri", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    arrays = {}
    for domain, folder in (("us", args.us), ("mri", args.mri)):
        images = load_training_images(folder, SIZE, "uint8").images[:, 0].numpy().astype(np.float64)
        arrays[f"{domain}_mean"] = images.mean(axis=0).astype(np.float16)
        arrays[f"{domain}_std"] = np.maximum(images.std(axis=0), 1e-3).astype(np.float16)
        arrays[f"{domain}_count"] = np.array(len(images))
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: US {arrays['us_count']} images, MRI {arrays['mri_count']} images, {SIZE} px")


if __name__ == "__main__":
    main()
