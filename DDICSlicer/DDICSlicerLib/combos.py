"""Refill a combo box without losing the choice saved in the parameter node.

A ``QComboBox`` emits ``currentIndexChanged`` when it is cleared (-1) and again when the first item is
added (0). The panel's handlers store the chosen model in the parameter node, so a plain
clear-and-fill wrote the *first* model over the saved one (a scene reopened with ViT-L came back with
ViT-B). Here the signals are blocked while the items change, and the saved entry is selected after.
"""

from __future__ import annotations


def refill(combo, labels, selected: int | None) -> int:
    """Replace the items with ``labels`` and select ``selected`` (or the first), without emitting signals.

    Returns the selected index (-1 when there are no items).
    """
    labels = list(labels)
    was_blocked = combo.blockSignals(True)
    try:
        combo.clear()
        for label in labels:
            combo.addItem(label)
        index = selected if selected is not None and 0 <= selected < len(labels) else (0 if labels else -1)
        combo.setCurrentIndex(index)
    finally:
        combo.blockSignals(was_blocked)
    return index
