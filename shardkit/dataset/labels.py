"""Training targets from a shard set's label columns: pure functions over numpy arrays.

:func:`map_classes` maps the set's vocabulary onto the classes a model trains on;
:func:`multi_hot` writes a batch's targets. Neither reads a file or keeps state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from shardkit.errors import UsageError

log = logging.getLogger(__name__)


def map_classes(vocabulary: Sequence[str], label: np.ndarray, sec_idx: np.ndarray,
                classes: Sequence[str] | None, where: object = "") -> tuple[list[str], np.ndarray]:
    """The classes of the targets and ``class_of`` int64 (len(vocabulary),): the class of each
    vocabulary label, −1 for a label that is not among ``classes``.

    ``classes`` None: the vocabulary itself. ``label`` int32 (N,) and ``sec_idx`` int32 are the
    set's primary and secondary label columns, used to warn (naming ``where``) how many labels a
    narrower ``classes`` drops. Raises :class:`UsageError` for duplicate class names.
    """
    if classes is None:
        return list(vocabulary), np.arange(len(vocabulary), dtype=np.int64)
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise UsageError("classes has duplicate names")
    index = {c: i for i, c in enumerate(classes)}
    class_of = np.asarray([index.get(v, -1) for v in vocabulary], dtype=np.int64)
    lost_primary = int(np.count_nonzero((label >= 0) & (class_at(class_of, label) < 0)))
    lost_secondary = int(np.count_nonzero(class_of[sec_idx] < 0)) if sec_idx.size else 0
    if lost_primary or lost_secondary:
        missing = [v for v, c in zip(vocabulary, class_of) if c < 0]
        log.warning("%s: %d label(s) of the vocabulary are not in classes (%s%s); dropped from the "
                    "targets: %d primary labels (those samples get no primary target) and %d "
                    "secondary labels", where, len(missing), ", ".join(missing[:5]),
                    ", ..." if len(missing) > 5 else "", lost_primary, lost_secondary)
    return classes, class_of


def class_at(class_of: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """int64 with the shape of ``labels``: the class of each label number, −1 for none (−1) — also in a
    set with an empty vocabulary (an unlabelled set: ``class_of`` is empty)."""
    if not len(class_of):
        return np.full(np.shape(labels), -1, dtype=np.int64)
    return np.where(labels >= 0, class_of[np.clip(labels, 0, len(class_of) - 1)], -1)


def multi_hot(samples: np.ndarray, label: np.ndarray, sec_ptr: np.ndarray, sec_idx: np.ndarray,
              class_of: np.ndarray, secondary_weight: float, out: np.ndarray) -> None:
    """Write the targets of ``samples`` int64 (B,) into ``out`` float32 (B, n_classes): 1.0 for the
    primary label, ``secondary_weight`` for secondary ones (CSR ``sec_ptr``/``sec_idx``), 0 elsewhere;
    a primary label wins over the same label listed as secondary."""
    out[:] = 0.0
    if out.shape[1] == 0:
        return
    b = len(samples)
    starts = sec_ptr[samples]
    counts = sec_ptr[samples + 1] - starts
    total = int(counts.sum())
    if total and secondary_weight:
        rows = np.repeat(np.arange(b), counts)
        before = np.cumsum(counts) - counts
        idx = np.repeat(starts - before, counts) + np.arange(total)
        cls = class_of[sec_idx[idx]]
        keep = cls >= 0
        out[rows[keep], cls[keep]] = secondary_weight
    cls = class_at(class_of, label[samples])
    keep = cls >= 0
    out[np.flatnonzero(keep), cls[keep]] = 1.0
