"""Which items an epoch reads when it is not every item once: subsets, weighted draws, mixtures.

Pure functions of (seed, epoch, sizes, weights) over numpy arrays, like :mod:`.shuffle` (no I/O, no
torch), in small named pieces:

- :func:`subset_ptr`: the shard structure of a subset of rows (a subset is read like a smaller set);
- :func:`label_weights`, :func:`check_weights`: per-sample weights (``weights=``);
- :func:`systematic_counts`: how often each item is drawn, floor or ceil of its expected count;
- :func:`weighted_order`: the order of a weighted epoch, drawn window by window;
- :func:`split_counts`, :func:`interleave`: a mixture's items per part, and their order;
- :class:`EpochSampler`: what :class:`~shardkit.ShardDataset` asks for an epoch's order;
- :func:`first_half_overlap`, :func:`position_change`: how unrelated two epochs' orders are.

**Draws stay in windows.** A weighted epoch of M items is drawn by systematic sampling over the
epoch's window sequence (:func:`.shuffle.window_layout`: the same rotated, re-cut, permuted windows as a
plain shuffle): the items in window order get cumulative weights, and M equally spaced points with a
keyed offset pick the draws. So each window gets its share of M by its total weight (±1), each item
is drawn ⌊M·w/W⌋ or ⌈M·w/W⌉ times (with replacement where weights demand it), and the draws of a
window are then shuffled within it: I/O stays window by window, as for a plain shuffle. The price:
the copies of a heavily up-weighted sample all fall in its window's stretch of the epoch, a few
batches apart rather than spread over the epoch (docs/recipes.md, "Balancing").

An epoch's order ``G`` holds *codes*: ``code = draw × items + item`` where ``item`` is the item id of
the set (``sample × crops + crop``) and ``draw`` numbers the copies of an item drawn more than once
in the epoch (0 for the first), so that each copy gets its own random crop.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shardkit.dataset.order.keyed import hash64
from shardkit.dataset.order.shuffle import (
    OrderSpec,
    epoch_order,
    permute_within_windows,
    window_bounds,
    window_layout,
)
from shardkit.errors import UsageError

TAG_DRAW = 0x44524157            # "DRAW"
TAG_MIX = 0x4D4958               # "MIX"
_TWO64 = float(1 << 64)


def subset_ptr(shard_ptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ``shard_ptr`` (int64 (S+1,)) of the subset ``rows`` (int64, ascending): subset row j is
    set row ``rows[j]``; its shard structure (and so its windows) is that of the set."""
    return np.searchsorted(np.asarray(rows, dtype=np.int64), shard_ptr, side="left").astype(np.int64)


def label_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """float64 (N,): ``count(label)^-power`` per sample (``power=1``: every label the same total
    weight, "balanced"; 0.5: the common ``count^-0.5``). Samples without a label form one class."""
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.float64) ** -float(power)


def check_weights(w: np.ndarray, n: int) -> np.ndarray:
    """``w`` as float64 (n,), finite, ≥ 0 and not all 0; :class:`UsageError` otherwise."""
    arr = np.asarray(w, dtype=np.float64)
    if arr.shape != (n,):
        raise UsageError(f"weights must have one entry per sample, shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        bad = int(np.flatnonzero(~np.isfinite(arr) | (arr < 0))[0])
        raise UsageError(f"weights must be finite and >= 0; entry {bad} is {arr[bad]}")
    if not arr.sum() > 0:
        raise UsageError("weights are all 0: no sample could be drawn")
    return arr


def unit_offset(*key: int) -> float:
    """A keyed number in [0, 1)."""
    return float(hash64(*key) >> np.uint64(11)) / float(1 << 53)


def systematic_counts(weights: np.ndarray, m: int, u: float) -> np.ndarray:
    """How often each entry is drawn (int64 (n,), summing to ``m``) by systematic sampling with offset
    ``u`` in [0, 1): entry i gets ⌊m·wᵢ/W⌋ or ⌈m·wᵢ/W⌉ draws, and every run of consecutive entries its
    expected count ±1."""
    w = np.asarray(weights, dtype=np.float64)
    cum = np.empty(len(w) + 1, dtype=np.float64)
    cum[0] = 0.0
    np.cumsum(w, out=cum[1:])
    cum = cum / cum[-1] * m
    cum[-1] = m  # exactly, whatever the rounding
    return np.diff(np.floor(cum + u)).astype(np.int64)


def weighted_order(spec: OrderSpec, weights: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The order of an epoch of ``m`` items drawn by ``weights`` (float64 (N,), per sample; each crop
    of a sample gets ``weight / crops``): codes int64 (m,) (``draw × N·crops + item``) and their window
    bounds int64 (windows + 1,) in ``G``. A drawn epoch is shuffled whatever ``spec.shuffle`` says.

    The items in the epoch's window order (:func:`.shuffle.window_layout`) are drawn by
    :func:`systematic_counts` with a keyed offset, then shuffled within each window
    (:func:`.shuffle.permute_within_windows`).
    """
    c, seed, epoch = int(spec.crops_per_recording), spec.seed, spec.epoch
    n_items = (int(spec.shard_ptr[-1]) if len(spec.shard_ptr) else 0) * c
    samples, bounds = window_layout(dataclasses.replace(spec, shuffle=True))
    items = (samples[:, None] * c + np.arange(c, dtype=np.int64)).reshape(-1)
    counts = systematic_counts(np.repeat(np.asarray(weights, dtype=np.float64)[samples], c), int(m),
                               unit_offset(seed, epoch, TAG_DRAW))
    drawn = np.repeat(items, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    codes = (np.arange(len(drawn), dtype=np.int64) - first) * n_items + drawn
    ends = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ends[1:])
    g_bounds = ends[bounds * c]
    return codes[permute_within_windows(g_bounds, seed=seed, epoch=epoch)], g_bounds


def split_counts(proportions: Sequence[float], m: int) -> list[int]:
    """``m`` items split by ``proportions`` (≥ 0, not all 0): ⌊m·pᵢ⌋ each, the rest one by one to
    the largest remainders (ties: the earlier part). Sums to ``m``; each within 1 of m·pᵢ."""
    p = np.asarray(proportions, dtype=np.float64)
    share = p / p.sum() * int(m)
    base = np.floor(share).astype(np.int64)
    rest = int(m) - int(base.sum())
    order = np.lexsort((np.arange(len(p)), -(share - base)))
    base[order[:rest]] += 1
    return base.tolist()


def interleave(counts: Sequence[int], *, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The order of a mixture's items: (part int64 (M,), index into the part's own order int64 (M,)).

    Item k of part p (of n_p) gets the time ``(k + u) / n_p``, u keyed in [0, 1); sorted by time, so
    every stretch of the epoch holds each part in its proportion (±1) and each part's items keep
    their order (its windows are read one after the other)."""
    parts = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    k = np.concatenate([np.zeros(0, np.int64)] + [np.arange(n, dtype=np.int64) for n in counts])
    n = np.repeat(np.asarray(counts, dtype=np.float64), counts)
    u = (hash64(seed, epoch, TAG_MIX, parts.astype(np.uint64), k.astype(np.uint64)) >> np.uint64(11))
    t = (k + u.astype(np.float64) / float(1 << 53)) / np.maximum(n, 1)
    order = np.lexsort((parts, t))
    return parts[order], k[order]


@dataclass(frozen=True, eq=False)
class EpochSampler:
    """The order of each epoch of a (subset of a) shard set: plain, or weighted draws.

    ``shard_ptr``/``sample_bytes``: of the set; ``rows``: the subset (int64, ascending) or None;
    ``weights``: float64 per subset row, or None for a plain epoch (every item once);
    ``samples_per_epoch``: items drawn per epoch (weighted only). Codes of :meth:`order` are in the
    set's item space (``draw × set_items + sample × crops + crop``).
    """

    shard_ptr: np.ndarray
    sample_bytes: np.ndarray
    crops: int
    seed: int
    shuffle: bool
    window_bytes: int
    rows: np.ndarray | None = None
    weights: np.ndarray | None = None
    samples_per_epoch: int | None = None
    _sub_ptr: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ptr = self.shard_ptr if self.rows is None else subset_ptr(self.shard_ptr, self.rows)
        object.__setattr__(self, "_sub_ptr", ptr)
        if (self.weights is not None or self.samples_per_epoch is not None) and not self.shuffle:
            raise UsageError("weights= and samples_per_epoch= draw a random epoch: they need shuffle=True")

    @property
    def set_items(self) -> int:
        """Items of the whole set (samples × crops): the modulus of the codes."""
        return int(self.shard_ptr[-1]) * self.crops

    @property
    def subset_items(self) -> int:
        return int(self._sub_ptr[-1]) * self.crops

    @property
    def num_items(self) -> int:
        """Items per epoch: ``samples_per_epoch``, else the subset's items."""
        return int(self.samples_per_epoch) if self.samples_per_epoch is not None else self.subset_items

    @property
    def drawn(self) -> bool:
        """Whether epochs are drawn (weights or samples_per_epoch) rather than every item once."""
        return self.weights is not None or self.samples_per_epoch is not None

    def _bytes(self) -> np.ndarray:
        return self.sample_bytes if self.rows is None else self.sample_bytes[self.rows]

    def order(self, epoch: int, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(codes int64 (m,), window bounds int64 in ``G``) of ``epoch``; ``m`` (default
        :attr:`num_items`) other than the subset's items draws that many (a mixture's part)."""
        m = self.num_items if m is None else int(m)
        spec = OrderSpec(self._sub_ptr, self._bytes(), seed=self.seed, epoch=epoch, shuffle=self.shuffle,
                         window_bytes=self.window_bytes, crops_per_recording=self.crops)
        if self.drawn or m != self.subset_items:
            w = self.weights if self.weights is not None else np.ones(int(self._sub_ptr[-1]))
            codes, bounds = weighted_order(spec, w, m)
        else:
            codes, bounds = epoch_order(spec), window_bounds(spec)
        return self._to_set(codes), bounds

    def _to_set(self, codes: np.ndarray) -> np.ndarray:
        """Subset codes → set codes (same draw numbers, set item ids)."""
        if self.rows is None:
            return codes
        sub = self.subset_items
        draw, item = np.divmod(codes, max(sub, 1))
        set_item = self.rows[item // self.crops] * self.crops + item % self.crops
        return draw * self.set_items + set_item

    def recipe(self) -> str:
        """A digest of what chose the items (subset, weights, samples per epoch); "" for a plain epoch
        of the whole set. Checkpoints carry it (:class:`~shardkit.dataset.cursor.OrderKey`)."""
        if self.rows is None and not self.drawn:
            return ""
        h = hashlib.blake2b(digest_size=12)
        for part in (self.rows, self.weights):
            h.update(b"-" if part is None else np.ascontiguousarray(part).tobytes())
        h.update(str(self.samples_per_epoch).encode())
        return h.hexdigest()


def first_half_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """The share of the first half of order ``a`` that is in the first half of ``b`` (two
    permutations of the same items; 0.5 expected for uniform shuffles)."""
    h = len(a) // 2
    return len(np.intersect1d(a[:h], b[:h])) / max(h, 1)


def position_change(a: np.ndarray, b: np.ndarray) -> float:
    """The mean |position in ``b`` − position in ``a``| of an item, over the length (permutations of
    ``range(n)``; 1/3 expected for uniform shuffles)."""
    n = len(a)
    pa, pb = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    pa[a], pb[b] = np.arange(n), np.arange(n)
    return float(np.abs(pa - pb).mean()) / max(n, 1)
