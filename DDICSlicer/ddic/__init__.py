"""DDIC engine: ultrasound → pseudo-MRI translation by Dual Diffusion Imposed Correlation.

Pure Python (numpy, SimpleITK, torch, diffusers); never imports Slicer, Qt or MRML, so it runs from the
command line, in tests and in the Slicer module's background processes alike. Heavy modules (torch,
diffusers) are imported by the subpackages that need them, not here.
"""

__version__ = "0.1.0"
