# ruff: noqa: N999 - Slicer convention: <Module>Lib package beside the module file
"""Slicer-side helpers of the DDICSlicer module (process control, layout, segments, CNR table, models).

Modules that touch ``slicer`` import it inside functions, so that ``process``, ``translation`` and
``workerclient`` stay plain Python and are tested outside Slicer.
"""
