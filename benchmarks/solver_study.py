"""The curve that decides the solver and the step count (issue 14): quality and cost against network
evaluations per frame, for each solver, N from 5 to 1000.

Two parts:

* **analytic** — the image-like Gaussian of ``Testing/test_solvers.py`` (exact denoiser): full-depth round-trip
  RMSE per solver and N. No network: the solver's own error.
* **models** — the trained pair on held-out paired phantom frames, DDIC faithful with each (solver, N) through
  ``ddic evaluate`` (so every number is the evaluation's own): MI with the US, SSIM vs the paired MRI, ventricle
  Dice, and the US round trip (faithful DDIC's US chain is the US model's decode of the latent). Plus the
  wall-clock seconds of one frame at batch 1 (``--threads``), measured in this run.

Choose on a validation seed, never on the evaluation seed. Example (the table in BENCHMARKS.md):

  python benchmarks/solver_study.py --paired VAL_PHANTOM --frames 12 --out study/
  (defaults: the bundled demo pair; ddim and dpmpp2m at N = 5 … 1000; N ≥ 500 on the first 6 frames)

Writes study/solver_study.json, study/solver_study.md and the figure (``--figure``, default
docs/solver_study.png).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_GRID = {"ddim": (10, 20, 50, 100, 200, 1000), "dpmpp2m": (5, 10, 15, 20, 30, 50, 100, 1000)}
METRICS = ("mi_ksg", "ssim", "dice", "us_round_trip_rmse", "width_abs_error_mm")


def analytic(solvers, steps_list) -> list[dict]:
    """Round trip of the exact image-like Gaussian (Testing/test_solvers.py) per solver and N."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
    from ddic.diffusion.denoisers import GaussianDenoiser
    from ddic.diffusion.sampling import ode_decode, ode_encode
    from ddic.diffusion.schedule import Schedule
    from test_solvers import SIZE, dct_basis

    schedule = Schedule()
    basis = dct_basis(SIZE)
    f2 = (np.arange(SIZE)[:, None] ** 2 + np.arange(SIZE)[None, :] ** 2).ravel()
    var = 1.0 / (1.0 + f2) ** 1.5
    var *= SIZE * SIZE * 0.05 / var.sum()
    mean = np.zeros(SIZE * SIZE)
    mean[0] = -0.3 * SIZE
    g = torch.Generator().manual_seed(0)
    comps = torch.from_numpy(mean).float() + torch.from_numpy(np.sqrt(var)).float() * torch.randn(8, SIZE * SIZE,
                                                                                                 generator=g)
    images = (comps @ torch.from_numpy(basis).float().T).reshape(8, 1, SIZE, SIZE)
    model = GaussianDenoiser(mean, np.sqrt(var), schedule.alpha_bar, prediction="v_prediction", basis=basis)
    rows = []
    for solver in solvers:
        for n in steps_list:
            grid = schedule.grid(n)
            latent, _ = ode_encode(model, images, grid, solver)
            back = ode_decode(model, latent, grid, solver, clip=False)
            rows.append({"solver": solver, "steps": n, "nfe_round_trip": 2 * n,
                         "rmse": float((back - images).pow(2).mean().sqrt())})
    return rows


def model_run(args, solver: str, steps: int, out: Path) -> dict:
    from ddic.evaluate import EvaluateOptions, run_evaluation
    from ddic.translate.options import TranslateOptions

    limit = args.frames if steps < 500 else min(args.frames, args.large_n_frames)
    folder = out / f"{solver}_{steps:04d}"
    options = EvaluateOptions(us_test=args.paired, out=folder, methods=("ddic",), us_model=args.us_model,
                              mri_model=args.mri_model, paired=args.paired, limit=limit, fid=False, grid_frames=0,
                              translation=TranslateOptions(solver=solver, steps=steps, mode="faithful",
                                                           batch_size=args.batch_size, device="cpu"))
    run_evaluation(options)
    with open(folder / "per_image.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["method"] == "ddic"]
    result = {"solver": solver, "steps": steps, "nfe_per_frame": 5 * steps, "frames": len(rows)}
    for key in METRICS:
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "nan")]
        values = [v for v in values if math.isfinite(v)]
        result[key] = float(np.mean(values)) if values else None
    result["frame_names"] = [r["frame"] for r in rows]
    return result


def seconds_per_frame(args, solver: str, steps: int) -> float:
    """Wall-clock seconds of one frame, DDIC faithful at batch 1, ``--threads`` torch threads."""
    from ddic.diffusion.modelfile import load_model
    from ddic.translate.engine import Translator
    from ddic.translate.options import TranslateOptions

    us, mri = load_model(args.us_model), load_model(args.mri_model)
    translator = Translator(us, mri, TranslateOptions(solver=solver, steps=steps, batch_size=1, device="cpu"))
    image = np.full((1, us.card.image_size, us.card.image_size), -0.5, np.float32)
    translator.translate(image)  # warm-up
    started = time.perf_counter()
    translator.translate(image)
    return time.perf_counter() - started


def figure(results: list[dict], analytic_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("us_round_trip_rmse", "US round trip RMSE"), ("mi_ksg", "MI with the US (nats)"),
              ("ssim", "SSIM vs paired MRI"), ("dice", "Ventricle Dice")]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.4))
    for solver in sorted({r["solver"] for r in analytic_rows}):
        rows = [r for r in analytic_rows if r["solver"] == solver]
        axes[0].loglog([r["nfe_round_trip"] for r in rows], [r["rmse"] for r in rows], "o-", label=solver)
    axes[0].set(title="Exact Gaussian: round trip", xlabel="network evaluations (encode + decode)", ylabel="RMSE")
    axes[0].legend()
    for ax, (key, label) in zip(axes[1:], panels):
        for solver in sorted({r["solver"] for r in results}):
            rows = sorted((r for r in results if r["solver"] == solver and r.get(key) is not None),
                          key=lambda r: r["steps"])
            ax.semilogx([r["nfe_per_frame"] for r in rows], [r[key] for r in rows], "o-", label=solver)
        ax.set(title=label, xlabel="network evaluations per frame (DDIC faithful, 5N)")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    from ddic.models.bundled import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--us-model", default=None)
    parser.add_argument("--mri-model", default=None)
    parser.add_argument("--paired", type=Path, required=True, help="held-out `ddic phantom` folder (validation seed)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--large-n-frames", type=int, default=6, help="frames for N ≥ 500")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--grid", default=None, help="e.g. 'ddim:10,100;dpmpp2m:10,20' (default: the full grid)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the seconds-per-frame timing")
    parser.add_argument("--timing-steps", default="10,15,20,30,50,100", help="N timed at batch 1")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figure", type=Path, default=Path("docs/solver_study.png"))
    parser.add_argument("--timing-only", action="store_true",
                        help="keep the quality results of an earlier run in --out and redo only the timings "
                             "(on a machine with nothing else running)")
    args = parser.parse_args()
    args.us_model = args.us_model or str(bundled_model_path("us"))
    args.mri_model = args.mri_model or str(bundled_model_path("mri"))
    grid = DEFAULT_GRID if not args.grid else {
        part.split(":")[0]: tuple(int(n) for n in part.split(":")[1].split(",")) for part in args.grid.split(";")}
    args.out.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(1)
    if args.timing_only:
        earlier = json.loads((args.out / "solver_study.json").read_text())
        analytic_rows, results = earlier["analytic"], earlier["models"]
    else:
        analytic_rows = analytic(sorted(grid), sorted({n for ns in grid.values() for n in ns}))
        results = []
        for solver, steps_list in grid.items():
            for steps in steps_list:
                results.append(model_run(args, solver, steps, args.out))
                print(json.dumps({k: v for k, v in results[-1].items() if k != "frame_names"}), flush=True)
    torch.set_num_threads(args.threads)
    timings = [{"solver": s, "steps": n, "seconds_per_frame": round(seconds_per_frame(args, s, n), 3)}
               for s in grid for n in (int(v) for v in args.timing_steps.split(","))]
    report = {"machine": f"{platform.machine()} {platform.processor()}", "torch": torch.__version__,
              "threads_for_timing": args.threads, "date": time.strftime("%Y-%m-%d"), "paired": str(args.paired),
              "us_model": args.us_model, "mri_model": args.mri_model, "analytic": analytic_rows,
              "models": results, "timings": timings}
    (args.out / "solver_study.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| solver | N | NFE/frame | frames | US round trip | MI | SSIM | Dice | |width err| mm |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    for r in results:
        lines.append(f"| {r['solver']} | {r['steps']} | {r['nfe_per_frame']} | {r['frames']} | "
                     f"{fmt(r['us_round_trip_rmse'])} | {fmt(r['mi_ksg'])} | {fmt(r['ssim'])} | {fmt(r['dice'])} | "
                     f"{fmt(r['width_abs_error_mm'])} |")
    lines += ["", "| solver | N | s/frame (batch 1) |", "|---|---|---|"]
    lines += [f"| {t['solver']} | {t['steps']} | {t['seconds_per_frame']:.2f} |" for t in timings]
    lines += ["", "| solver | N | exact-Gaussian round trip |", "|---|---|---|"]
    lines += [f"| {r['solver']} | {r['steps']} | {r['rmse']:.4f} |" for r in analytic_rows]
    (args.out / "solver_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    figure(results, analytic_rows, args.figure)


if __name__ == "__main__":
    main()
