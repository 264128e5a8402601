"""The per-frame trust number: how well the US model reproduces the frame it is translating.

DDIB / DDIC decode the frame's latent with the MRI model. That latent means something only if the US model
represents the frame — if encoding the frame and decoding the latent with the *same* US model gives the
frame back. So every translation also measures that round trip: the RMSE (on the model's [−1, 1] scale)
between the US input and its US-model reconstruction, over the head (the pixels the canonical mask keeps;
the masked background reconstructs trivially and would dilute it). In DDIC's faithful mode the parallel US
chain *is* that reconstruction, so the number is free; otherwise one extra US decode (N evaluations) makes
it.

The round trip of even an in-distribution frame is not zero: the ODE solver's own error depends on the
solver and N (BENCHMARKS.md, solver study). So the threshold comes from the US model's card: ``ddic
calibrate-trust`` measures the round trip of held-out in-distribution images for each (solver, N) and
stores its quantiles (``card.extra["round_trip_reference"]``); a frame is flagged when its round trip exceeds
:data:`TRUST_FACTOR` × the 95th percentile of that reference — it lies outside the US model's training
distribution (another scanner, a non-standard plane, an artefact, a non-head image), so the pseudo-MRI must
not be trusted, and the CLI, the demo and the Slicer panel say so. A model without a reference gets
:data:`ROUND_TRIP_WARN_RMSE`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ROUND_TRIP_WARN_RMSE = 0.10
"""Fallback threshold ([−1, 1] scale, head pixels) for a US model whose card has no round-trip reference."""

TRUST_FACTOR = 2.0
"""A frame is flagged above this many times the 95th percentile of the model's in-distribution round trip
at the same solver and N: twice the spread of frames the model represents, so a few % of genuine frames are
not flagged by chance while a frame it cannot reproduce is (BENCHMARKS.md, "Trust number")."""

REFERENCE_KEY = "round_trip_reference"


def reference_entry(card, solver: str, steps: int) -> dict | None:
    """The card's reference for ``solver`` at the largest N ≤ ``steps`` (the error falls with N, so a smaller
    N's reference is the conservative one), or at the smallest N above when there is none below."""
    entries = [e for e in (getattr(card, "extra", {}) or {}).get(REFERENCE_KEY, {}).get("entries", [])
               if e.get("solver") == solver]
    if not entries:
        return None
    below = [e for e in entries if int(e["steps"]) <= steps]
    return max(below, key=lambda e: int(e["steps"])) if below else min(entries, key=lambda e: int(e["steps"]))


def round_trip_threshold(card, solver: str, steps: int) -> tuple[float, str]:
    """(threshold, where it comes from) for a frame translated with ``solver`` at ``steps``."""
    entry = reference_entry(card, solver, steps)
    if entry is None:
        return ROUND_TRIP_WARN_RMSE, "default (the US model's card has no round-trip reference)"
    return TRUST_FACTOR * float(entry["p95"]), (f"{TRUST_FACTOR:g} × the 95th percentile of the model's round "
                                                f"trip on {entry['images']} held-out images at {solver} N = {entry['steps']}")


def reference_quantiles(errors: np.ndarray) -> dict:
    errors = np.asarray(errors, dtype=np.float64)
    return {"images": int(errors.size), "p50": float(np.percentile(errors, 50)),
            "p95": float(np.percentile(errors, 95)), "max": float(errors.max())}

BACKGROUND_LEVEL = -1.0 + 1e-3
"""Model-scale value below which a pixel counts as masked background (0 in the canonical 8-bit image)."""


def head_round_trip_rmse(source: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Per-image RMSE between (B, 1, S, S) ``source`` and ``reconstruction`` over the source's head pixels
    (all pixels where the image has no masked background)."""
    head = source > BACKGROUND_LEVEL
    if not bool(head.flatten(1).any(dim=1).all()):
        head = torch.where(head.flatten(1).any(dim=1).view(-1, 1, 1, 1), head, torch.ones_like(head))
    squared = (reconstruction - source).pow(2) * head
    return (squared.flatten(1).sum(dim=1) / head.flatten(1).sum(dim=1)).sqrt()


def is_trusted(rmse: float | None, threshold: float = ROUND_TRIP_WARN_RMSE) -> bool | None:
    if rmse is None or not math.isfinite(rmse):
        return None
    return bool(rmse <= threshold)


def warning_text(name: str, rmse: float, threshold: float = ROUND_TRIP_WARN_RMSE) -> str:
    return (f"{name}: the US model reproduces this frame poorly (round-trip RMSE {rmse:.3f} > {threshold:.3f}): "
            "it lies outside what the model was trained on, so its pseudo-MRI must not be trusted. Check the frame "
            "(plane, head found, artefacts) or use a model trained on such data.")


def measure_reference(us_model, images: torch.Tensor, configs: list[tuple[str, int]], batch_size: int = 16,
                      progress=None, terminal: str | None = None) -> dict:
    """The round-trip reference of a US model: for each (solver, N), the quantiles of the head round-trip
    RMSE of ``images`` ((B, 1, S, S) in [−1, 1]: held-out, in-distribution canonical frames)."""
    from ..diffusion.denoisers import UNetDenoiser
    from ..diffusion.sampling import ode_decode, ode_encode
    from ..diffusion.schedule import Schedule
    from ..progress import resolve

    from .options import TranslateOptions

    report = resolve(progress)
    terminal = terminal or TranslateOptions().terminal_step  # measured as translation encodes
    schedule = Schedule.from_dict(us_model.card.schedule)
    model = UNetDenoiser(us_model.unet, "cpu", prediction=schedule.prediction)
    entries = []
    for done, (solver, steps) in enumerate(configs):
        grid = schedule.grid(int(steps))
        errors = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size]
                latent, _ = ode_encode(model, chunk, grid, solver, terminal=terminal, clip=True)
                back = ode_decode(model, latent, grid, solver, clip=True)
                errors.append(head_round_trip_rmse(chunk, back).numpy())
        entries.append({"solver": solver, "steps": int(steps), **reference_quantiles(np.concatenate(errors))})
        report(done + 1, len(configs), f"{solver} N = {steps}")
    return {"entries": entries, "terminal_step": terminal,
            "measure": "head round-trip RMSE, [-1, 1] scale (ddic.translate.trust)",
            "trust_factor": TRUST_FACTOR}


def store_reference(card_path, reference: dict, images_description: str) -> None:
    """Write ``reference`` into the card's ``extra`` (atomically; the weights and their hash are untouched)."""
    import json
    from pathlib import Path

    from ..io.atomic import write_text_atomic

    path = Path(card_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("extra", {})[REFERENCE_KEY] = {**reference, "images": images_description}
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
