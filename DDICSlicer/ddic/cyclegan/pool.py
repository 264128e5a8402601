"""The image pool of Shrivastava et al. (2017), as CycleGAN uses it for its discriminators.

The discriminators are trained on a history of generated images rather than only the latest ones,
which damps the oscillation of the adversarial game. Per image of a batch: while the pool holds fewer
than ``size`` images, the image is stored and returned as is; once full, with probability ½ a random
stored image is returned and replaced by the new one, otherwise the new image is returned and the pool
is unchanged. ``size = 0`` turns the pool off.

Randomness comes from a caller-supplied ``torch.Generator`` (seeded per training step), and the stored
images are exposed as one tensor, so a checkpoint can save and restore the pool exactly.
"""

from __future__ import annotations

import torch

from .reference import POOL_SIZE


class ImagePool:
    def __init__(self, size: int = POOL_SIZE) -> None:
        if size < 0:
            raise ValueError(f"pool size must be ≥ 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a batch of the same shape: the new images or, once the pool is full, partly old ones."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator).item() > 0.5:
                index = int(torch.randint(0, self.size, (), generator=generator).item())
                out.append(self.images[index])
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor | None:
        """The stored images as one (n, C, H, W) tensor on the CPU, or None while empty."""
        return torch.stack(self.images).cpu().contiguous() if self.images else None

    def load_state(self, stored: torch.Tensor | None, device: torch.device | str = "cpu") -> None:
        if stored is not None and stored.shape[0] > self.size:
            raise ValueError(f"the saved pool holds {stored.shape[0]} images, more than its size {self.size}")
        self.images = [] if stored is None else [image.to(device).clone() for image in stored]
