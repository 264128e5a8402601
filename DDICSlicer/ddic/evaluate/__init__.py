"""``ddic evaluate``: the paper's evaluation protocol (method.md §6) as one call, on phantom or prepared data.

An orchestrator like the CLI: it uses :mod:`ddic.translate` (the methods), :mod:`ddic.segment` (the ventricle),
:mod:`ddic.measure` and :mod:`ddic.metrics` (every number), :mod:`ddic.data` (the atlas prompts, the phantom
truth) and :mod:`ddic.io`; it defines no metric of its own. Modules, one job each:

- :mod:`.options` — :class:`EvaluateOptions`; :mod:`.methods` — the method registry (models, identities);
- :mod:`.cases` — the test frames, their head geometry and paired truth;
- :mod:`.outputs` — translating once, caching under ``REPORT/outputs/<method>/``;
- :mod:`.measure` — one ``per_image.csv`` row per (method, frame); :mod:`.summary` — mean ± SD, tests, CNR
  table; :mod:`.fid` — FID / KID; :mod:`.figures` — box plots and the image grid; :mod:`.html` — the page;
- :mod:`.run` — :func:`run_evaluation`, the stages in order.

matplotlib is imported only to draw; model weights are loaded only when something is left to translate.
"""

from .options import EvaluateOptions
from .run import REPORT_FILES, run_evaluation

__all__ = ["REPORT_FILES", "EvaluateOptions", "run_evaluation"]
