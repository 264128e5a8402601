"""Peak memory (RSS) of ``ddic translate``: a 4000 × 3000 frame, and batches of 64 canonical frames.

Each run is a fresh ``python -m ddic translate`` process; its peak resident set size is read with
``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process, so runs never see each other's peak. Memory does
not depend on the number of ODE steps (every level costs the same), so the runs use ``--steps 2``; the mode
is ``faithful`` (the one with a network backward pass, the largest). Models: the bundled demo models
(tiny UNet, 64 px) unless ``--us-model/--mri-model`` say otherwise.

    python benchmarks/memory.py --out benchmarks/results/memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
           "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mib(args: list[str]) -> tuple[int, float, float]:
    """(exit code, peak RSS in MiB, seconds) of ``python -m ddic ARGS`` in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "ddic", *args],
                          capture_output=True, text=True, check=True)
    code, kib = done.stdout.split()[-2:]
    return int(code), int(kib) / 1024.0, time.perf_counter() - started


def large_frame(path: Path, width: int, height: int) -> float:
    """A phantom frame resampled to width × height (NRRD with its pixel size); returns the pixel size."""
    import SimpleITK as sitk

    from ddic.data.phantom.dataset import render_paired_case

    rendered = render_paired_case(0, 0, (30.0, 30.0))["frame"]
    image = sitk.GetImageFromArray(rendered.image.astype(np.float32))
    ps = float(rendered.pixel_size_mm)
    image.SetSpacing((ps, ps))
    spacing = ps * rendered.image.shape[1] / width
    reference = sitk.Image(width, height, sitk.sitkFloat32)
    reference.SetSpacing((spacing, spacing))
    big = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    big = sitk.Cast(sitk.Clamp(big, sitk.sitkFloat32, 0, 255), sitk.sitkUInt8)
    big.SetSpacing((spacing, spacing))
    sitk.WriteImage(big, str(path))
    return spacing


def canonical_frames(folder: Path, count: int, distinct: int = 8) -> None:
    """``count`` canonical 128 × 128 phantom US frames (``distinct`` anatomies, repeated under new names)."""
    from ddic.data.phantom.dataset import render_paired_case
    from ddic.io.images import write_png

    folder.mkdir(parents=True)
    images = [render_paired_case(7, i, (22.0, 36.0))["us"] for i in range(distinct)]
    for i in range(count):
        write_png(images[i % distinct], folder / f"c{i:03d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    parser.add_argument("--us-model", default="ddic-demo-us")
    parser.add_argument("--mri-model", default="ddic-demo-mri")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddic-memory-"))
    try:
        base = ["translate", "--us-model", args.us_model, "--mri-model", args.mri_model, "--steps", "2",
                "--mode", "faithful", "--device", args.device]
        large_frame(work / "big.nrrd", 4000, 3000)
        large_frame(work / "hd.nrrd", 1920, 1080)
        canonical_frames(work / "canonical", 64)
        small = work / "one"
        small.mkdir()
        shutil.copy(work / "canonical" / "c000.png", small / "c000.png")
        runs = {
            "one canonical frame (baseline: Python, torch, models)": [str(small), "--geometry", "square"],
            "one 1920 x 1080 frame": [str(work / "hd.nrrd")],
            "one 4000 x 3000 frame": [str(work / "big.nrrd")],
            "64 canonical frames, --batch-size 16 (default)": [str(work / "canonical"), "--geometry", "square"],
            "64 canonical frames, --batch-size 64": [str(work / "canonical"), "--geometry", "square",
                                                     "--batch-size", "64"],
        }
        results = []
        for name, extra in runs.items():
            out = work / f"out{len(results)}"
            code, mib, seconds = peak_rss_mib([*base, *extra, "--out", str(out)])
            results.append({"run": name, "exit_code": code, "peak_rss_mib": round(mib, 1),
                            "seconds": round(seconds, 1)})
            print(f"{name}: exit {code}, peak RSS {mib:.0f} MiB, {seconds:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
