"""Plain names for what the app shows: one vocabulary for splits, short lines for provenance."""

from __future__ import annotations

#: One vocabulary for the splits of data.npz, everywhere in the app.
SPLIT_LABELS = {"test": "test (same sites as training)", "shifted": "shifted (new site)",
                "val": "validation", "train": "training"}


def split_label(name: str) -> str:
    """How a split is named in the app ("shifted (new site)")."""
    return SPLIT_LABELS.get(str(name), str(name))


def provenance_line(prov) -> str:
    """One short line saying where a concept came from, for hovers and tables."""
    return prov.summary()
