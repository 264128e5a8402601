"""The CycleGAN baseline (Zhu et al. 2017) for unpaired US ↔ MRI translation, with the reference
implementation's defaults: networks, image pool, training loop with exact resume, and the US → MRI
generator file used by ``ddic translate --method cyclegan``."""
