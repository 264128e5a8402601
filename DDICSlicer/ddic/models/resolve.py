"""One entry point for "which weights file?": a manifest id or a path the user picked.

The SAM backend and the Slicer panel accept either, so a user behind a firewall can always point at a
file they fetched themselves. Resolving never downloads: a missing model is an error that says which
command downloads it and where a hand-fetched file can go.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DDICModelError
from ..progress import ProgressCallback
from .cache import cached_path, is_cached, model_cache_dir, sha256_of, verify
from .manifest import Manifest, ModelEntry, load_manifest
from .neterrors import manual_hint


def entry_for_path(path: str | os.PathLike, manifest: Manifest | None = None) -> ModelEntry | None:
    """The downloadable manifest entry whose file name matches ``path`` (e.g. a local
    ``sam_vit_b_01ec64.pth``), or None; tells the SAM backend which architecture a file is."""
    manifest = manifest if manifest is not None else load_manifest()
    return manifest.by_file_name(Path(path).name)


def resolve_model(spec: str | os.PathLike, *, manifest: Manifest | None = None,
                  cache_dir: str | os.PathLike | None = None, check_sha256: bool = True,
                  progress: ProgressCallback | None = None) -> Path:
    """The verified local path of ``spec``: a manifest id or a local file/folder.

    * id of a downloadable model → its cached file, hash-checked (a stamp makes repeat checks free);
      not downloaded → :class:`DDICModelError` naming ``ddic models download ID`` and the drop folder;
    * id of a bundled model → its path inside the installation;
    * a path → must exist and be readable; if its file name is that of a manifest entry and
      ``check_sha256`` is true, the file must match that entry's SHA-256.
    """
    manifest = manifest if manifest is not None else load_manifest()
    text = os.fspath(spec)
    if isinstance(spec, str) and spec in manifest:
        entry = manifest.get(spec)
        if entry.is_bundled:
            return entry.installed_bundled_path()
        if not is_cached(entry, cache_dir):
            folder = model_cache_dir(cache_dir)
            size = f" ({entry.size_text()})" if entry.bytes else ""
            raise DDICModelError(f"Model {entry.id!r} is not downloaded yet. Download it{size} with "
                                 f"`ddic models download {entry.id}` (or the Download button in DDICSlicer). "
                                 f"{manual_hint(entry, folder)}")
        if check_sha256:
            return verify(entry, cache_dir=cache_dir, progress=progress)
        return cached_path(entry, cache_dir)

    path = Path(text).expanduser()
    if not path.exists():
        raise DDICModelError(f"{text!r} is neither a model id ({', '.join(manifest.ids)}) nor an existing "
                             f"file. Give a manifest id from `ddic models list` or the path of a weights file.")
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise DDICModelError(f"The model folder {path} is not readable; check its permissions.")
        return path
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise DDICModelError(f"The model file {path} cannot be read: {exc.strerror or exc}. Check its "
                             f"permissions or copy it to a readable folder.") from exc
    entry = manifest.by_file_name(path.name)
    if check_sha256 and entry is not None and entry.sha256:
        verify(entry, path=path, progress=progress)
    return path


def verify_bundled(entry: ModelEntry, progress: ProgressCallback | None = None) -> Path:
    """Check a bundled model: against the manifest's SHA-256 if it pins one (single file), else a DDIC
    model folder/card against the weights hash recorded in its model card. Returns the bundled path."""
    path = entry.installed_bundled_path()
    if entry.sha256 and path.is_file():
        return verify(entry, path=path, progress=progress)
    from ..diffusion.modelfile import read_card

    card, card_path = read_card(path)
    weights = card_path.with_name(card.weights_file or card_path.with_suffix(".safetensors").name)
    if not weights.is_file():
        raise DDICModelError(f"The bundled model {entry.id!r} lacks its weights file {weights}. Reinstall "
                             f"DDICSlicer.")
    actual = sha256_of(weights, progress, f"checking {entry.id}")
    if actual != card.weights_sha256:
        raise DDICModelError(f"The bundled model {entry.id!r} is damaged: {weights} has SHA-256 {actual}, its "
                             f"card {card_path.name} records {card.weights_sha256}. Reinstall DDICSlicer.")
    return path


def ddic_model_path(spec: str | os.PathLike, option: str = "--us-model") -> str:
    """What :func:`ddic.diffusion.modelfile.load_model` reads for a DDIC diffusion model given as a path (a
    card, its weights or their folder) or as an id that ``ddic models list`` prints (e.g. the bundled
    ``ddic-demo-us``). An existing path wins over an id of the same name; anything else is returned as
    it is, so ``load_model`` says what is wrong with it. ``option`` names the flag in errors."""
    text = os.fspath(spec)
    if Path(text).expanduser().exists():
        return text
    try:
        manifest = load_manifest()
    except DDICModelError:
        return text
    if text not in manifest:
        return text
    entry = manifest.get(text)
    if entry.kind not in ("ddic", "bundled"):
        usable = ", ".join(e.id for e in manifest if e.kind in ("ddic", "bundled"))
        raise DDICModelError(f"{option} {text!r} is a {entry.title} checkpoint, not a DDIC diffusion model. "
                             f"DDIC models from `ddic models list`: {usable or 'none'}; or give a model folder.")
    return os.fspath(resolve_model(text, manifest=manifest))
