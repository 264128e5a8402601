"""Helpers shared by subcommands: the progress callback as a tqdm bar or as JSON lines for programs."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import DDICInputError, DDICModelError
from ..progress import ProgressCallback


def add_command(subparsers, name: str, description: str, help: str):  # noqa: A002 - argparse's own name
    """A subcommand parser: ``help`` for ``ddic --help``; ``description`` (the command module's docstring, which
    is written for the user) for ``ddic NAME --help``; defaults shown beside every option."""
    import argparse

    return subparsers.add_parser(name, help=help, description=description,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)


@contextmanager
def tqdm_progress(description: str, enabled: bool = True, unit: str = "step",
                  unit_scale: bool = False) -> Iterator[ProgressCallback]:
    """A progress callback drawing a tqdm bar on stderr (nothing when ``enabled`` is false, e.g. rank > 0).

    ``unit="B", unit_scale=True`` counts bytes in KiB/MiB (``ddic models``); a total of 0 means unknown.
    When ``done`` goes back (a new phase, e.g. download → hash check) a new bar starts.
    """
    from tqdm import tqdm

    bar = None

    def callback(done: int, total: int, message: str) -> None:
        nonlocal bar
        if not enabled:
            return
        if bar is not None and done < bar.n:
            bar.close()
            bar = None
        if bar is None:
            # start at ``done`` so a resumed run's rate and time estimate are right from the first update
            bar = tqdm(total=total or None, initial=done, desc=description, unit=unit, unit_scale=unit_scale,
                       unit_divisor=1024, dynamic_ncols=True, file=sys.stderr)
        if bar.total != (total or None):
            bar.total = total or None
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.update(done - bar.n)

    try:
        yield callback
    finally:
        if bar is not None:
            bar.close()


# --- options shared by ``ddic train`` and ``ddic train-cyclegan`` ----------------------------------------


def add_checkpoint_options(add: Callable, defaults, model: str) -> None:
    """``--seed``, ``--checkpoint-every`` and ``--sample-every`` of a trainer; ``add`` is a parser's
    ``add_argument``, ``defaults`` its config dataclass (the single source of defaults), ``model`` what
    each checkpoint also writes ("model", "generator")."""
    add("--seed", type=int, default=defaults.seed, metavar="N",
        help="seed of all randomness: initial weights, batches, noise (default %(default)s)")
    add("--checkpoint-every", type=int, default=defaults.checkpoint_every, metavar="N",
        help=f"write checkpoint and {model} every N steps and at the end (default %(default)s)")
    add("--sample-every", type=int, default=None, metavar="N",
        help="write a sample grid every N steps and at the end (default: at every checkpoint)")


def shared_option_values(args) -> dict:
    """The config fields of the options of :func:`add_checkpoint_options` and :func:`add_run_options`."""
    return {"seed": args.seed, "checkpoint_every": args.checkpoint_every, "sample_every": args.sample_every,
            "device": args.device, "intensity": args.intensity, "resume": args.resume}


def add_run_options(add: Callable, defaults, device_choices, intensity_choices) -> None:
    """``--device``, ``--intensity`` and ``--resume`` of a trainer (see :func:`add_checkpoint_options`)."""
    add("--device", default=defaults.device, choices=device_choices,
        help="where to train; auto = CUDA if available (default %(default)s)")
    add("--intensity", default=defaults.intensity, choices=intensity_choices,
        help="intensity normalisation (of each folder); auto = uint8 if all images are 8-bit, else percentile "
             "(default %(default)s)")
    add("--resume", action="store_true",
        help="continue the run in --out from its checkpoint (needed whenever --out already holds a run)")


# --- machine-readable progress (``--progress-format json``) -------------------------------------------
#
# A program driving a subcommand (the Slicer module runs ``PythonSlicer -m ddic translate ...`` in a
# background process) reads one JSON object per line on stdout:
#   {"event": "start", ...}                                   what is about to run (device, frame count)
#   {"event": "progress", "done": d, "total": t, "message": m}
#   {"event": "done", "outputs": [...], ...}                  the files written, in input order; for
#                                                             translate also "frames": per output its trust
#                                                             number (us_round_trip_rmse, trust_threshold,
#                                                             trusted) and orientation_source
#   {"event": "error", "type": "oom"|"input"|"model"|"internal", "message": m}
# Human-readable text goes to stderr so stdout stays parseable. Exit codes: 0 done, 2 input/model error
# (as the plain CLI), 3 out of memory (the caller may retry on the CPU), 1 internal error (traceback on
# stderr), 130 cancelled (SIGINT/SIGTERM; no partial result file is left under a final name).

PROGRESS_FORMATS = ("bar", "json")
EXIT_OUT_OF_MEMORY = 3
ERROR_TYPES = ("oom", "input", "model", "internal")


def emit_event(event: str, **fields) -> None:
    """Write one event as one JSON line on stdout and flush at once (the reader waits for whole lines)."""
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def json_progress(description: str, enabled: bool = True) -> Iterator[ProgressCallback]:
    """The JSON-lines twin of :func:`tqdm_progress`: one ``progress`` event per callback call."""

    def callback(done: int, total: int, message: str) -> None:
        if enabled:
            emit_event("progress", done=int(done), total=int(total), message=message or description)

    yield callback


def progress_context(progress_format: str):
    """The progress context manager for ``--progress-format``: tqdm bar or JSON lines."""
    return json_progress if progress_format == "json" else tqdm_progress


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA / MPS / host allocation failures (``torch.cuda.OutOfMemoryError`` and kin).

    Checked by class name and message so that this module never has to import torch.
    """
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def error_type(exc: BaseException) -> str:
    """Which of :data:`ERROR_TYPES` an exception is, for the ``error`` event."""
    if is_out_of_memory(exc):
        return "oom"
    if isinstance(exc, DDICInputError):
        return "input"
    if isinstance(exc, DDICModelError):
        return "model"
    return "internal"


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_with_json_events(body: Callable[[], int], device_hint: str = "") -> int:
    """Run a subcommand body so that every way it can end is one ``error`` event (or its own ``done``).

    SIGTERM is turned into KeyboardInterrupt so that ``finally`` blocks (atomic writes) clean up when a
    caller cancels by terminating the process group. Input/model errors are re-raised for the CLI's
    usual message and exit code 2; an out-of-memory failure exits with :data:`EXIT_OUT_OF_MEMORY`;
    anything else is re-raised so its traceback reaches stderr.
    """
    try:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    except (ValueError, OSError):  # not the main thread (embedded use): keep the default
        pass
    try:
        try:
            return body()
        except (OSError, RuntimeError) as exc:  # a folder it cannot write: the user's to fix, not a bug
            from ..io.writable import as_output_error

            error = as_output_error(exc)
            if error is None:
                raise
            raise error from exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        kind = error_type(exc)
        if kind == "oom":
            where = f" on {device_hint}" if device_hint else ""
            message = (f"Out of memory{where}: {exc}. Retry on the CPU (--cpu), with fewer frames per batch "
                       "(--batch-size 1) or on a GPU with more free memory.")
            emit_event("error", type="oom", message=message)
            print(f"ddic: error: {message}", file=sys.stderr)
            return EXIT_OUT_OF_MEMORY
        if kind == "internal":
            emit_event("error", type=kind, message=f"{type(exc).__name__}: {exc}")
        else:
            emit_event("error", type=kind, message=str(exc))
        raise
