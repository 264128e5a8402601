"""The options of one translation as one JSON document: what ``ddic translate --options-json FILE`` reads.

Why a document: the Slicer panel builds the same :class:`~ddic.translate.options.TranslateOptions` and
:class:`~ddic.translate.placement.PlacementOptions` records as the command line, in Slicer's own process,
and hands them to the translation process. Rendering them back into option flags would mean a second,
hand-kept list of fields that drifts whenever a field is added; the document is the records themselves,
serialised field by field (``TranslateOptions.to_dict``/``from_dict``, and the dataclass fields of
``PlacementOptions``), so a new field travels without any change here or in the panel.

Document::

    {"format": "ddic-translate-options", "format_version": 1,
     "translate": {...TranslateOptions.to_dict()...},
     "placement": {"mode": ..., "ellipse": {"cx", "cy", "a", "b", "angle_deg"} | null, ...}}

Imports neither torch nor SimpleITK (numpy only through the placement module), so Slicer's process can
import it.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from ..errors import DDICInputError
from .options import TranslateOptions

FORMAT = "ddic-translate-options"
FORMAT_VERSION = 1

def placement_to_dict(placement) -> dict:
    """Every field of a ``PlacementOptions``; the ellipse as ``Ellipse.to_dict()`` (or None)."""
    out = {}
    for f in fields(placement):
        value = getattr(placement, f.name)
        out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
    return out


def placement_from_dict(data: dict):
    """A ``PlacementOptions`` from :func:`placement_to_dict` output; unknown keys are an error."""
    from ..geometry.ellipse import Ellipse
    from .placement import PlacementOptions

    if not isinstance(data, dict):
        raise DDICInputError(f"The placement options must be a JSON object, not {type(data).__name__}.")
    names = {f.name for f in fields(PlacementOptions)}
    unknown = set(data) - names
    if unknown:
        raise DDICInputError(f"Unknown placement option(s): {', '.join(sorted(unknown))}.")
    values = dict(data)
    if values.get("ellipse") is not None:
        values["ellipse"] = Ellipse.from_dict(values["ellipse"])
    return PlacementOptions(**values)


def to_dict(translate: TranslateOptions, placement) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "translate": translate.to_dict(),
            "placement": placement_to_dict(placement)}


def from_dict(data: dict) -> tuple[TranslateOptions, object]:
    """(TranslateOptions, PlacementOptions) of a document; a wrong or newer document is a clear error."""
    from .placement import PlacementOptions

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DDICInputError(f"Not a translation options document (expected \"format\": \"{FORMAT}\").")
    if data.get("format_version") != FORMAT_VERSION:
        raise DDICInputError(f"Translation options document version {data.get('format_version')!r} is not "
                             f"supported (this engine reads version {FORMAT_VERSION}); update DDICSlicer so "
                             "the panel and the engine come from one version.")
    translate = data.get("translate")
    if not isinstance(translate, dict):
        raise DDICInputError("The translation options document has no \"translate\" object.")
    placement = data.get("placement")
    return (TranslateOptions.from_dict(translate),
            PlacementOptions() if placement is None else placement_from_dict(placement))


def write(path: str | Path, translate: TranslateOptions, placement) -> Path:
    """Write the document atomically (a reader never sees half a file); returns the path."""
    from ..io.atomic import write_text_atomic

    path = Path(path)
    write_text_atomic(path, json.dumps(to_dict(translate, placement), indent=2) + "\n")
    return path


def read(path: str | Path) -> tuple[TranslateOptions, object]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DDICInputError(f"Options file not found: {path}.") from None
    except (OSError, ValueError) as exc:
        raise DDICInputError(f"Cannot read the options file {path}: {exc}.") from exc
    return from_dict(data)
