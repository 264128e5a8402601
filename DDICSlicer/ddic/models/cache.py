"""The user's model cache: where downloaded weights live and how they are checked.

Weights go to a per-user cache folder, never into the install folder (which may be read-only and is
wiped by an extension update): ``DDIC_CACHE_DIR`` if set, else the platform's cache location. Files keep
their upstream names (``sam_vit_b_01ec64.pth``), so a file fetched by hand can be dropped into the folder
and is accepted once its SHA-256 matches. A verified file gets a small stamp (size, mtime, hash) so that
later loads skip re-hashing gigabytes; any change to the file invalidates the stamp.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import DDICModelError
from ..io.atomic import write_text_atomic
from ..progress import ProgressCallback, resolve
from .manifest import ModelEntry
from .resources import _package_dir

ENV_CACHE = "DDIC_CACHE_DIR"
APP_NAME = "ddicslicer"
PARTIAL_SUFFIX = ".partial"
STAMP_SUFFIX = ".verified.json"
HASH_CHUNK = 1 << 20


def default_cache_dir(platform: str | None = None, environ: Mapping[str, str] | None = None,
                      home: str | os.PathLike | None = None) -> Path:
    """The platform's per-user cache folder for models (arguments only for tests).

    Linux/other: ``$XDG_CACHE_HOME/ddicslicer/models`` (default ``~/.cache``); macOS:
    ``~/Library/Caches/ddicslicer/models``; Windows: ``%LOCALAPPDATA%\\ddicslicer\\Cache\\models``.
    """
    platform = platform or sys.platform
    environ = os.environ if environ is None else environ
    home = Path(home) if home is not None else Path.home()
    if platform.startswith("win"):
        base = Path(environ["LOCALAPPDATA"]) if environ.get("LOCALAPPDATA") else home / "AppData" / "Local"
        return base / APP_NAME / "Cache" / "models"
    if platform == "darwin":
        return home / "Library" / "Caches" / APP_NAME / "models"
    base = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else home / ".cache"
    return base / APP_NAME / "models"


def model_cache_dir(cache_dir: str | os.PathLike | None = None, *, create: bool = False) -> Path:
    """The cache folder in use: ``cache_dir`` if given, else ``DDIC_CACHE_DIR``, else the platform default.

    Refuses a folder inside the installed code (module folder / site-packages entry of ddic), because
    an update would delete the weights and the folder may not be writable.
    """
    if cache_dir is not None:
        chosen = Path(cache_dir).expanduser()
    elif os.environ.get(ENV_CACHE):
        chosen = Path(os.environ[ENV_CACHE]).expanduser()
    else:
        chosen = default_cache_dir()
    install = _package_dir().parent
    try:
        inside = chosen.resolve().is_relative_to(install)
    except OSError:
        inside = False
    if inside:
        raise DDICModelError(f"The model cache {chosen} is inside the installed code ({install}); an update "
                             f"would delete the weights. Set {ENV_CACHE} to a folder in your user profile.")
    if create:
        try:
            chosen.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DDICModelError(f"Cannot create the model cache folder {chosen}: {exc.strerror or exc}. "
                                 f"Set {ENV_CACHE} to a writable folder.") from exc
    return chosen


def cached_path(entry: ModelEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the downloaded file of ``entry`` lives (whether or not it is there yet)."""
    if entry.is_bundled:
        raise DDICModelError(f"Model {entry.id!r} is bundled with DDICSlicer ({entry.bundled_path}); it is "
                             f"not kept in the download cache.")
    return model_cache_dir(cache_dir) / entry.file_name


def partial_path(entry: ModelEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """The unfinished download of ``entry`` (resumed by the next download)."""
    return cached_path(entry, cache_dir).with_name(entry.file_name + PARTIAL_SUFFIX)


def stamp_path(target: Path) -> Path:
    return target.with_name("." + target.name + STAMP_SUFFIX)


def is_cached(entry: ModelEntry, cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the file is in the cache with the expected size (cheap: no hashing; see :func:`verify`)."""
    if entry.is_bundled:
        return False
    target = cached_path(entry, cache_dir)
    try:
        size = target.stat().st_size
    except OSError:
        return False
    return target.is_file() and (entry.bytes is None or size == entry.bytes)


def sha256_of(path: str | os.PathLike, progress: ProgressCallback | None = None,
              message: str = "checking SHA-256") -> str:
    """SHA-256 of a file, read in 1 MiB chunks so gigabyte checkpoints never sit in memory."""
    progress = resolve(progress)
    path = Path(path)
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    progress(0, total, message)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            progress(done, total, message)
    progress(total, total, message)
    return digest.hexdigest()


def _read_stamp(target: Path) -> dict | None:
    try:
        stamp = json.loads(stamp_path(target).read_text(encoding="utf-8"))
        st = target.stat()
    except (OSError, ValueError):
        return None
    if isinstance(stamp, dict) and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns:
        return stamp
    return None


def write_stamp(target: Path, sha256: str) -> None:
    """Record that ``target`` (as it is now) has hash ``sha256``."""
    st = target.stat()
    write_text_atomic(stamp_path(target), json.dumps(
        {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}) + "\n")


def expected_hash(entry: ModelEntry, expected_sha256: str | None) -> str | None:
    """The hash to check against: the manifest's pin, or the user's when the manifest has none.

    A user hash that contradicts the manifest is refused: the pin is the source of truth.
    """
    user = expected_sha256.strip().lower() if expected_sha256 else None
    if user is not None and (len(user) != 64 or any(c not in "0123456789abcdef" for c in user)):
        raise DDICModelError(f"The expected SHA-256 {expected_sha256!r} is not 64 hex digits.")
    if entry.sha256 and user and user != entry.sha256:
        raise DDICModelError(f"The SHA-256 given for {entry.id!r} ({user}) differs from the one pinned in "
                             f"the manifest ({entry.sha256}); refusing. Leave out the hash to use the pin.")
    return entry.sha256 or user


def verify(entry: ModelEntry, *, cache_dir: str | os.PathLike | None = None,
           path: str | os.PathLike | None = None, expected_sha256: str | None = None,
           progress: ProgressCallback | None = None, use_stamp: bool = True) -> Path:
    """Check the cached file of ``entry`` (or ``path``) against its SHA-256; return the checked path.

    Raises :class:`DDICModelError` when the file is missing, has the wrong size or hash, or no hash is
    known (neither pinned in the manifest, nor given, nor vouched for by an earlier explicit download).
    """
    in_cache = path is None
    target = cached_path(entry, cache_dir) if in_cache else Path(path)
    if not target.is_file():
        if not in_cache:
            raise DDICModelError(f"Model file not found: {target}.")
        raise DDICModelError(f"Model {entry.id!r} is not downloaded: {target} does not exist. Run "
                             f"`ddic models download {entry.id}`, or download {entry.url} yourself and "
                             f"place it at {target}.")
    remedy = (f"Remove it (`ddic models remove {entry.id}`) and download again from {entry.url}."
              if in_cache else f"Use the original file from {entry.url}.")
    stamp = _read_stamp(target) if in_cache else None
    expected = expected_hash(entry, expected_sha256) or (stamp or {}).get("sha256")
    if not expected:
        raise DDICModelError(f"No SHA-256 is known for model {entry.id!r}, so {target} cannot be verified. "
                             f"If you trust the file, give its hash: `ddic models verify {entry.id} "
                             f"--sha256 HEX`.")
    size = target.stat().st_size
    if entry.bytes is not None and size != entry.bytes:
        raise DDICModelError(f"{target} has {size} bytes, but model {entry.id!r} has {entry.bytes} bytes "
                             f"(incomplete or a different file). {remedy}")
    if use_stamp and stamp is not None and stamp.get("sha256") == expected:
        return target
    actual = sha256_of(target, progress, f"checking {entry.id}")
    if actual != expected:
        raise DDICModelError(f"{target} is not the expected file for model {entry.id!r}: SHA-256 {actual}, "
                             f"expected {expected}. The file is corrupt or a different version. {remedy}")
    if in_cache:
        try:
            write_stamp(target, actual)
        except OSError:
            pass  # a read-only cache still works, it just hashes again next time
    return target


def remove(entry: ModelEntry, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Delete the cached file, its unfinished download and its stamp; return what was deleted."""
    target = cached_path(entry, cache_dir)
    removed = []
    for p in (target, partial_path(entry, cache_dir), stamp_path(target)):
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DDICModelError(f"Cannot delete {p}: {exc.strerror or exc}. Close programs using it and "
                                 f"delete it by hand.") from exc
    return removed
