"""Label layers, in one place (docs/labels.md): add, remove and list them (:mod:`shardkit.versions.layers`),
and name evaluation windows the BirdCLEF way (:func:`row_ids`).

    ds = shardkit.ShardDataset("soundscapes/", shuffle=False, crop_seconds=5, crops="grid")
    for batch in ds:
        rows += shardkit.labels.row_ids(batch)      # "<soundscape stem>_<end second>"
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from shardkit.versions.layers import LabelsResult, add_labels, list_labels, remove_labels


def row_ids(batch: Mapping[str, Any]) -> list[str]:
    """The BirdCLEF submission ``row_id`` of each row of a batch: ``<source stem>_<end second>``, the end
    being the batch's ``end_seconds`` (crop start + ``crop_seconds``) rounded to a whole second."""
    ends = batch["end_seconds"]
    ends = ends.tolist() if hasattr(ends, "tolist") else list(ends)
    return [f"{posixpath.splitext(posixpath.basename(str(s)))[0]}_{round(float(e))}"
            for s, e in zip(batch["source"], ends, strict=True)]


__all__ = ["LabelsResult", "add_labels", "list_labels", "remove_labels", "row_ids"]
