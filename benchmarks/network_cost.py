"""Cost of the network presets on the CPU at 64 px: one training step (batch 16, forward + backward + AdamW)
and one translation call at batch 1 (forward; forward + input-gradient backward), per preset.

  OMP_NUM_THREADS=1 python benchmarks/network_cost.py --presets tiny,slim --threads 1

Prints a Markdown table (the "Demo-model training recipe" section of BENCHMARKS.md). Compare ratios within one
run: absolute CPU timings move with the machine's load.
"""

from __future__ import annotations

import argparse
import time

import torch

from ddic.diffusion.networks import build_unet, count_parameters, unet_config


def seconds(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,slim")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| preset | parameters | train step, batch 16 (s) | forward, batch 1 (ms) | forward + input backward (ms) |")
    print("|---|---|---|---|---|")
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        net = build_unet(unet_config(preset, args.size))
        optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
        x16, t16 = torch.randn(16, 1, args.size, args.size), torch.randint(0, 1000, (16,))

        def train_step():
            loss = net(x16, t16).sample.pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step = seconds(train_step, 3)
        net.eval().requires_grad_(False)
        x1, t1 = torch.randn(1, 1, args.size, args.size), torch.tensor([500])
        with torch.no_grad():
            forward = seconds(lambda: net(x1, t1), 10)
        leaf = x1.clone().requires_grad_(True)
        both = seconds(lambda: torch.autograd.grad(net(leaf, t1).sample.sum(), leaf), 10)
        print(f"| {preset} | {count_parameters(net) / 1e6:.2f} M | {step:.2f} | {forward * 1e3:.0f} | {both * 1e3:.0f} |")


if __name__ == "__main__":
    main()
