"""The FID Inception v3 feature extractor, from a local weights file only — never downloaded implicitly.

Why so strict: every Inception-based FID package downloads its weights on first use (sam-metrics.md §4), which
fails offline, hides which file produced the numbers, and — through ``torch.hub.load_state_dict_from_url`` —
unpickles whatever arrives. Here the file must already be on disk; it is checked against its pinned SHA-256,
then loaded with ``torch.load(weights_only=True)`` (no unpickling of code) into pytorch-fid's network definition.

- Weights: pytorch-fid's TF-ported Inception (the standard FID network, 1008 classes),
  ``INCEPTION_FILE`` = ``pt_inception-2015-12-05-6726825d.pth``, ``INCEPTION_SIZE`` = 95,628,359 bytes, SHA-256
  ``INCEPTION_SHA256`` (sam-metrics.md §4.1). torch-fidelity publishes the same weights as
  ``weights-inception-2015-12-05-6726825d.pth`` (same SHA-256), also accepted.
- Where it is looked for, in order: the ``weights`` argument (CLI ``--inception-weights``); the environment
  variable ``DDIC_INCEPTION_WEIGHTS`` (a file named either way must exist: no silent fallback); the standard
  torch cache, ``torch.hub.get_dir()/checkpoints/`` (i.e. ``$TORCH_HOME/hub/checkpoints``, by default
  ``~/.cache/torch/hub/checkpoints``), under either name.
- Network: ``pytorch_fid.inception.InceptionV3(output_blocks=[3])`` (optional dependency: the ``fid`` extra,
  ``pip install pytorch-fid``); its internal download call is replaced, while it is built, by the local
  verified file.
- Preprocessing (as pytorch-fid): grayscale 0…255 → [0, 1], bilinear resize to 299 × 299 without antialiasing
  (``align_corners=False``), replicated to 3 channels, mapped to [−1, 1] by the network; features are the
  2048-d pool3 activations. FID values depend on this resize: report the extractor name with them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DDICModelError
from .features import unit_range

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_ALT_FILES = ("weights-inception-2015-12-05-6726825d.pth",)
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_SIZE = 95_628_359
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
"""Where a user can fetch the file by hand (named in the error message; this module never downloads)."""
WEIGHTS_ENV = "DDIC_INCEPTION_WEIGHTS"
INCEPTION_DIMS = 2048
INCEPTION_INPUT = 299
EXTRACTOR_NAME = "inception-v3-fid pool3 2048d (pytorch-fid weights, bilinear resize to 299)"


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` — where pytorch-fid and torch-fidelity cache their weights."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def candidate_paths() -> list[Path]:
    """The torch-cache places looked in when no path is named, in order (module docstring)."""
    hub = hub_checkpoint_dir()
    return [hub / INCEPTION_FILE] + [hub / name for name in INCEPTION_ALT_FILES]


def _missing_message(looked: Sequence[Path]) -> str:
    listed = "\n".join(f"  - {p}" for p in looked)
    return (
        "The Inception weights for FID/KID are not on this computer, and ddic never downloads them by itself.\n"
        f"Needed file: {INCEPTION_FILE} ({INCEPTION_SIZE:,} bytes, SHA-256 {INCEPTION_SHA256}).\n"
        f"Looked in:\n{listed}\n"
        f"Download it by hand from {INCEPTION_URL} and put it at {hub_checkpoint_dir() / INCEPTION_FILE} "
        f"(the standard torch cache), or pass its path with --inception-weights / the {WEIGHTS_ENV} environment "
        "variable."
    )


def find_inception_weights(weights: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``weights`` or else ``$DDIC_INCEPTION_WEIGHTS`` if given (it must exist), else
    the first existing file in the torch cache."""
    explicit = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if explicit is not None:  # a path the user named must exist: no silent fallback to another file
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DDICModelError(_missing_message([path]))
        return path
    looked = candidate_paths()
    for path in looked:
        if path.is_file():
            return path
    raise DDICModelError(_missing_message(looked))


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: str | os.PathLike, sha256: str = INCEPTION_SHA256) -> None:
    """Refuse a file whose SHA-256 differs from ``sha256`` (size checked first when it is the pinned file)."""
    path = Path(path)
    if sha256 == INCEPTION_SHA256 and path.stat().st_size != INCEPTION_SIZE:
        raise DDICModelError(
            f"{path} has {path.stat().st_size:,} bytes, but the FID Inception weights {INCEPTION_FILE} have "
            f"{INCEPTION_SIZE:,}: the file is incomplete or a different model. Download it again from "
            f"{INCEPTION_URL}."
        )
    actual = sha256_of(path)
    if actual != sha256.lower():
        raise DDICModelError(
            f"{path} has SHA-256 {actual}, expected {sha256}: the file is corrupt or a different model. "
            f"Download {INCEPTION_FILE} again from {INCEPTION_URL}."
        )


def _build_network(path: Path):
    """pytorch-fid's InceptionV3 (pool3 block) with the state dict read from ``path`` (weights_only)."""
    import torch

    try:
        import pytorch_fid.inception as fid_inception
    except ImportError as exc:
        raise DDICModelError(
            "FID/KID with Inception features need the optional package pytorch-fid (the network definition): "
            "pip install pytorch-fid   (or: pip install 'ddicslicer[fid]')."
        ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DDICModelError(f"{path} cannot be read as a weights file (torch.load, weights_only): {exc}") from exc

    def local_weights(*_args, **_kwargs):
        return state

    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = local_weights  # the only weights it may use: the verified file
    try:
        network = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[INCEPTION_DIMS]])
    except RuntimeError as exc:
        raise DDICModelError(f"{path} does not fit pytorch-fid's Inception network: {exc}") from exc
    finally:
        fid_inception.load_state_dict_from_url = original
    return network.eval()


class InceptionFeatures:
    """Inception v3 pool3 features (2048-d) of grayscale 0…255 images, from a local verified weights file.

    ``weights``: path to the file (else the default places, module docstring); ``sha256``: the expected digest
    (the pinned one; tests pass their own for a random-weights file); ``device``: torch device string.
    """

    dims = INCEPTION_DIMS
    name = EXTRACTOR_NAME

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu",
                 sha256: str = INCEPTION_SHA256) -> None:
        self.weights_path = find_inception_weights(weights)
        verify_weights(self.weights_path, sha256)
        self.device = device
        self.network = _build_network(self.weights_path).to(device)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        batch = []
        for i, image in enumerate(images):
            x = torch.from_numpy(unit_range(image, f"image {i + 1}"))[None, None]
            batch.append(F.interpolate(x, size=(INCEPTION_INPUT, INCEPTION_INPUT), mode="bilinear",
                                       align_corners=False))
        if not batch:
            return np.zeros((0, self.dims))
        x = torch.cat(batch).repeat(1, 3, 1, 1).to(self.device)
        with torch.no_grad():
            features = self.network(x)[0]
        return features.reshape(features.shape[0], -1).cpu().numpy().astype(np.float64)
