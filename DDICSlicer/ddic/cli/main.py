"""The ``ddic`` command: thin argument parsing over the engine's packages.

Each subcommand lives in its own module with ``register(subparsers)``, which adds its parser and sets
``func``. Expected failures (:class:`ddic.errors.DDICError`) are printed as one clear message and exit
code 2; so is a file-system failure while writing (permission, read-only disk, disk full:
:func:`ddic.io.writable.as_output_error`) that a command did not turn into one itself. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import DDICError

SUBCOMMAND_MODULES = ("prepare", "train", "translate", "phantom", "models", "cnr", "segment", "train_cyclegan", "reader_study", "demo", "evaluate",
                      "calibrate_trust")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="ddic",
        description="Fetal-brain ultrasound → pseudo-MRI translation (DDIC) and the tools around it.",
    )
    parser.add_argument("--version", action="version", version=f"ddic {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        try:
            return int(args.func(args) or 0)
        except (OSError, RuntimeError) as exc:
            from ..io.writable import as_output_error

            error = as_output_error(exc)
            if error is None:
                raise
            raise error from exc
    except DDICError as exc:
        print(f"ddic {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ddic {args.command}: interrupted; finished outputs are kept.", file=sys.stderr)
        return 130
