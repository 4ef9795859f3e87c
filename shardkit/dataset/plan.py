"""The plan of an epoch: which item every rank and DataLoader worker reads, in which order.

Pure functions over numpy arrays: no I/O, no torch. See docs/reading.md for the rules.

- An *item* is one read of one sample: ``item = sample * crops_per_recording + crop_no``.
- The epoch order ``G`` (:func:`epoch_order`) is a function of (seed, epoch, shard set, window
  size, crops per recording) only, never of the number of ranks or workers.
- :func:`plan_rank` splits ``G[start:]`` into global steps of ``world_size × batch_size`` items;
  rank r takes the r-th batch of each step; batch t of a rank goes to DataLoader worker t % K.

Randomness comes from a keyed splitmix64 hash, not from numpy's generators, so the order is the
same on every platform and numpy version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from shardkit.errors import UsageError
from shardkit.format import Manifest

MASK64 = (1 << 64) - 1
#: Domain tags: the same (seed, epoch) drives independent decisions.
TAG_SHARDS = 0x5348415244        # "SHARD"
TAG_WINDOW = 0x57494E444F57      # "WINDOW"
TAG_CROP = 0x43524F50            # "CROP"
TAG_ROTATE = 0x524F54415445      # "ROTATE"
TAG_WINDOWS = 0x57494E444F5753   # "WINDOWS"
#: Version of the shuffled order: 2 re-cuts (a keyed rotation) and permutes the windows every epoch;
#: 1 (shardkit ≤ 0.4) cut them at fixed places and read them in shard order. Checkpoints record it.
ORDER_VERSION = 2
PARTIAL_POLICIES = ("drop", "pad", "keep")
#: ``crops="grid"``: the last, partial window of a sample
GRID_TAILS = ("pad", "drop")

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _u64(x: int | np.ndarray) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.astype(np.uint64, copy=False)
    return np.asarray(int(x) & MASK64, dtype=np.uint64)


def splitmix64(x: np.ndarray | int) -> np.ndarray:
    """The splitmix64 finaliser, element-wise: uint64 → uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = _u64(x) + _GAMMA
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return np.asarray(z ^ (z >> _S31), dtype=np.uint64)


def hash64(*parts: int | np.ndarray) -> np.ndarray:
    """A uint64 hash of a tuple of integers; array parts broadcast (result has their shape).

    Python ints are taken modulo 2**64 (negative seeds work).
    """
    h = np.asarray(0, dtype=np.uint64)
    for part in parts:
        h = splitmix64(h ^ _u64(part))
    return h


def permutation(n: int, *key: int) -> np.ndarray:
    """A permutation of ``range(n)`` (int64, (n,)) keyed by the integers ``key``."""
    return np.argsort(hash64(*key, np.arange(n, dtype=np.uint64)), kind="stable").astype(np.int64)


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


def window_layout(shard_ptr: np.ndarray, sample_bytes: np.ndarray, *, seed: int, epoch: int, shuffle: bool,
                   window_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(samples int64 (N,) in the epoch's window sequence, window bounds int64 (windows + 1,) over it).

    Shuffled: the shards' samples in a keyed sequence (:func:`_shuffled_sequence`), cut into the
    fewest windows of ≤ ``window_bytes`` of about equal size (:func:`shuffle_windows` with the cap
    ``ceil(total / ceil(total / window_bytes))``), read in a keyed order of windows. Not shuffled:
    natural order cut greedily into windows of ≤ ``window_bytes`` (the read-ahead's unit).
    """
    nbytes = np.asarray(sample_bytes, dtype=np.int64)
    if not shuffle:
        return np.arange(len(nbytes), dtype=np.int64), shuffle_windows(nbytes, int(window_bytes))
    samples = _shuffled_sequence(shard_ptr, seed=seed, epoch=epoch)
    total = int(nbytes.sum())
    k = max(1, -(-total // max(int(window_bytes), 1)))
    bounds = shuffle_windows(nbytes[samples], -(-total // k))
    return _permute_windows(samples, bounds, seed=seed, epoch=epoch)


def epoch_order(
    shard_ptr: np.ndarray,
    sample_bytes: np.ndarray,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    window_bytes: int,
    crops_per_recording: int = 1,
) -> np.ndarray:
    """The order ``G`` of all items of an epoch: int64 item ids, shape (N × crops_per_recording,).

    ``shard_ptr`` int64 (S+1,): first sample of each shard; ``sample_bytes`` int64 (N,): stored
    bytes of each sample. Without ``shuffle``: natural order (sample, then crop ascending). With it
    (:func:`window_layout`): shards permuted by (seed, epoch); their samples concatenated and rotated
    by a keyed number of samples; cut into the fewest windows of ≤ ``window_bytes`` stored bytes,
    of about equal size; the windows read in a keyed order; the items (all crops of the window's
    samples) permuted within each window by (seed, epoch, window number).
    """
    c = int(crops_per_recording)
    n = int(shard_ptr[-1]) if len(shard_ptr) else 0
    if not shuffle:
        return np.arange(n * c, dtype=np.int64)
    samples, bounds = window_layout(shard_ptr, sample_bytes, seed=seed, epoch=epoch, shuffle=True,
                                     window_bytes=window_bytes)
    items = (samples[:, None] * c + np.arange(c, dtype=np.int64)).reshape(-1)
    return items[permute_within_windows(bounds * c, seed=seed, epoch=epoch)]


def permute_within_windows(bounds: np.ndarray, *, seed: int, epoch: int) -> np.ndarray:
    """Indices (int64 (bounds[-1],)) that permute each window ``[bounds[w], bounds[w+1])`` of a
    sequence within itself, keyed by (seed, epoch, window number, position in the window)."""
    total = int(bounds[-1]) if len(bounds) else 0
    window = np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds))
    local = np.arange(total, dtype=np.int64) - bounds[:-1][window]
    keys = hash64(seed, epoch, TAG_WINDOW, window.astype(np.uint64), local.astype(np.uint64))
    return np.lexsort((keys, window)).astype(np.int64)


def window_bounds(
    shard_ptr: np.ndarray,
    sample_bytes: np.ndarray,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    window_bytes: int,
    crops_per_recording: int = 1,
) -> np.ndarray:
    """Where the windows of :func:`epoch_order` lie in ``G``: int64 (windows + 1,) positions; window
    w is ``G[bounds[w]:bounds[w+1]]``. Without ``shuffle`` the natural order is cut the same way
    (windows of ≤ ``window_bytes`` stored bytes): the read-ahead's unit, not a shuffle."""
    _, bounds = window_layout(shard_ptr, sample_bytes, seed=seed, epoch=epoch, shuffle=shuffle,
                               window_bytes=window_bytes)
    return bounds * int(crops_per_recording)


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


def crop_offsets(
    key_hash: np.ndarray,
    crop_no: np.ndarray,
    frames: np.ndarray,
    crop_frames: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    crops_per_recording: int = 1,
) -> np.ndarray:
    """First frame of each crop, int64 with the shape of ``frames``.

    With ``shuffle`` (training): ``hash(seed, epoch, key_hash, crop_no) % (frames − crop + 1)``, a
    fresh position each epoch. Without (evaluation): fixed; one crop per recording starts at 0,
    several are spread evenly from 0 to ``frames − crop``. Samples with ``frames ≤ crop_frames``
    get 0 (they are read whole and zero-padded).
    """
    frames = np.asarray(frames, dtype=np.int64)
    span = np.maximum(frames - int(crop_frames), 0)
    if shuffle:
        h = hash64(seed, epoch, TAG_CROP, np.asarray(key_hash, dtype=np.uint64),
                   np.asarray(crop_no, dtype=np.uint64))
        return (h % (span + 1).astype(np.uint64)).astype(np.int64)
    c = int(crops_per_recording)
    if c <= 1:
        return np.zeros_like(frames)
    return (np.asarray(crop_no, dtype=np.int64) * span) // (c - 1)


def grid_windows(frames: np.ndarray, step: float, tail: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every consecutive window of ``step`` frames (a window may span a fractional number of stored frames:
    a log-mel's hop need not divide it) of every sample, in sample order: (samples int64 (M,), first frames
    int64 (M,): ``round(k × step)``, window numbers k int64 (M,) within the sample). ``tail``: ``"pad"`` keeps
    a last window that runs past the sample's end (a reader zero-pads it; a sample shorter than one window
    gives one), ``"drop"`` leaves it out."""
    if tail not in GRID_TAILS:
        raise UsageError(f"tail must be one of {GRID_TAILS}, got {tail!r}")
    if not step >= 1:
        raise UsageError(f"a grid window must hold at least one frame, got {step}")
    frames = np.asarray(frames, dtype=np.int64)
    exact = frames / float(step)
    counts = (np.ceil(exact - 1e-9) if tail == "pad" else np.floor(exact + 1e-9)).astype(np.int64)
    total = int(counts.sum())
    samples = np.repeat(np.arange(len(frames), dtype=np.int64), counts)
    first = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    k = np.arange(total, dtype=np.int64) - first[:-1][samples]
    return samples, np.round(k * float(step)).astype(np.int64), k


@dataclass(frozen=True)
class GridOrder:
    """The epochs of ``crops="grid"``: every window (:func:`grid_windows`) once, in order, every epoch. The
    sampler a :class:`~shardkit.ShardDataset` asks for its order (as :class:`~.sampling.EpochSampler`)."""

    num_items: int
    #: window bounds of the read-ahead (:func:`window_bounds` of the samples, as positions of windows)
    bounds: np.ndarray
    drawn: bool = False

    @property
    def set_items(self) -> int:
        return self.num_items

    @classmethod
    def of(cls, ss: object, samples: np.ndarray, window_bytes: int, recipe: object) -> GridOrder:
        """The grid of the windows of ``samples`` int64 (M,) (their sample rows) of shard set ``ss``;
        :class:`UsageError` for a recipe (subsets and weights of grid windows are not there yet)."""
        if any(getattr(recipe, k, None) is not None for k in ("keys", "where", "weights", "samples_per_epoch")):
            raise UsageError("crops='grid' reads every window of every sample: keys=, where=, weights= and "
                             "samples_per_epoch= do not combine with it (yet); evaluate a subset as its own set")
        by_sample = window_bounds(ss.shard_ptr, ss.sample_bytes, seed=0, epoch=0,  # type: ignore[attr-defined]
                                  shuffle=False, window_bytes=window_bytes)
        first = np.searchsorted(samples, np.arange(len(ss) + 1), side="left")  # type: ignore[arg-type]
        return cls(num_items=len(samples), bounds=first[by_sample])

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(every window's position, in order; the read-ahead's window bounds): the same every epoch."""
        return np.arange(self.num_items, dtype=np.int64), self.bounds

    def recipe(self) -> str:
        """Checkpoints of a grid read are not those of crops (the items are windows)."""
        return "grid"


@dataclass(frozen=True)
class RankPlan:
    """The batches of one rank over ``G[start:]`` (``n`` = len(G)); see :func:`plan_rank`.

    Positions are in *remainder coordinates* ``q`` (``G[start + q]``); entries at ``q ≥ n − start``
    exist only with ``partial="pad"``: they wrap to the start of ``G`` and are flagged invalid.
    """

    n: int
    start: int
    world_size: int
    rank: int
    batch_size: int
    partial: str

    @property
    def remaining(self) -> int:
        """Items left in the epoch, ``n − start``."""
        return self.n - self.start

    @property
    def step_items(self) -> int:
        """Items per global step, ``world_size × batch_size``."""
        return self.world_size * self.batch_size

    @property
    def steps(self) -> int:
        """Global steps in which every rank has a full batch (drop/pad), or the full steps (keep)."""
        full, rest = divmod(self.remaining, self.step_items)
        return full + (1 if self.partial == "pad" and rest else 0)

    def _tail(self) -> tuple[int, int]:
        """keep: (q0, length) of this rank's share of the last, partial step."""
        full = self.remaining // self.step_items
        rest = self.remaining - full * self.step_items
        each, extra = divmod(rest, self.world_size)
        q0 = full * self.step_items + self.rank * each + min(self.rank, extra)
        return q0, each + (1 if self.rank < extra else 0)

    def __len__(self) -> int:
        """Batches this rank gets."""
        if self.partial == "keep":
            return self.steps + (1 if self._tail()[1] else 0)
        return self.steps

    def batch(self, t: int) -> tuple[int, int]:
        """Batch ``t`` of this rank as ``(q0, length)``: remainder positions ``q0 … q0+length−1``."""
        if not 0 <= t < len(self):
            raise IndexError(f"batch {t} out of range for a rank with {len(self)} batches")
        if t < self.steps:
            return t * self.step_items + self.rank * self.batch_size, self.batch_size
        return self._tail()

    def positions(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``t`` as positions into ``G`` (int64 (len,)) and a validity mask (bool (len,))."""
        q0, length = self.batch(t)
        q = np.arange(q0, q0 + length, dtype=np.int64)
        return (self.start + q) % max(self.n, 1), q < self.remaining

    def worker_batches(self, worker: int, num_workers: int) -> range:
        """The batches DataLoader worker ``worker`` of ``num_workers`` produces: ``t ≡ worker (mod K)``."""
        return range(worker, len(self), num_workers)


def plan_rank(
    n: int,
    *,
    world_size: int,
    rank: int,
    batch_size: int,
    partial: str,
    start: int = 0,
) -> RankPlan:
    """Plan the batches of ``rank`` over ``G[start:]`` of an epoch of ``n`` items.

    Global step t holds remainder items ``[t·W·B, (t+1)·W·B)``; rank r takes ``[r·B, (r+1)·B)`` of
    it. The last, partial step (R < W·B items): ``drop`` leaves it out; ``pad`` fills it by wrapping
    to the start of G (padding flagged invalid), so every rank has ``ceil((n−start)/(W·B))`` batches;
    ``keep`` splits the R items among ranks as evenly as possible, contiguously, so a rank has at
    most one extra, possibly short, batch and every item is read exactly once.
    """
    if partial not in PARTIAL_POLICIES:
        raise UsageError(f"partial must be one of {PARTIAL_POLICIES}, got {partial!r}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"invalid rank {rank} of world_size {world_size}")
    if not 0 <= start <= n:
        raise UsageError(f"start must be within 0..{n} (items in the epoch), got {start}")
    return RankPlan(int(n), int(start), int(world_size), int(rank), int(batch_size), partial)


def describe_plan(
    n_items: int,
    *,
    world_size: int,
    workers: int,
    batch_size: int,
    partial: str,
    start: int = 0,
) -> list[dict]:
    """Per-rank summary of the split of ``G[start:]`` of an epoch of ``n_items`` items (a dry run).

    One dict per rank: ``rank``, ``samples`` (valid items it reads), ``batches``, ``padded`` (filler
    items, ``partial="pad"``), ``worker_batches`` (list: batches of each of the ``workers``
    DataLoader workers; 0 workers counts as one, the main process) and ``warnings`` (list[str]:
    an empty rank, ranks with different batch counts, idle workers, items left out by ``drop``).
    :func:`plan_warnings` collects the warnings of all ranks.
    """
    if workers < 0:
        raise UsageError(f"workers must be >= 0, got {workers}")
    k = max(int(workers), 1)
    rows: list[dict] = []
    for rank in range(int(world_size)):
        rp = plan_rank(n_items, world_size=world_size, rank=rank, batch_size=batch_size,
                       partial=partial, start=start)
        batches = len(rp)
        valid = 0
        for t in range(batches):
            q0, length = rp.batch(t)
            valid += max(0, min(q0 + length, rp.remaining) - q0)
        padded = sum(rp.batch(t)[1] for t in range(batches)) - valid
        rows.append({"rank": rank, "samples": valid, "batches": batches, "padded": padded,
                     "worker_batches": [len(rp.worker_batches(w, k)) for w in range(k)], "warnings": []})
    counts = [r["batches"] for r in rows]
    total_valid = sum(r["samples"] for r in rows)
    for r in rows:
        w = r["warnings"]
        if r["batches"] == 0:
            w.append(f"rank {r['rank']} gets no batch ({n_items - start} items for {world_size} ranks of "
                     f"batch_size {batch_size}): lower batch_size or world_size")
        if max(counts) != min(counts):
            w.append(f"ranks get {min(counts)} to {max(counts)} batches (partial={partial!r}): DDP training "
                     "would hang on the last step; use partial='pad' or 'drop' for training")
        elif r["samples"] == 0:
            w.append(f"rank {r['rank']} reads only padding ({r['batches']} batch(es) of filler items)")
        idle = sum(1 for b in r["worker_batches"] if b == 0)
        if idle and r["batches"]:
            w.append(f"rank {r['rank']}: {idle} of {k} DataLoader workers get no batch")
    lost = (n_items - start) - total_valid
    if lost > 0 and rows:
        rows[0]["warnings"].append(f"partial='drop' leaves {lost} of {n_items - start} items out of this epoch")
    return rows


def plan_warnings(rows: list[dict]) -> list[str]:
    """All warnings of a :func:`describe_plan` result, each once, in order."""
    out: list[str] = []
    for r in rows:
        for w in r["warnings"]:
            if w not in out:
                out.append(w)
    return out


@dataclass(frozen=True)
class SplitPlan:
    """A dry run of how one epoch splits across ranks and DataLoader workers."""

    items: int                       #: items per epoch (samples × crops per recording)
    partial: str
    ranks: list[dict[str, Any]]      #: per rank: samples, batches, padded, worker_batches, warnings
    warnings: list[str]


def plan_split(
    path: str | os.PathLike[str],
    *,
    world_size: int = 1,
    workers: int = 0,
    batch_size: int = 64,
    crops_per_recording: int = 1,
    shuffle: bool = True,
    partial: str | None = None,
) -> SplitPlan:
    """Per-rank sample and batch counts of an epoch of the shard set at ``path``, as
    :class:`ShardDataset` would split it (the counts are the same for every epoch and seed)."""
    for name, value, least in (("world_size", world_size, 1), ("workers", workers, 0), ("batch_size", batch_size, 1),
                               ("crops_per_recording", crops_per_recording, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")
    items = Manifest.load(path).samples * int(crops_per_recording)
    policy = partial or ("pad" if shuffle else "keep")
    rows = describe_plan(items, world_size=world_size, workers=max(1, workers), batch_size=batch_size,
                         partial=policy)
    return SplitPlan(items=items, partial=policy, ranks=rows, warnings=plan_warnings(rows))
