"""``ddic models``: list, download, verify, remove and locate the models of the manifest.

Downloads happen only here (or through the Slicer panel's explicit button), never as a side effect.
``--manifest`` / ``DDIC_MODEL_MANIFEST`` and ``--cache-dir`` / ``DDIC_CACHE_DIR`` point the commands at
another catalogue or cache (tests, shared lab caches).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DDICModelError


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manifest", type=Path, default=None,
                        help="model manifest (default: DDIC_MODEL_MANIFEST, else Resources/models/manifest.json)")
    common.add_argument("--cache-dir", type=Path, default=None,
                        help="download cache (default: DDIC_CACHE_DIR, else the user cache folder)")
    return common


def register(subparsers) -> None:
    common = _common()
    p = subparsers.add_parser(
        "models", help="list, download, verify and remove models (SAM checkpoints, demo models)",
        description="Manage the models of the manifest: downloadable SAM checkpoints (kept in a per-user "
                    "cache, SHA-256 verified) and the DDIC demo models bundled with DDICSlicer.")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = sub.add_parser("list", parents=[common], help="list models with size, cache state and license")
    s.set_defaults(func=run_list)

    s = sub.add_parser("download", parents=[common], help="download a model into the cache (verified)",
                       description="Download a model into the cache. The file is checked against its SHA-256 "
                                   "before it is installed; an unfinished download is resumed.")
    s.add_argument("id", help="model id (see `ddic models list`)")
    s.add_argument("--sha256", default=None,
                   help="expected SHA-256, required only for models without a pinned hash")
    s.add_argument("--force", action="store_true", help="download again even if the file is cached")
    s.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    s.set_defaults(func=run_download)

    s = sub.add_parser("verify", parents=[common], help="check cached (and bundled) models against their SHA-256")
    s.add_argument("id", nargs="?", default=None, help="model id (default: every cached or bundled model)")
    s.add_argument("--sha256", default=None, help="expected SHA-256 for a model without a pinned hash")
    s.set_defaults(func=run_verify)

    s = sub.add_parser("remove", parents=[common], help="delete a downloaded model from the cache")
    s.add_argument("id", help="model id")
    s.set_defaults(func=run_remove)

    s = sub.add_parser("path", parents=[common],
                       help="print where a model's file is (or must be placed for a manual download)")
    s.add_argument("id", help="model id")
    s.set_defaults(func=run_path)


def _bytes_progress(description: str):
    """A tqdm bar in bytes; a new bar starts when the phase changes (download → hash check)."""
    from .common import tqdm_progress

    return tqdm_progress(description, unit="B", unit_scale=True)


def _manifest(args):
    from ..models import load_manifest

    return load_manifest(args.manifest)


def _status(entry, cache_dir) -> str:
    from ..models.cache import is_cached, partial_path

    if entry.is_bundled:
        return "bundled" if entry.bundled_path.exists() else "bundled (missing)"
    if is_cached(entry, cache_dir):
        return "cached"
    part = partial_path(entry, cache_dir)
    if part.exists() and entry.bytes:
        return f"partial {100 * part.stat().st_size // entry.bytes}%"
    return "-"


def run_list(args) -> int:
    from ..models import model_cache_dir

    manifest = _manifest(args)
    rows = [("ID", "KIND", "SIZE", "STATE", "LICENSE", "TITLE")]
    for e in manifest:
        rows.append((e.id, e.kind, e.size_text() if e.bytes else "-", _status(e, args.cache_dir), e.license,
                     e.title))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print(f"\nmanifest: {manifest.path}\ncache:    {model_cache_dir(args.cache_dir)}")
    return 0


def run_download(args) -> int:
    from ..models import download

    entry = _manifest(args).get(args.id)
    with _bytes_progress(entry.id) as progress:
        path = download(entry, cache_dir=args.cache_dir, expected_sha256=args.sha256, progress=progress,
                        force=args.force, timeout=args.timeout)
    print(f"{entry.id}: {path}")
    return 0


def _verify_one(entry, args, progress) -> str:
    from ..models import verify
    from ..models.resolve import verify_bundled

    if entry.is_bundled:
        return str(verify_bundled(entry, progress))
    return str(verify(entry, cache_dir=args.cache_dir, expected_sha256=args.sha256, progress=progress,
                      use_stamp=False))


def run_verify(args) -> int:
    from ..models.cache import cached_path

    manifest = _manifest(args)
    if args.id is not None:
        entry = manifest.get(args.id)
        with _bytes_progress(f"verify {entry.id}") as progress:
            path = _verify_one(entry, args, progress)
        print(f"OK      {entry.id}: {path}")
        return 0
    if args.sha256:
        raise DDICModelError("--sha256 needs a model id: the hash belongs to one model.")
    failed = 0
    for entry in manifest:
        present = entry.bundled_path.exists() if entry.is_bundled else cached_path(entry, args.cache_dir).exists()
        if not present:
            print(f"-       {entry.id}: not {'installed' if entry.is_bundled else 'downloaded'}")
            continue
        try:
            with _bytes_progress(f"verify {entry.id}") as progress:
                path = _verify_one(entry, args, progress)
            print(f"OK      {entry.id}: {path}")
        except DDICModelError as exc:
            failed += 1
            print(f"FAILED  {entry.id}: {exc}")
    return 1 if failed else 0


def run_remove(args) -> int:
    from ..models import remove

    entry = _manifest(args).get(args.id)
    if entry.is_bundled:
        raise DDICModelError(f"{entry.id!r} is bundled with DDICSlicer ({entry.bundled_path}); only downloaded "
                             f"models can be removed.")
    removed = remove(entry, args.cache_dir)
    if removed:
        print(f"{entry.id}: removed {', '.join(str(p) for p in removed)}")
    else:
        print(f"{entry.id}: nothing to remove (not downloaded)")
    return 0


def run_path(args) -> int:
    from ..models import cached_path, is_cached

    entry = _manifest(args).get(args.id)
    if entry.is_bundled:
        print(entry.bundled_path)
        return 0
    print(cached_path(entry, args.cache_dir))
    if not is_cached(entry, args.cache_dir):
        print(f"(not downloaded yet: run `ddic models download {entry.id}`, or save {entry.url} at this path)",
              file=sys.stderr)
    return 0
