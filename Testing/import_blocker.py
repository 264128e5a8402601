"""Make an interpreter look like Slicer's Python without extras: importing anything else fails.

``install(allowed)`` puts a finder first on ``sys.meta_path`` that refuses every top-level package that is
neither in the standard library nor in ``allowed`` (Slicer's bundled packages plus our own), the way a
fresh Slicer without torch, diffusers, tqdm or segment_anything answers. Used to run the light
self-test's code paths for real.
"""

from __future__ import annotations

import importlib.abc
import sys


class BundledOnly(importlib.abc.MetaPathFinder):
    def __init__(self, allowed):
        self.allowed = set(allowed)
        self.blocked: list[str] = []

    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in self.allowed or top.startswith("_"):
            # "_"-names are the interpreter's own (e.g. _sysconfigdata_*), not packages one installs
            return None  # let the normal finders handle it
        self.blocked.append(name)
        raise ModuleNotFoundError(f"No module named {name!r} (not bundled with Slicer)", name=name)


def install(allowed) -> BundledOnly:
    finder = BundledOnly(allowed)
    sys.meta_path.insert(0, finder)
    return finder
