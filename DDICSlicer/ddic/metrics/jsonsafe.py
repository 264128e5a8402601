"""Turning metric results into strict JSON: the one rule for numbers JSON cannot hold.

Why a rule: PSNR of identical images is +∞ (a real, meaningful result), a CNR of two constant regions or an
effect size of constant data is undefined (NaN). ``json.dumps`` would write ``Infinity`` / ``NaN``, which is
not JSON and breaks browsers and other languages' parsers. So every report in :mod:`ddic.metrics` goes
through :func:`json_safe`:

- ``+inf`` → the string ``"inf"``, ``-inf`` → ``"-inf"``: infinity is a result (identical images), kept
  distinguishable from "not computed";
- ``NaN`` → ``null``: undefined, nothing to report;
- numpy scalars and arrays → Python numbers and lists; tuples → lists; dataclasses → dicts (via ``to_dict``
  when they have one).

:func:`from_json_number` reads such a value back.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

POSITIVE_INFINITY = "inf"
NEGATIVE_INFINITY = "-inf"
RULE = 'JSON numbers: +inf is written as the string "inf", -inf as "-inf", NaN (undefined) as null'
"""The rule in words, written into reports next to the numbers."""


def json_number(value: float) -> float | str | None:
    """One float → a JSON-safe value (module docstring)."""
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return POSITIVE_INFINITY if value > 0 else NEGATIVE_INFINITY
    return value


def from_json_number(value: float | str | None) -> float:
    """The inverse of :func:`json_number`: ``"inf"`` → inf, ``None`` → NaN."""
    if value is None:
        return math.nan
    if value == POSITIVE_INFINITY:
        return math.inf
    if value == NEGATIVE_INFINITY:
        return -math.inf
    return float(value)


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts (module docstring)."""
    if obj is None or isinstance(obj, (bool, str, int)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return json_number(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return json_safe(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    raise TypeError(f"Cannot write {type(obj).__name__} to JSON.")
