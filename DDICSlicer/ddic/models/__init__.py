"""Model registry and downloads: the manifest, where resources and the user's cache live, verified
downloads, and resolving "a model id or a file" to a local path.

Nothing here touches the network unless :func:`download` is called, and only the standard library is
used, so the Slicer process can import it cheaply.
"""

from .cache import (
    cached_path,
    default_cache_dir,
    is_cached,
    model_cache_dir,
    remove,
    sha256_of,
    verify,
)
from .download import download
from .manifest import Manifest, ModelEntry, load_manifest
from .resolve import ddic_model_path, entry_for_path, resolve_model, verify_bundled
from .resources import resources_dir

__all__ = [
    "Manifest", "ModelEntry", "cached_path", "ddic_model_path", "default_cache_dir", "download", "entry_for_path", "is_cached",
    "load_manifest", "model_cache_dir", "remove", "resolve_model", "resources_dir", "sha256_of", "verify",
    "verify_bundled",
]
