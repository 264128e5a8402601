"""Round-trip error of the ODE: encode held-out canonical images with a model, decode with the same model.

DDIB (and so DDIC) rests on the ODE round trip being faithful: an image encoded and decoded by one model
must come back. This measures it — RMSE on the [−1, 1] scale — for each model, solver and step count N,
over the full depth (to ᾱ = 0, as translation encodes). Network evaluations per image are 2N.

Examples:
  python benchmarks/roundtrip.py --model Resources/models/demo-us --images PHANTOM/us/paired --pattern '*_us.png'
  python benchmarks/roundtrip.py --model M1 --model M2 --images DIR --steps 10,20,50,100 --solvers ddim,dpmpp2m
Writes a JSON file (``--out``) and a Markdown table on stdout. Use held-out images (never an evaluation seed's
frames for choosing a recipe).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ddic.diffusion.dataset import resample_square
from ddic.diffusion.denoisers import UNetDenoiser
from ddic.diffusion.sampling import ode_decode, ode_encode
from ddic.diffusion.schedule import Schedule
from ddic.io.images import read_frame
from ddic.diffusion.modelfile import load_model


def load_images(folder: Path, pattern: str, size: int, normalisation, limit: int) -> torch.Tensor:
    files = sorted(folder.glob(pattern))[:limit]
    if not files:
        raise SystemExit(f"no images matching {pattern} in {folder}")
    images = []
    for path in files:
        pixels = resample_square(read_frame(path).pixels, size)
        images.append(normalisation.to_model(pixels, normalisation.window(pixels)))
    return torch.from_numpy(np.stack(images)[:, None])


def round_trip(model, images: torch.Tensor, schedule: Schedule, steps: int, solver: str) -> np.ndarray:
    grid = schedule.grid(steps)
    latent, _ = ode_encode(model, images, grid, solver)
    back = ode_decode(model, latent, grid, solver, clip=True)
    return (back - images).pow(2).flatten(1).mean(dim=1).sqrt().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="model folder or card (repeatable)")
    parser.add_argument("--images", type=Path, required=True, help="folder of held-out canonical images")
    parser.add_argument("--pattern", default="*.png", help="file pattern inside --images")
    parser.add_argument("--limit", type=int, default=16, help="images used (first by name)")
    parser.add_argument("--steps", default="20,50,100", help="comma-separated N")
    parser.add_argument("--solvers", default="ddim,dpmpp2m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="JSON results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for model_path in args.model:
        loaded = load_model(model_path)
        schedule = Schedule.from_dict(loaded.card.schedule)
        model = UNetDenoiser(loaded.unet, "cpu", prediction=schedule.prediction)
        images = load_images(args.images, args.pattern, loaded.card.image_size, loaded.normalisation, args.limit)
        for solver in args.solvers.split(","):
            for steps in (int(s) for s in args.steps.split(",")):
                started = time.perf_counter()
                with torch.no_grad():
                    errors = round_trip(model, images, schedule, steps, solver)
                results.append({"model": str(model_path), "prediction": schedule.prediction, "solver": solver,
                                "steps": steps, "nfe_per_image": 2 * steps, "images": len(errors),
                                "rmse_mean": float(errors.mean()), "rmse_max": float(errors.max()),
                                "seconds": round(time.perf_counter() - started, 2)})
                r = results[-1]
                print(f"| {Path(model_path).name} | {r['prediction']} | {solver} | {steps} | {r['rmse_mean']:.4f} "
                      f"| {r['rmse_max']:.4f} |", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                        "torch": torch.__version__, "images": str(args.images),
                                        "pattern": args.pattern, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
