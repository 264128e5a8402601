"""The HC18 layout of rendered phantom frames: ``NAME.png``, ``NAME_Annotation.png`` and the CSV of pixel sizes.

Why apart from the renderer: the layout is HC18's (van den Heuvel et al. 2018), the contract
``ddic prepare hc18`` reads — so phantom cases and real challenge cases go through one preparer — and it
changes for different reasons than the physics does. Files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from ...errors import DDICInputError
from .ultrasound import UltrasoundFrame

HC18_CSV_HEADER = "filename,pixel size(mm),head circumference (mm)"


class Hc18Row(NamedTuple):
    """One row of HC18's ``training_set_pixel_size_and_HC.csv``."""

    filename: str
    pixel_size_mm: float
    head_circumference_mm: float

    def to_csv(self) -> str:
        return f"{self.filename},{self.pixel_size_mm:.12g},{self.head_circumference_mm:.2f}"


def write_hc18_case(folder: str | os.PathLike, name: str, frame: UltrasoundFrame) -> Hc18Row:
    """Write ``NAME.png`` (the frame) and ``NAME_Annotation.png`` (the skull outline) atomically in
    ``folder``; return the CSV row. HC18 names look like ``012_HC`` or ``012_2HC``."""
    from ...io.images import write_png

    name = str(name)
    if name.lower().endswith(".png"):
        name = name[:-4]
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise DDICInputError(f"Case name {name!r} must be a plain file stem such as 012_HC (no folders).")
    if not isinstance(frame, UltrasoundFrame):
        raise DDICInputError(f"write_hc18_case needs an UltrasoundFrame, got {type(frame).__name__}.")
    folder = Path(folder)
    write_png(frame.image, folder / f"{name}.png")
    write_png(frame.annotation, folder / f"{name}_Annotation.png")
    return Hc18Row(f"{name}.png", float(frame.pixel_size_mm), float(frame.head_circumference_mm))


def write_hc18_csv(path: str | os.PathLike, rows: Iterable[Hc18Row | Sequence]) -> Path:
    """Write the HC18 CSV (``filename,pixel size(mm),head circumference (mm)``) atomically."""
    from ...io.atomic import write_text_atomic

    lines = [HC18_CSV_HEADER]
    for row in rows:
        try:
            row = Hc18Row(str(row[0]), float(row[1]), float(row[2]))
        except (TypeError, ValueError, IndexError) as exc:
            raise DDICInputError(f"Not an HC18 row (filename, pixel size, HC): {row!r}.") from exc
        lines.append(row.to_csv())
    path = Path(path)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
