"""Helpers shared by subcommands: the tqdm adapter of the progress callback."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..progress import ProgressCallback


@contextmanager
def tqdm_progress(description: str, enabled: bool = True) -> Iterator[ProgressCallback]:
    """A progress callback drawing one tqdm bar (nothing when ``enabled`` is false, e.g. rank > 0)."""
    from tqdm import tqdm

    bar = None

    def callback(done: int, total: int, message: str) -> None:
        nonlocal bar
        if not enabled:
            return
        if bar is None:
            # start at ``done`` so a resumed run's rate and time estimate are right from the first update
            bar = tqdm(total=total, initial=done, desc=description, unit="step", dynamic_ncols=True)
        if bar.total != total:
            bar.total = total
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.update(done - bar.n)

    try:
        yield callback
    finally:
        if bar is not None:
            bar.close()
