"""The order of an epoch and its shuffle windows: where the shuffle is decided.

- An *item* is one read of one sample: ``item = sample * crops_per_recording + crop_no``.
- The epoch order ``G`` (:func:`epoch_order`) and its windows (:func:`window_bounds`) are functions of one
  :class:`OrderSpec` (seed, epoch, shard set, shuffle, window size, crops per recording) only, never of the
  number of ranks or workers (:mod:`shardkit.dataset.plan` splits ``G`` across them).
- A window is the unit of locality: a run of samples of at most ``window_bytes`` stored bytes whose items
  are permuted among themselves, and the unit of the read-ahead (:func:`window_items`, :func:`window_extents`).

Randomness is the keyed hash of :mod:`.keyed`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import numpy as np

from shardkit.dataset.order.keyed import TAG_ROTATE, TAG_SHARDS, TAG_WINDOW, TAG_WINDOWS, hash64, permutation

#: Version of the shuffled order: 2 re-cuts (a keyed rotation) and permutes the windows every epoch;
#: 1 (shardkit ≤ 0.4) cut them at fixed places and read them in shard order. Checkpoints record it.
ORDER_VERSION = 2


@dataclass(frozen=True, eq=False)
class OrderSpec:
    """All an epoch's order depends on: :func:`epoch_order` and :func:`window_bounds` of the same spec
    describe the same epoch.

    ``shard_ptr`` int64 (S+1,): first sample of each shard; ``sample_bytes`` int64 (N,): stored bytes of
    each sample; ``window_bytes``: the most stored bytes of a shuffle window (a larger sample is alone);
    ``crops_per_recording``: items per sample.
    """

    shard_ptr: np.ndarray
    sample_bytes: np.ndarray
    _: KW_ONLY
    seed: int
    epoch: int
    shuffle: bool
    window_bytes: int
    crops_per_recording: int = 1


def shuffle_windows(nbytes: np.ndarray, window_bytes: int) -> np.ndarray:
    """Cut a sequence into consecutive windows of total ``nbytes`` ≤ ``window_bytes``.

    Greedy from the start; a window holds at least one element (a larger element is alone).
    ``nbytes``: int64 (n,). Returns the boundaries, int64 (windows + 1,): window w is
    ``[bounds[w], bounds[w+1])``.
    """
    n = len(nbytes)
    cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nbytes, out=cum[1:])
    bounds = [0]
    s = 0
    while s < n:
        e = int(np.searchsorted(cum, cum[s] + window_bytes, side="right")) - 1
        s = min(max(e, s + 1), n)
        bounds.append(s)
    return np.asarray(bounds, dtype=np.int64)


def _shuffled_sequence(shard_ptr: np.ndarray, *, seed: int, epoch: int) -> np.ndarray:
    """The samples (int64 (N,)) of the shards in a permuted order, concatenated, then rotated by a
    keyed number of samples: where the windows are cut moves every epoch, also for one shard."""
    n = int(shard_ptr[-1]) if len(shard_ptr) else 0
    counts = np.diff(shard_ptr).astype(np.int64)
    perm = permutation(len(counts), seed, epoch, TAG_SHARDS)
    lengths = counts[perm]
    before = np.zeros(len(perm), dtype=np.int64)
    np.cumsum(lengths[:-1], out=before[1:])
    samples = np.repeat(shard_ptr[:-1][perm] - before, lengths) + np.arange(n, dtype=np.int64)
    shift = int(hash64(seed, epoch, TAG_ROTATE) % np.uint64(max(n, 1)))
    return np.roll(samples, -shift)


def _permute_windows(samples: np.ndarray, bounds: np.ndarray, *, seed: int, epoch: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` with its windows (``bounds``) read in a keyed order, and the new bounds."""
    sizes = np.diff(bounds)
    order = permutation(len(sizes), seed, epoch, TAG_WINDOWS)
    new_bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes[order], out=new_bounds[1:])
    pick = np.concatenate([np.zeros(0, np.int64)] + [np.arange(bounds[w], bounds[w + 1]) for w in order.tolist()])
    return samples[pick], new_bounds


def window_layout(spec: OrderSpec) -> tuple[np.ndarray, np.ndarray]:
    """(samples int64 (N,) in the epoch's window sequence, window bounds int64 (windows + 1,) over it);
    samples, not items: ``spec.crops_per_recording`` plays no part.

    Shuffled: the shards' samples in a keyed sequence (:func:`_shuffled_sequence`), cut into the
    fewest windows of ≤ ``window_bytes`` of about equal size (:func:`shuffle_windows` with the cap
    ``ceil(total / ceil(total / window_bytes))``), read in a keyed order of windows. Not shuffled:
    natural order cut greedily into windows of ≤ ``window_bytes`` (the read-ahead's unit).
    """
    nbytes = np.asarray(spec.sample_bytes, dtype=np.int64)
    if not spec.shuffle:
        return np.arange(len(nbytes), dtype=np.int64), shuffle_windows(nbytes, int(spec.window_bytes))
    samples = _shuffled_sequence(spec.shard_ptr, seed=spec.seed, epoch=spec.epoch)
    total = int(nbytes.sum())
    k = max(1, -(-total // max(int(spec.window_bytes), 1)))
    bounds = shuffle_windows(nbytes[samples], -(-total // k))
    return _permute_windows(samples, bounds, seed=spec.seed, epoch=spec.epoch)


def epoch_order(spec: OrderSpec) -> np.ndarray:
    """The order ``G`` of all items of an epoch: int64 item ids, shape (N × crops_per_recording,).

    Without ``shuffle``: natural order (sample, then crop ascending). With it (:func:`window_layout`):
    shards permuted by (seed, epoch); their samples concatenated and rotated by a keyed number of
    samples; cut into the fewest windows of ≤ ``window_bytes`` stored bytes, of about equal size; the
    windows read in a keyed order; the items (all crops of the window's samples) permuted within each
    window by (seed, epoch, window number).
    """
    c = int(spec.crops_per_recording)
    n = int(spec.shard_ptr[-1]) if len(spec.shard_ptr) else 0
    if not spec.shuffle:
        return np.arange(n * c, dtype=np.int64)
    samples, bounds = window_layout(spec)
    items = (samples[:, None] * c + np.arange(c, dtype=np.int64)).reshape(-1)
    return items[permute_within_windows(bounds * c, seed=spec.seed, epoch=spec.epoch)]


def permute_within_windows(bounds: np.ndarray, *, seed: int, epoch: int) -> np.ndarray:
    """Indices (int64 (bounds[-1],)) that permute each window ``[bounds[w], bounds[w+1])`` of a
    sequence within itself, keyed by (seed, epoch, window number, position in the window)."""
    total = int(bounds[-1]) if len(bounds) else 0
    window = np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds))
    local = np.arange(total, dtype=np.int64) - bounds[:-1][window]
    keys = hash64(seed, epoch, TAG_WINDOW, window.astype(np.uint64), local.astype(np.uint64))
    return np.lexsort((keys, window)).astype(np.int64)


def window_bounds(spec: OrderSpec) -> np.ndarray:
    """Where the windows of :func:`epoch_order` lie in ``G``: int64 (windows + 1,) positions; window
    w is ``G[bounds[w]:bounds[w+1]]``. Without ``shuffle`` the natural order is cut the same way
    (windows of ≤ ``window_bytes`` stored bytes): the read-ahead's unit, not a shuffle."""
    _, bounds = window_layout(spec)
    return bounds * int(spec.crops_per_recording)


def window_items(positions: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """The ``positions`` (int64 (P,), into ``G``) that fall in each window of ``bounds``
    (:func:`window_bounds`): one int64 array per window, in the order given (empty where none)."""
    positions = np.asarray(positions, dtype=np.int64)
    win = np.searchsorted(bounds, positions, side="right") - 1
    order = np.argsort(win, kind="stable")
    cuts = np.searchsorted(win[order], np.arange(len(bounds)), side="left")
    return [positions[order[cuts[w]:cuts[w + 1]]] for w in range(len(bounds) - 1)]


def window_extents(items: np.ndarray, crops_per_recording: int, shard_id: np.ndarray, wav_offset: np.ndarray,
                   sample_bytes: np.ndarray, *, read_bytes: np.ndarray | None = None, min_use: float = 0.0
                   ) -> list[tuple[int, np.ndarray]]:
    """The read-ahead of one window: ``[(shard, samples int64 (k,)), ...]``, shards ascending, samples
    by ascending offset, each sample once — the data members the ``items`` (item ids) read.

    ``read_bytes`` int64 (N,), with ``min_use``: skip members of which the items read less than
    ``min_use`` of the bytes (random crops of long recordings: reading them whole costs more than
    the crops' own reads). Rows of a shard set are in (shard, offset) order, so sorted rows are too.
    """
    samples, count = np.unique(np.asarray(items, dtype=np.int64) // int(crops_per_recording), return_counts=True)
    if read_bytes is not None and min_use > 0 and len(samples):
        used = np.minimum(read_bytes[samples] * count, sample_bytes[samples])
        samples = samples[used >= min_use * sample_bytes[samples]]
    shards = shard_id[samples]
    starts = np.flatnonzero(np.r_[True, shards[1:] != shards[:-1]]) if len(samples) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(samples)]
    out = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        part = samples[a:b]
        out.append((int(shards[a]), part[np.argsort(wav_offset[part], kind="stable")]))
    return out
