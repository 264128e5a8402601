"""Verified model downloads, only when asked for.

A download streams into ``<cache>/<file>.partial``, resumes it with an HTTP ``Range`` request when an
earlier attempt left one (and starts clean when the server ignores the range), retries once when the
connection drops, and checks the SHA-256 *before* the file is moved to its final name: a bad file is
deleted and never becomes visible. The hash must be known in advance (pinned in the manifest or given
by the user); unverified files are never installed.

Only the standard library is used (urllib honours the usual proxy variables and system settings). The
``opener`` argument (anything with ``open(request, timeout=...)``) lets tests and the Slicer side swap
the transport. Raising from the progress callback cancels: the partial file stays and is resumed next
time.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from .. import __version__
from ..errors import DDICModelError
from ..progress import ProgressCallback, resolve
from . import neterrors
from .cache import (
    PARTIAL_SUFFIX,
    expected_hash,
    model_cache_dir,
    remove,
    sha256_of,
    stamp_path,
    verify,
    write_stamp,
)
from .manifest import Manifest, ModelEntry, format_bytes, load_manifest

USER_AGENT = f"ddicslicer/{__version__} (model download; Python urllib)"
CHUNK = 1 << 20
DEFAULT_TIMEOUT_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Restart(Exception):
    """The server cannot continue the partial file: start again from byte 0."""


class _Dropped(Exception):
    """The body ended early; the partial file is kept for a resumed retry."""


def default_opener() -> urllib.request.OpenerDirector:
    """urllib's opener with proxy settings from the environment/system and a verifying SSL context."""
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=neterrors.ssl_context()))


def get_entry(model: ModelEntry | str, manifest: Manifest | None = None) -> ModelEntry:
    if isinstance(model, ModelEntry):
        return model
    return (manifest if manifest is not None else load_manifest()).get(model)


def download(model: ModelEntry | str, *, cache_dir: str | os.PathLike | None = None,
             expected_sha256: str | None = None, progress: ProgressCallback | None = None,
             opener=None, manifest: Manifest | None = None, force: bool = False,
             timeout: float = DEFAULT_TIMEOUT_S, retries: int = 1) -> Path:
    """Make sure ``model`` (an entry or a manifest id) is in the cache, verified; return its path.

    A verified cached file is returned without any network access. A bundled model returns its path
    in the installation. ``expected_sha256`` is needed only for entries without a pinned hash (a hash
    that contradicts the pin is refused). ``force`` downloads again even when the file is cached.
    """
    entry = get_entry(model, manifest)
    progress = resolve(progress)
    if entry.is_bundled:
        return entry.installed_bundled_path()
    expected = expected_hash(entry, expected_sha256)
    if not expected:
        raise DDICModelError(f"Model {entry.id!r} has no SHA-256 pinned in the manifest, and an unverified "
                             f"file is never installed. If you trust the source, give the expected hash: "
                             f"`ddic models download {entry.id} --sha256 HEX`.")
    folder = model_cache_dir(cache_dir, create=True)
    target = folder / entry.file_name
    partial = target.with_name(target.name + PARTIAL_SUFFIX)

    if target.exists() and not force:
        try:
            return verify(entry, cache_dir=folder, expected_sha256=expected, progress=progress)
        except DDICModelError:
            progress(0, entry.bytes or 0, "the cached file does not match; downloading it again")
    # an existing file (forced, or failing verification) stays until a verified one replaces it
    _check_space(entry, folder, partial)

    errors: list[tuple[str, BaseException]] = []
    for url in entry.urls:
        try:
            actual = _fetch_with_retry(url, partial, entry, expected, opener or default_opener(), timeout,
                                       retries, progress)
        except DDICModelError:
            raise
        except OSError as exc:
            if isinstance(exc, urllib.error.URLError) or not _is_local_write_error(exc):
                errors.append((url, exc))
                continue
            raise _local_error(exc, entry, folder, partial) from exc
        if actual != expected:
            _unlink(partial)
            raise DDICModelError(
                f"The file downloaded from {url} for model {entry.id!r} has SHA-256 {actual}, expected "
                f"{expected}. It was deleted; nothing was installed. A proxy or firewall may have replaced "
                f"it (an error page), or the file on the server changed. {neterrors.manual_hint(entry, folder)}")
        _unlink(stamp_path(target))
        os.replace(partial, target)
        try:
            write_stamp(target, actual)
        except OSError:
            pass
        return target
    url, exc = errors[0]
    err = neterrors.describe(exc, url, entry, folder)
    if len(errors) > 1:
        others = "; ".join(f"{u}: {type(e).__name__}" for u, e in errors[1:])
        err = DDICModelError(f"{err} Mirrors tried as well: {others}.")
    raise err from exc


def _fetch_with_retry(url: str, partial: Path, entry: ModelEntry, expected: str, opener, timeout: float,
                      retries: int, progress: ProgressCallback) -> str:
    """Download ``url`` into ``partial`` (resuming it); return the SHA-256 of the complete file."""
    drops = 0
    restarts = 0
    while True:
        try:
            return _fetch_once(url, partial, entry, expected, opener, timeout, progress)
        except _Restart as why:
            restarts += 1
            _unlink(partial)
            if restarts > 1:
                raise DDICModelError(f"Downloading model {entry.id!r} from {url} failed: {why}") from None
            progress(0, entry.bytes or 0, f"restarting: {why}")
        except (_Dropped, OSError) as exc:
            if isinstance(exc, OSError) and not neterrors.is_dropped_connection(exc):
                raise
            drops += 1
            if drops > retries:
                raise (exc if isinstance(exc, OSError) else ConnectionResetError(str(exc))) from None
            progress(_size(partial), entry.bytes or 0, "connection dropped; resuming")


def _fetch_once(url: str, partial: Path, entry: ModelEntry, expected: str, opener, timeout: float,
                progress: ProgressCallback) -> str:
    offset = _size(partial)
    if entry.bytes is not None and offset == entry.bytes:
        # an earlier run finished the transfer but stopped before the move: no request needed
        actual = sha256_of(partial, progress, f"checking the unfinished download of {entry.id}")
        if actual == expected:
            return actual
        raise _Restart("the unfinished file has the full size but the wrong SHA-256")
    if entry.bytes is not None and offset > entry.bytes:
        raise _Restart(f"the unfinished file is larger than the model ({offset} > {entry.bytes} bytes)")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            exc.close()
            raise _Restart("the server cannot continue the unfinished file (HTTP 416)") from None
        raise
    with response:
        status = getattr(response, "status", None) or response.getcode()
        length = _int_or_none(response.headers.get("Content-Length"))
        if offset and status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise _Restart(f"the server answered the resume request with an unexpected range "
                               f"({response.headers.get('Content-Range')!r})")
            if match.group(3) != "*":
                length = int(match.group(3)) - offset
        elif status == 200:
            if offset:
                progress(0, entry.bytes or 0, "the server cannot resume; starting again")
            offset = 0
        else:
            raise urllib.error.HTTPError(url, status, f"unexpected status {status}", response.headers, None)
        total = offset + length if length is not None else entry.bytes
        if entry.bytes is not None and total is not None and total != entry.bytes:
            kind = response.headers.get("Content-Type", "unknown type")
            _unlink(partial)
            raise DDICModelError(
                f"Downloading model {entry.id!r} from {url} failed: the server offers {total} bytes "
                f"({kind}), but the model has {entry.bytes} bytes. A proxy or firewall may be returning a "
                f"login or block page instead of the file. Nothing was installed. "
                f"{neterrors.manual_hint(entry, partial.parent)}")
        digest = hashlib.sha256()
        if offset:
            with open(partial, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
        done = offset
        message = f"resuming at {format_bytes(offset)}" if offset else "downloading"
        progress(done, total or 0, message)
        with open(partial, "ab" if offset else "wb") as out:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                progress(done, total or 0, message)
        if total is not None and done < total:
            raise _Dropped(f"the connection closed after {done} of {total} bytes")
        return digest.hexdigest()


def _check_space(entry: ModelEntry, folder: Path, partial: Path) -> None:
    if entry.bytes is None:
        return
    needed = entry.bytes - _size(partial)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed > free:
        raise neterrors.disk_full(entry, folder, needed, free)


def _is_local_write_error(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM) or isinstance(
        exc, PermissionError)


def _local_error(exc: OSError, entry: ModelEntry, folder: Path, partial: Path) -> DDICModelError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        _unlink(partial)
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        return neterrors.disk_full(entry, folder, entry.bytes, free)
    return DDICModelError(f"Cannot write model {entry.id!r} into {folder}: {exc.strerror or exc}. Set "
                          f"DDIC_CACHE_DIR to a writable folder.")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _unlink(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


__all__ = ["default_opener", "download", "get_entry", "remove"]
