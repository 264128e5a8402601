"""The per-frame trust number: how well the US model reproduces the frame it is translating.

DDIB / DDIC decode the frame's latent with the MRI model. That latent means something only if the US model
represents the frame — if encoding the frame and decoding the latent with the *same* US model gives the
frame back. So every translation also measures that round trip: the RMSE (on the model's [−1, 1] scale)
between the US input and its US-model reconstruction, over the head (the pixels the canonical mask keeps;
the masked background reconstructs trivially and would dilute it). In DDIC's faithful mode the parallel US
chain *is* that reconstruction, so the number is free; otherwise one extra US decode (N evaluations) makes
it.

Above :data:`ROUND_TRIP_WARN_RMSE` the frame is out of the US model's training distribution (another
scanner, a non-standard plane, an artefact, a non-head image): the pseudo-MRI must not be trusted, and the
CLI, the demo and the Slicer panel say so.
"""

from __future__ import annotations

import torch

ROUND_TRIP_WARN_RMSE = 0.10
"""Threshold on the head-region round-trip RMSE ([−1, 1] scale). Set from held-out phantom frames with the
bundled demo pair at the default solver and steps (BENCHMARKS.md, "Trust number"): in-distribution frames
stay well below it; corrupted or foreign frames land above it."""

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


def is_trusted(rmse: float | None) -> bool | None:
    return None if rmse is None else bool(rmse <= ROUND_TRIP_WARN_RMSE)


def warning_text(name: str, rmse: float) -> str:
    return (f"{name}: the US model reproduces this frame poorly (round-trip RMSE {rmse:.3f} > "
            f"{ROUND_TRIP_WARN_RMSE:g}): it lies outside what the model was trained on, so its pseudo-MRI must "
            "not be trusted. Check the frame (plane, head found, artefacts) or use a model trained on such data.")
