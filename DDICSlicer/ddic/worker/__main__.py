"""``python -m ddic.worker``: serve JSON-line requests on stdin/stdout until shutdown or end of input.

stdout is reserved for the protocol: the real stdout file descriptor is duplicated for the responses
and fd 1 is pointed at stderr, so stray prints — from Python or from C libraries — land in the log
instead of corrupting a response line.
"""

from __future__ import annotations

import logging
import os
import sys


def protocol_streams():
    """(input, output) text streams for the protocol, with fd 1 redirected to stderr."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    inp = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115 -- lives as long as the process
    return inp, out


def main() -> int:
    level = getattr(logging, os.environ.get("DDIC_WORKER_LOG", "INFO").upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level if isinstance(level, int) else logging.INFO,
                        format="%(asctime)s ddic.worker[%(process)d] %(levelname)s %(message)s")
    inp, out = protocol_streams()
    from .server import Worker

    logging.getLogger("ddic.worker").info("ready (pid %d)", os.getpid())
    try:
        return Worker().serve(inp, out)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the client went away while we were answering
        return 0


if __name__ == "__main__":
    sys.exit(main())
