"""The one progress convention of the engine: a callable ``progress(done, total, message)``.

The CLI turns it into a tqdm bar and the Slicer worker into JSON lines; the engine only calls it.
"""

from typing import Callable, Optional

ProgressCallback = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str) -> None:
    """Default callback: report nothing."""


def resolve(progress: Optional[ProgressCallback]) -> ProgressCallback:
    """Return ``progress`` or the silent default, so callers never test for ``None``."""
    return progress if progress is not None else no_progress
