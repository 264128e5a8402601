"""The model manifest: one JSON file (``Resources/models/manifest.json``) that lists every model the
extension knows, downloadable or bundled, with its URL, size, SHA-256, license and expected memory.

It is the single source of truth for those numbers: the CLI, the Slicer panel and the SAM backend all
read it through :func:`load_manifest`, so a new model is one JSON entry and no code change. The loader
checks every field and names the file, the entry and the field in its errors, because a broken manifest
would otherwise surface much later as a confusing download or load failure.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from ..errors import DDICModelError
from .resources import MANIFEST_NAME, resources_dir

MANIFEST_FORMAT = "ddic-model-manifest"
MANIFEST_FORMAT_VERSION = 1
ENV_MANIFEST = "DDIC_MODEL_MANIFEST"

#: ``sam``: a SAM-family checkpoint (arch says which builder); ``ddic``: a downloadable DDIC diffusion
#: model; ``bundled``: shipped inside the extension (``path`` relative to the manifest's folder, no URL).
KINDS = ("sam", "ddic", "bundled")
DOWNLOADABLE_KINDS = ("sam", "ddic")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MEMORY_KEYS = {"ram_gb", "vram_gb", "note"}


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest. ``bytes`` and ``sha256`` are ``None`` where they are not known."""

    id: str
    kind: str
    title: str
    license: str
    memory: dict = field(hash=False)
    description: str
    url: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    path: str | None = None
    filename: str | None = None
    mirrors: tuple = ()
    arch: str | None = None
    package: str | None = None
    config: str | None = None
    #: folder the manifest was read from; bundled paths are relative to it (not part of the JSON)
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    @property
    def is_bundled(self) -> bool:
        return self.kind == "bundled"

    @property
    def file_name(self) -> str:
        """Name of the file in the cache: ``filename`` if given, else the last part of the URL.

        Keeping the upstream name means a file fetched by hand in a browser can be dropped into the
        cache folder as it is.
        """
        if self.filename:
            return self.filename
        if self.url:
            return PurePosixPath(urlparse(self.url).path).name
        return PurePosixPath(self.path or self.id).name

    @property
    def urls(self) -> tuple[str, ...]:
        """The main URL followed by the mirrors, in the order a download tries them."""
        return tuple(u for u in (self.url, *self.mirrors) if u)

    @property
    def bundled_path(self) -> Path:
        """Where a bundled model lives (a file or a model folder)."""
        if not self.is_bundled:
            raise DDICModelError(f"Model {self.id!r} is not bundled (kind {self.kind!r}); it is downloaded "
                                 f"into the model cache.")
        base = self.base_dir if self.base_dir is not None else Path(".")
        return base / Path(*PurePosixPath(self.path).parts)

    def installed_bundled_path(self) -> Path:
        """:attr:`bundled_path`, refused with what to do when the installation lacks it."""
        path = self.bundled_path
        if not path.exists():
            raise DDICModelError(f"The bundled model {self.id!r} is missing from the installation ({path}). "
                                 f"Reinstall DDICSlicer.")
        return path

    def size_text(self) -> str:
        return format_bytes(self.bytes) if self.bytes is not None else "?"


@dataclass(frozen=True)
class Manifest:
    """All entries of one manifest file, looked up by id."""

    path: Path
    entries: tuple[ModelEntry, ...]

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, model_id: object) -> bool:
        return any(e.id == model_id for e in self.entries)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entries)

    def get(self, model_id: str) -> ModelEntry:
        for entry in self.entries:
            if entry.id == model_id:
                return entry
        raise DDICModelError(f"Unknown model id {model_id!r}. Known models in {self.path}: "
                             f"{', '.join(self.ids) or '(none)'}. `ddic models list` shows them.")

    def by_file_name(self, name: str) -> ModelEntry | None:
        """The downloadable entry whose cache file name is ``name`` (used to check a user's local copy)."""
        for entry in self.entries:
            if not entry.is_bundled and entry.file_name == name:
                return entry
        return None


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def default_manifest_path() -> Path:
    """``DDIC_MODEL_MANIFEST`` if set (tests, private catalogues), else ``manifest.json`` of the resources."""
    env = os.environ.get(ENV_MANIFEST)
    if env:
        return Path(env).expanduser()
    return resources_dir() / MANIFEST_NAME


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and check a manifest; ``path=None`` means :func:`default_manifest_path`."""
    path = Path(path) if path is not None else default_manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f" (set by {ENV_MANIFEST})" if os.environ.get(ENV_MANIFEST) and path == Path(
            os.environ[ENV_MANIFEST]).expanduser() else ""
        raise DDICModelError(f"Model manifest not found: {path}{hint}. It ships with DDICSlicer as "
                             f"Resources/models/{MANIFEST_NAME}; reinstall, or point {ENV_MANIFEST} at a "
                             f"manifest file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DDICModelError(f"Cannot read the model manifest {path}: {exc}.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DDICModelError(f"The model manifest {path} is not valid JSON (line {exc.lineno}, column "
                             f"{exc.colno}: {exc.msg}). Fix the file or restore it from the installation."
                             ) from None
    return parse_manifest(data, path)


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Check the parsed JSON of a manifest and build its entries (bundled paths relative to ``path``)."""
    where = f"model manifest {path}"
    if not isinstance(data, dict):
        raise DDICModelError(f"The {where} must hold a JSON object with a \"models\" list, not "
                             f"{type(data).__name__}.")
    if data.get("format") != MANIFEST_FORMAT:
        raise DDICModelError(f"The {where} is not a DDIC model manifest: \"format\" must be "
                             f"{MANIFEST_FORMAT!r}, not {data.get('format')!r}.")
    version = data.get("format_version")
    if not isinstance(version, int) or version > MANIFEST_FORMAT_VERSION or version < 1:
        raise DDICModelError(f"The {where} has format_version {version!r}; this version of ddic reads "
                             f"version {MANIFEST_FORMAT_VERSION}. Update DDICSlicer or use a matching manifest.")
    models = data.get("models")
    if not isinstance(models, list):
        raise DDICModelError(f"The {where} needs a \"models\" list.")
    entries = []
    seen_ids: set[str] = set()
    seen_files: dict[str, str] = {}
    for index, raw in enumerate(models):
        entry = _parse_entry(raw, index, where, path.parent)
        if entry.id in seen_ids:
            raise DDICModelError(f"The {where} lists the id {entry.id!r} twice; ids must be unique.")
        seen_ids.add(entry.id)
        if not entry.is_bundled:
            other = seen_files.get(entry.file_name)
            if other is not None:
                raise DDICModelError(f"The {where}: models {other!r} and {entry.id!r} would share the cache "
                                     f"file name {entry.file_name!r}; give one a distinct \"filename\".")
            seen_files[entry.file_name] = entry.id
        entries.append(entry)
    return Manifest(path=path, entries=tuple(entries))


_REQUIRED = ("id", "kind", "title", "license", "memory", "description")
_ALLOWED = {f.name for f in fields(ModelEntry)} - {"base_dir"}


def _parse_entry(raw: Any, index: int, where: str, base_dir: Path) -> ModelEntry:
    label = f"entry {index}"
    if not isinstance(raw, dict):
        raise DDICModelError(f"The {where}: {label} must be a JSON object, not {type(raw).__name__}.")
    if isinstance(raw.get("id"), str):
        label = f"entry {index} ({raw['id']!r})"

    def fail(problem: str) -> DDICModelError:
        return DDICModelError(f"The {where}: {label}: {problem}")

    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise fail(f"missing field(s) {', '.join(missing)}. Every entry needs {', '.join(_REQUIRED)}.")
    unknown = sorted(set(raw) - _ALLOWED)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)} (typo?). Allowed: {', '.join(sorted(_ALLOWED))}.")
    for key in ("id", "kind", "title", "license", "description"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise fail(f"{key!r} must be a non-empty string.")
    for key in ("url", "sha256", "path", "filename", "arch", "package", "config"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise fail(f"{key!r} must be a non-empty string or null.")
    if not _ID_RE.match(raw["id"]):
        raise fail("'id' must be lower-case letters, digits, '.', '_' or '-' (at most 64 characters).")
    kind = raw["kind"]
    if kind not in KINDS:
        raise fail(f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}.")

    size = raw.get("bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise fail(f"'bytes' must be a positive integer or null, not {size!r}.")
    sha = raw.get("sha256")
    if sha is not None and not _SHA256_RE.match(sha):
        raise fail("'sha256' must be 64 lower-case hex digits (a full SHA-256, not an MD5 or a prefix) or null.")
    _check_memory(raw["memory"], fail)

    mirrors = raw.get("mirrors") or []
    if not isinstance(mirrors, list) or not all(isinstance(u, str) for u in mirrors):
        raise fail("'mirrors' must be a list of URLs.")
    if kind == "bundled":
        if raw.get("url") or mirrors:
            raise fail("a bundled model has no 'url' or 'mirrors'; it ships in Resources/models.")
        rel = raw.get("path")
        if not rel:
            raise fail("a bundled model needs 'path' (relative to the manifest's folder).")
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel or ":" in rel:
            raise fail(f"'path' must be a relative path inside Resources/models using '/', not {rel!r}.")
    else:
        if raw.get("path"):
            raise fail("only bundled models have a 'path'; downloadable models go to the cache.")
        if not raw.get("url"):
            raise fail(f"a {kind!r} model needs a 'url' (only kind 'bundled' has none).")
        for url in (raw["url"], *mirrors):
            if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
                raise fail(f"{url!r} is not an http(s) URL.")
    filename = raw.get("filename")
    if filename is not None and (PurePosixPath(filename).name != filename or filename in (".", "..")
                                 or "\\" in filename):
        raise fail(f"'filename' must be a plain file name, not {filename!r}.")
    entry = ModelEntry(**{k: v for k, v in raw.items() if k != "mirrors"}, mirrors=tuple(mirrors),
                       base_dir=base_dir)
    if not entry.is_bundled and not entry.file_name:
        raise fail(f"cannot derive a file name from the URL {entry.url!r}; add 'filename'.")
    return entry


def _check_memory(memory: Any, fail) -> None:
    if not isinstance(memory, dict):
        raise fail("'memory' must be an object like {\"ram_gb\": 2.0, \"vram_gb\": 1.5, \"note\": \"...\"}.")
    unknown = set(memory) - _MEMORY_KEYS
    if unknown:
        raise fail(f"'memory' has unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                   f"{', '.join(sorted(_MEMORY_KEYS))}.")
    for key in ("ram_gb", "vram_gb"):
        value = memory.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise fail(f"'memory.{key}' must be a positive number (GB) or null, not {value!r}.")
