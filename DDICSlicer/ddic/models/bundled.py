"""The demo models shipped with DDICSlicer (``Resources/models/demo-us``, ``demo-mri``): where they are.

They are listed in the manifest as kind ``bundled`` with ids ``ddic-demo-us`` / ``ddic-demo-mri``; this
module turns a domain into the model folder that :func:`ddic.diffusion.modelfile.load_model` reads (which then
checks the weights against the SHA-256 in their card). Found the same way from a source checkout, a wheel
and an installed Slicer extension (:func:`ddic.models.resources.resources_dir`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DDICModelError
from .manifest import load_manifest
from .resources import resources_dir

DEMO_MODEL_IDS = {"us": "ddic-demo-us", "mri": "ddic-demo-mri"}


def bundled_model_path(domain: str) -> Path:
    """The folder of the bundled demo model of ``domain`` ("us" or "mri")."""
    if domain not in DEMO_MODEL_IDS:
        raise DDICModelError(f"No bundled demo model for domain {domain!r}; use 'us' or 'mri'.")
    entry = load_manifest(resources_dir() / "manifest.json").get(DEMO_MODEL_IDS[domain])
    path = entry.bundled_path
    if not path.is_dir() or not any(path.glob("*.json")):
        raise DDICModelError(
            f"The bundled demo model {entry.id!r} is missing ({path}). Reinstall DDICSlicer, or give your own "
            "models with --us-model / --mri-model (a source checkout can rebuild them with "
            "Resources/models/make_demo_models.sh).")
    return path


DEMO_INTENDED_USE = ("Demonstration and testing only: trained on synthetic phantom images, not on real scans. "
                     "Not for clinical use; not a medical device.")


def export_demo_model(trained: str | Path, out_dir: str | Path, recipe: str, where: str,
                      earlier: str | Path | None = None) -> Path:
    """Store a model trained by ``ddic train`` as a bundled demo model: float16 weights (half the size), a
    card that says plainly what it is (``recipe``: the command that made it; ``where``: e.g. "CPU, 64 px"),
    and its training curve (``loss.csv`` and ``loss.png``) and last sample grid beside it. ``earlier``: the run
    it was initialised from (``--init-from``), whose steps come first in the curve and the step count."""
    import shutil

    from ..diffusion.modelfile import load_model, save_model

    trained_model = load_model(trained)
    run_dir = trained_model.card_path.parent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = trained_model.card
    steps = card.training.get("steps")
    earlier_steps = 0
    if earlier is not None:
        earlier_card = load_model(earlier).card
        earlier_steps = int(earlier_card.training.get("steps", 0))
        steps = f"{earlier_steps} + {steps}"
    count = card.training.get("image_count")
    card.description = (
        f"DDICSlicer demo model ({card.domain}): {card.preset} UNet ({card.schedule.get('prediction', 'epsilon')}) at "
        f"{card.image_size} px trained for {steps} steps on "
        f"{count} synthetic phantom images (ddic phantom, unpaired, disjoint seeds) on {where}. "
        "For demonstration and testing only — not trained on real scans, not for clinical use.")
    card.intended_use = DEMO_INTENDED_USE
    card.training = {**card.training, "recipe": recipe, "trained_where": where,
                     "data_description": ("synthetic phantom (ddic phantom --seed 1000), not real scans; US: the "
                                          "canonical head images of the phantom frames (skull-masked as ddic "
                                          "prepare hc18 does, orientation from the phantom); MRI: brain-extracted "
                                          "slices (as ddic prepare feta does)"),
                     "training_curve": "loss.csv, loss.png"}
    card_path = save_model(trained_model.unet, card, out_dir / "model.safetensors", dtype="float16")
    if (run_dir / "loss.csv").is_file():
        _combined_loss([Path(earlier)] if earlier is not None else [], run_dir, earlier_steps, out_dir / "loss.csv")
        target = "v" if card.schedule.get("prediction") == "v_prediction" else "ε"
        _plot_loss(out_dir / "loss.csv", out_dir / "loss.png", f"{card.domain} demo model", f"{target}-MSE")
    grids = sorted((run_dir / "samples").glob("step_*.png"))
    if grids:
        shutil.copyfile(grids[-1], out_dir / "samples.png")
    return card_path


def _combined_loss(earlier_runs: list[Path], run_dir: Path, offset: int, out: Path) -> None:
    """loss.csv of the earlier run (up to its final step) followed by this run's, shifted by ``offset``."""
    import csv

    rows = []
    for folder in earlier_runs:
        with open(folder / "loss.csv", newline="", encoding="utf-8") as handle:
            rows += [r for r in csv.DictReader(handle) if int(r["step"]) <= offset and r["loss"] != "nan"]
    with open(run_dir / "loss.csv", newline="", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            rows.append({**r, "step": str(int(r["step"]) + offset)})
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss", "lr", "elapsed_s"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _plot_loss(csv_path: Path, png_path: Path, title: str, ylabel: str = "ε-MSE") -> None:
    """Training curve: per-step loss and its 50-step running mean (matplotlib, if installed)."""
    import csv

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    window = 50
    smooth = [sum(loss[max(0, i - window + 1):i + 1]) / len(loss[max(0, i - window + 1):i + 1])
              for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    ax.plot(steps, smooth, lw=1.5, label=f"{window}-step mean")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
