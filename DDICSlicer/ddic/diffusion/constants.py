"""Numbers of the diffusion process that code without torch needs too (option parsing, the Slicer panel).

Kept free of torch and numpy so that ``ddic.translate.options`` can be imported inside Slicer's own
process; :mod:`ddic.diffusion.schedule` builds the schedule from them.
"""

NUM_TRAIN_TIMESTEPS = 1000
"""T: the number of training timesteps of every DDIC model."""

MIN_STEPS = 2
"""The fewest ODE steps a translation may use (one step cannot both leave and reach the clean image)."""

SOLVERS = ("ddim", "dpmpp2m")
"""ODE solvers for encode and decode: ``ddim``, first order (the paper's DDIM, eq. 6); ``dpmpp2m``,
DPM-Solver++(2M) (Lu et al. 2022), second-order multistep in the data prediction, run in both directions
(the encode is its inversion, as diffusers' ``DPMSolverMultistepInverseScheduler``)."""

TERMINAL_STEPS = ("exact", "explicit")
"""How the encoder reaches the end of the schedule. ``explicit``: the solver's own step into the last level (the
paper's DDIM; diffusers' inverse schedulers). ``exact``: that step is solved so that the decoder's first step
returns to the encoder's last state — one corrector evaluation at the last level instead of the explicit step's,
so no extra cost (:func:`ddic.diffusion.sampling.ode_encode`, BENCHMARKS.md "terminal step")."""
