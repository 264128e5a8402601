"""Model choice for the panel, through the engine's manifest, cache and verified downloads (``ddic.models``).

Translation models come in pairs (an ultrasound and an MRI model, ids ``X-us`` / ``X-mri``); the bundled
demo pair works without any download. SAM checkpoints are downloaded only after the user has seen the
size, license, URL and target folder, into the user's cache (never the install folder), SHA-256
checked by the engine. ``ddic.models`` uses only the standard library, so importing it in Slicer is cheap.

Only SAM models the worker can load are offered: the SAM backend builds Segment Anything v1 models
(``ddic.segment.backend.SAM_PACKAGE``); SAM 2 and MobileSAM entries of the manifest need other packages
and are left out. :class:`Catalog` reads the manifest and model cards once (the panel asks for the
estimate on every parameter change) until :meth:`Catalog.refresh`.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_FILE = "local"  # model spec prefix meaning "a file the user picked"
DEMO_PAIR = ("ddic-demo-us", "ddic-demo-mri")


@dataclass(frozen=True)
class TranslationPair:
    title: str
    us: str  # manifest id or local path
    mri: str


def manifest():
    from ddic.models import load_manifest

    return load_manifest()


def translation_pairs(entries=None) -> list:
    """Pairs of translation models of the manifest (bundled first)."""
    entries = list(entries if entries is not None else manifest())
    by_id = {e.id: e for e in entries}
    pairs = []
    for entry in entries:
        if entry.kind in ("bundled", "ddic") and entry.id.endswith("-us"):
            mri_id = entry.id[: -len("-us")] + "-mri"
            if mri_id in by_id:
                title = entry.title.split(":")[0].strip()
                pairs.append((0 if entry.kind == "bundled" else 1, TranslationPair(title, entry.id, mri_id)))
    return [p for _order, p in sorted(pairs, key=lambda item: item[0])]


def sam_entries(entries=None) -> list:
    """The SAM models of the manifest that the segmentation worker can load."""
    from ddic.segment.backend import SAM_PACKAGE

    return [e for e in (entries if entries is not None else manifest()) if e.kind == "sam" and e.package == SAM_PACKAGE]


def pair_index(pairs: list, us: str, mri: str) -> int | None:
    """Index of the pair (us, mri) in ``pairs``, or None."""
    for index, pair in enumerate(pairs):
        if (pair.us, pair.mri) == (us, mri):
            return index
    return None


def entry_index(entries: list, entry_id: str) -> int | None:
    ids = [e.id for e in entries]
    return ids.index(entry_id) if entry_id in ids else None


class Catalog:
    """The manifest and the model cards the panel shows, read once until :meth:`refresh`.

    ``resolve`` (id or path → local path) and ``read_card`` (path → card dict) are injectable for tests.
    """

    def __init__(self, load=None, resolve_spec=None, read_card=None):
        self._load = load or manifest
        self._resolve = resolve_spec or resolve
        if read_card is None:
            from .translation import read_model_card as read_card
        self._read_card = read_card
        self._manifest = None
        self._cards: dict = {}

    def refresh(self) -> None:
        """Forget what was read (after a download, a cleared cache or a newly picked folder)."""
        self._manifest, self._cards = None, {}

    def manifest(self):
        if self._manifest is None:
            self._manifest = self._load()
        return self._manifest

    def card(self, spec: str) -> dict | None:
        """The model card of ``spec`` ({} without one), or None when the model cannot be found."""
        if spec not in self._cards:
            try:
                self._cards[spec] = self._read_card(self._resolve(spec))
            except Exception:  # noqa: BLE001 - unknown model: the estimate is only a hint, say so once
                self._cards[spec] = None
        return self._cards[spec]

    def is_available(self, spec: str) -> bool:
        """A bundled or downloaded manifest model, or any local path (checked when resolved)."""
        from ddic.models import is_cached

        entries = self.manifest()
        if spec in entries:
            entry = entries.get(spec)
            return entry.is_bundled or is_cached(entry)
        return True


def resolve(spec: str):
    """A manifest id or a local path → verified local path (raises ``DDICModelError`` with advice)."""
    from ddic.models import resolve_model

    return resolve_model(spec)


def is_available(spec: str) -> bool:
    from ddic.models import is_cached

    entries = manifest()
    if spec in entries:
        entry = entries.get(spec)
        return entry.is_bundled or is_cached(entry)
    return True  # a local path is checked when it is resolved


def download(entry_id: str, parent=None):
    """Download a manifest model into the cache with a cancelable progress dialog; returns the path.

    Runs on the main thread (the dialog pumps events between chunks); the engine verifies the SHA-256.
    """
    import slicer
    from ddic.models import download as engine_download

    entries = manifest()
    entry = entries.get(entry_id)
    dialog = slicer.util.createProgressDialog(parent=parent, labelText=f"Downloading {entry.title}…", maximum=100)
    dialog.setWindowTitle("DDICSlicer")

    def progress(done: int, total: int, message: str) -> None:
        if dialog.wasCanceled:
            raise KeyboardInterrupt
        if total:
            dialog.setValue(int(100 * done / total))
        dialog.setLabelText(message or f"Downloading {entry.title}…")
        slicer.app.processEvents()

    try:
        return engine_download(entry, progress=progress, manifest=entries)
    except KeyboardInterrupt:
        return None
    finally:
        dialog.close()


def download_consent_text(entry_id: str) -> str:
    from ddic.models import model_cache_dir

    entry = manifest().get(entry_id)
    return (f"{entry.title}\n\nSize: {entry.size_text()}\nLicense: {entry.license}\nFrom: {entry.url}\n"
            f"Into: {model_cache_dir()}\n\n{entry.description}\n\nDownload it now?")


def clear_downloaded() -> list:
    """Remove every downloaded model from the user's cache; returns the removed paths."""
    from ddic.models import remove

    removed = []
    for entry in manifest():
        if not entry.is_bundled:
            removed.extend(remove(entry))
    return removed


def cache_folder() -> str:
    from ddic.models import model_cache_dir

    return str(model_cache_dir())
