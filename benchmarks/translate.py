"""Translation speed: seconds and network evaluations per frame for DDIB and each DDIC mode.

Every variant's cost is linear in the number of steps N (each ODE level costs the same whatever its t),
so each configuration is *run* at ``min(N, --run-steps)`` steps and its time per frame at N is the
measured time scaled by N / run-steps; the table says which N was actually run. Network evaluations are
counted, not assumed. Ratios against DDIB come from the same run and the same machine state.

Examples:
  python benchmarks/translate.py --presets tiny:64 --batches 1 --steps 50,100 --run-steps 100   # all real
  python benchmarks/translate.py --presets tiny:128,small:128,paper:128 --batches 1,16 --run-steps 3
  python benchmarks/translate.py --device cuda --precision fp32,bf16 --compile off,on --batches 1,16,64
  (the GPU table of issue 14: --presets small:128 --steps 20,100 --run-steps 20 --solver dpmpp2m)
Results go to a JSON file (``--out``) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ddic.diffusion.denoisers import UNetDenoiser
from ddic.diffusion.networks import build_unet, count_parameters, unet_config
from ddic.diffusion.schedule import Schedule
from ddic.translate.device import configure_backends, select_device
from ddic.translate.engine import translate_tensor
from ddic.translate.options import TranslateOptions

VARIANTS = {
    "ddib": dict(method="ddib"),
    "faithful": dict(method="ddic", mode="faithful"),
    "cached": dict(method="ddic", mode="cached"),
    "cheap": dict(method="ddic", mode="cheap"),
}


def flops_per_call(unet, size: int, device: torch.device) -> tuple[float, float]:
    """(forward, forward + input-gradient backward) FLOPs of one network call on one 1×size² image."""
    from torch.utils.flop_counter import FlopCounterMode

    unet.requires_grad_(False)  # as in translation: the backward computes input gradients only
    x = torch.randn(1, 1, size, size, device=device)
    t = torch.full((1,), 500, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x, t)
    forward = counter.get_total_flops()
    leaf = x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        unet(leaf, t).sample.sum().backward()
    return float(forward), float(counter.get_total_flops())


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(us, mri, schedule, size, batch, variant, steps, device, solver="ddim") -> tuple[float, dict]:
    options = TranslateOptions(steps=steps, batch_size=batch, device=str(device), solver=solver,
                               round_trip_check=False, **VARIANTS[variant])
    source = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    us.counter.reset()
    mri.counter.reset()
    synchronise(device)
    start = time.perf_counter()
    translate_tensor(source, us, mri, schedule, options)
    synchronise(device)
    elapsed = time.perf_counter() - start
    counts = {"forward": us.counter.forward + mri.counter.forward,
              "backward": us.counter.backward + mri.counter.backward}
    return elapsed, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny:64,tiny:128,small:128", help="PRESET:SIZE list")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--steps", default="50,100,1000", help="N values to report")
    parser.add_argument("--run-steps", type=int, default=5, help="the most steps actually run per config")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the fastest counts")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--solver", default="ddim", help="ODE solver (ddim, dpmpp2m): the cost per step is the same")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="fp32 and/or bf16 (CUDA only), comma list")
    parser.add_argument("--compile", default="off", help="off and/or on (torch.compile the UNets)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--skip", default="paper:128:16", help="PRESET:SIZE:BATCH combinations to skip")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/translate.json"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    configure_backends(device)
    schedule = Schedule()
    skip = {s for s in args.skip.split(",") if s}
    report_steps = [int(n) for n in args.steps.split(",")]
    rows, flops = [], {}
    for spec in args.presets.split(","):
        preset, size = spec.split(":")
        size = int(size)
        torch.manual_seed(0)
        base_us = build_unet(unet_config(preset, size)).to(device)
        base_mri = build_unet(unet_config(preset, size)).to(device)
        fwd, fwd_bwd = flops_per_call(base_us, size, device)
        flops[spec] = {"parameters": count_parameters(base_us), "forward_flops": fwd,
                       "forward_input_backward_flops": fwd_bwd}
        for precision in args.precision.split(","):
            for compiled in args.compile.split(","):
                us_net, mri_net = base_us, base_mri
                if compiled == "on":
                    us_net, mri_net = torch.compile(base_us), torch.compile(base_mri)
                us = UNetDenoiser(us_net, device, bf16=precision == "bf16")
                mri = UNetDenoiser(mri_net, device, bf16=precision == "bf16")
                for batch in (int(b) for b in args.batches.split(",")):
                    if f"{spec}:{batch}" in skip:
                        continue
                    run_variant(us, mri, schedule, size, batch, "ddib", 2, device)  # warm-up
                    measured = {}
                    # repeats interleave the variants, and the fastest repeat counts, so that a burst of
                    # other load on the machine hits every variant alike instead of skewing one ratio
                    for repeat in range(args.repeats):
                        for variant in args.variants.split(","):
                            for ran in sorted({min(n, args.run_steps) for n in report_steps}):
                                seconds, counts = run_variant(us, mri, schedule, size, batch, variant, ran, device,
                                                              args.solver)
                                best = measured.get((variant, ran))
                                if best is None or seconds < best[0]:
                                    measured[(variant, ran)] = (seconds, counts)
                                print(f"  {spec} b{batch} {precision} compile={compiled} {variant} "
                                      f"ran N={ran} (repeat {repeat + 1}): {seconds:.2f} s", flush=True)
                    for variant in args.variants.split(","):
                        for steps in report_steps:
                            ran = min(steps, args.run_steps)
                            seconds, counts = measured[(variant, ran)]
                            scale = steps / ran
                            per_frame_flops = (counts["forward"] * fwd +
                                               counts["backward"] * (fwd_bwd - fwd)) * scale
                            rows.append({
                                "preset": preset, "size": size, "batch": batch, "precision": precision,
                                "compile": compiled, "variant": variant, "steps": steps, "ran_steps": ran,
                                "seconds_per_frame": seconds * scale / batch,
                                "frames_per_second": batch / (seconds * scale),
                                "forward_per_frame": counts["forward"] * scale,
                                "backward_per_frame": counts["backward"] * scale,
                                "tflop_per_frame": per_frame_flops / 1e12,
                            })
    for row in rows:
        base = next(r for r in rows if r["variant"] == "ddib" and all(
            r[k] == row[k] for k in ("preset", "size", "batch", "precision", "compile", "steps")))
        row["ratio_vs_ddib"] = row["seconds_per_frame"] / base["seconds_per_frame"]

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "processor": platform.processor(),
            "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "args": vars(args) | {"out": str(args.out)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "flops": flops, "rows": rows}, indent=2) + "\n")

    print("\n| preset | size | batch | prec | compile | variant | N | ran N | s/frame | frames/s | fwd/frame | "
          "bwd/frame | TFLOP/frame | × DDIB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['size']} | {r['batch']} | {r['precision']} | {r['compile']} | {r['variant']} | "
              f"{r['steps']} | {r['ran_steps']} | {r['seconds_per_frame']:.3g} | {r['frames_per_second']:.3g} | "
              f"{r['forward_per_frame']:.0f} | {r['backward_per_frame']:.0f} | {r['tflop_per_frame']:.3g} | "
              f"{r['ratio_vs_ddib']:.2f} |")
    print("\n| preset | parameters | GFLOP forward | GFLOP forward + input backward |")
    print("|---|---|---|---|")
    for spec, f in flops.items():
        print(f"| {spec} | {f['parameters'] / 1e6:.2f} M | {f['forward_flops'] / 1e9:.1f} | "
              f"{f['forward_input_backward_flops'] / 1e9:.1f} |")


if __name__ == "__main__":
    main()
