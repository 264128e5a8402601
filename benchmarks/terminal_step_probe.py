"""Probe: what breaks DPM-Solver++(2M)'s round trip at N = 30–60, and does the exact terminal step fix it?

The schedule ends at ᾱ = 2.4e-9 (a finite λ), so the explicit encoder's last step is second order with weight
1/(2r) = h/(2·h_prev) ≈ 4–5 at every N, and the decoder's first step cannot undo it. This measures the US
model's full-depth round trip (head RMSE, as the trust number) with the explicit terminal step, with that weight
capped (first order where |1/(2r)| > CAP) or clamped to ±CAP (swapping
:func:`ddic.diffusion.solvers.second_order_weight` for the run), and with ``terminal="exact"`` (the shipped
default, :func:`ddic.diffusion.sampling.exact_terminal_latent`) — on the demo's own frame (placed by the automatic
skull fit and by the true ellipse) and on held-out validation frames.

  python benchmarks/terminal_step_probe.py --images VAL/us/paired --steps 30,50,100 --caps 1,2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ddic.diffusion.solvers as solvers
from ddic.demo.run import _phantom_frame
from ddic.diffusion.dataset import resample_square
from ddic.diffusion.denoisers import UNetDenoiser
from ddic.diffusion.modelfile import load_model
from ddic.diffusion.sampling import ode_decode, ode_encode
from ddic.diffusion.schedule import Schedule
from ddic.models.bundled import bundled_model_path
from ddic.translate.placement import PlacementOptions, place_frame
from ddic.translate.trust import head_round_trip_rmse

SHIPPED = solvers.second_order_weight


def variant(kind: str, cap: float):
    def weight(lam, lam_to, history):
        w = SHIPPED(lam, lam_to, history)
        if w is None:
            return None
        if kind == "cap":
            return None if abs(w) > cap else w
        return max(-cap, min(cap, w))
    return weight


def demo_frames(size: int) -> np.ndarray:
    frame, case = _phantom_frame(0, 30.0)
    anterior = bool(case["transform"].anterior_right)
    auto = place_frame(frame, size, PlacementOptions(mode="head", pixel_size_mm=frame.spacing[0],
                                                     anterior_right=anterior)).model_image()
    truth = resample_square(np.asarray(case["us"], np.float32), size)
    return np.stack([auto, truth]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--us-model", default=None)
    parser.add_argument("--images", type=Path, required=True, help="held-out canonical US PNGs (*_us.png)")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--steps", default="30,50,100")
    parser.add_argument("--caps", default="2")
    args = parser.parse_args()
    model_file = load_model(args.us_model or bundled_model_path("us"))
    schedule = Schedule.from_dict(model_file.card.schedule)
    model = UNetDenoiser(model_file.unet, "cpu", prediction=schedule.prediction)
    size = model_file.card.image_size
    files = sorted(args.images.glob("*_us.png"))[:args.limit]
    val = np.stack([resample_square(np.asarray(Image.open(f), np.float32), size) for f in files])
    images = torch.from_numpy(np.concatenate([demo_frames(size), val])[:, None] / 127.5 - 1.0).float()
    variants = [("explicit", SHIPPED, "explicit")]
    for cap in (float(c) for c in args.caps.split(",")):
        variants += [(f"explicit, cap {cap:g}", variant("cap", cap), "explicit"),
                     (f"explicit, clamp {cap:g}", variant("clamp", cap), "explicit")]
    variants.append(("**exact terminal step**", SHIPPED, "exact"))
    print("| terminal step / weight rule | N | demo frame, skull fit | demo frame, true ellipse | validation mean | "
          "validation max |")
    print("|---|---|---|---|---|---|")
    for name, rule, terminal in variants:
        solvers.second_order_weight = rule
        for steps in (int(s) for s in args.steps.split(",")):
            grid = schedule.grid(steps)
            with torch.no_grad():
                latent, _ = ode_encode(model, images, grid, "dpmpp2m", terminal=terminal, clip=True)
                back = ode_decode(model, latent, grid, "dpmpp2m", clip=True)
            e = head_round_trip_rmse(images, back).numpy()
            print(f"| {name} | {steps} | {e[0]:.3f} | {e[1]:.3f} | {e[2:].mean():.3f} | {e[2:].max():.3f} |", flush=True)
    solvers.second_order_weight = SHIPPED


if __name__ == "__main__":
    main()
