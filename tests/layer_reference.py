"""The targets a windows label layer gives a crop, computed window by window: the reference the reader's
vectorised arithmetic (shardkit.dataset.targets) is tested against."""

from __future__ import annotations

import numpy as np


def window_targets(layer, source: str, a: float, b: float, reduce: str) -> np.ndarray | None:
    """float32 (classes,): the rows of ``layer``'s windows of ``source`` that overlap source seconds
    ``[a, b)``, averaged weighted by overlap (``"mean"``) or their maximum (``"max"``); None when none does."""
    s = layer.sources.index(source) if source in layer.sources else -1
    rows, weights = [], []
    for r in range(layer.source_ptr[s], layer.source_ptr[s + 1]) if s >= 0 else []:
        w0 = layer.window[r] * layer.hop_seconds
        ov = min(b, w0 + layer.window_seconds) - max(a, w0)
        if ov > 0:
            rows.append(layer.values[r].astype(np.float32))
            weights.append(ov)
    if not rows:
        return None
    v, wt = np.stack(rows), np.asarray(weights)
    return (wt[:, None] * v).sum(0) / wt.sum() if reduce == "mean" else v.max(0)
