"""The reference implementation's numbers (junyanz/pytorch-CycleGAN-and-pix2pix, ``cycle_gan`` model), in
one torch-free place so that option parsing and the networks share them."""

from __future__ import annotations

from ..errors import DDICInputError

CHANNELS = 1
"""Grayscale images, in [−1, 1] (the generator's tanh range)."""
FILTERS = 64  # ngf and ndf
D_LAYERS = 3  # the "basic" discriminator: 70×70 PatchGAN
INIT_STD = 0.02  # init_type "normal", init_gain 0.02
POOL_SIZE = 50
LR = 2e-4
BETA1 = 0.5
ADAM_BETA2 = 0.999  # fixed in the reference
LAMBDA_CYCLE = 10.0  # lambda_A = lambda_B
LAMBDA_IDENTITY = 0.5  # as a fraction of lambda_cycle
BATCH_SIZE = 1
EPOCHS = 200  # n_epochs 100 (constant lr) + n_epochs_decay 100 (linear decay)

DOWNSAMPLINGS = 2
MIN_IMAGE_SIZE = 32
"""The smallest image the 3-layer PatchGAN still maps to a 2×2 output (64 px → 6×6, 128 px → 14×14)."""


def residual_blocks(image_size: int) -> int:
    """9 residual blocks at 256 px and above (``resnet_9blocks``), 6 below (``resnet_6blocks``, the
    paper's choice for 128 px images)."""
    return 9 if image_size >= 256 else 6


def check_image_size(image_size: int) -> None:
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE or image_size % (2 ** DOWNSAMPLINGS):
        raise DDICInputError(
            f"CycleGAN image size must be a multiple of {2 ** DOWNSAMPLINGS} and at least {MIN_IMAGE_SIZE} px "
            f"(128 is the paper's size, 64 suits the CPU), got {image_size!r}."
        )
