"""The options of a :class:`~shardkit.dataset.ShardDataset`, checked once: :class:`ReadOptions`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shardkit.dataset import plan
from shardkit.dataset.order.grid import GRID_TAILS
from shardkit.errors import UsageError
from shardkit.units import parse_size

ON_ERROR = ("raise", "skip")
#: ``"random"``: one crop per item (random offsets when shuffling, fixed otherwise); ``"grid"``: every window
CROPS = ("random", "grid")


#: the largest epoch number (an epoch is kept in a shared 32-bit counter)
MAX_EPOCH = 2**31 - 1


def whole_number(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int when it is a whole number (an int or numpy integer, not a bool, a float or a
    string) within ``lo..hi``; else :class:`UsageError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"{lo if lo is not None else '…'}..{hi if hi is not None else '…'}"
        raise UsageError(f"{name} must be a whole number in {span}, got {value!r}")
    return int(value)


def finite_number(value: Any, name: str, lo: float, hi: float | None = None, *, above: bool = False) -> float:
    """``value`` as a float when it is a finite real number ``>= lo`` (``> lo`` with ``above``) and
    ``<= hi``; else :class:`UsageError` naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > lo if above else v >= lo) and (hi is None or v <= hi)
    if not ok:
        bound = f"{'>' if above else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
        raise UsageError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        extra = " or None" if allow_none else ""
        raise UsageError(f"{name} must be a positive integer{extra}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ReadOptions:
    """How a :class:`~shardkit.dataset.ShardDataset` reads; the arguments of its constructor (see there).

    Validated and normalised on construction (``partial=None`` becomes ``"pad"`` when shuffling, else
    ``"keep"``; ``shuffle_window`` is parsed into :attr:`window_bytes`); raises :class:`UsageError`.
    Whether ``crop_seconds``/``crops_per_recording`` suit a shard set is :meth:`check_layout`'s job.
    """

    batch_size: int = 64
    crop_seconds: float | None = None
    crops_per_recording: int = 1
    shuffle: bool = True
    seed: int = 0
    shuffle_window: int | str = "256MB"
    partial: str | None = None
    secondary_weight: float = 1.0
    classes: tuple[str, ...] | None = None
    with_metadata: bool = False
    on_error: str = "raise"
    read_threads: int | None = None
    read_ahead: bool | None = None
    verify_crc: bool = False
    crops: str = "random"
    tail: str = "pad"
    targets: str | None = None
    targets_reduce: str = "mean"
    #: ``shuffle_window`` in bytes
    window_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("batch_size", _positive_int(self.batch_size, "batch_size"))
        if self.on_error not in ON_ERROR:
            raise UsageError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        put("read_threads", _positive_int(self.read_threads, "read_threads", allow_none=True))
        partial = self.partial if self.partial is not None else ("pad" if self.shuffle else "keep")
        if partial not in plan.PARTIAL_POLICIES:
            raise UsageError(f"partial must be one of {plan.PARTIAL_POLICIES}, got {partial!r}")
        put("partial", partial)
        put("crops_per_recording", whole_number(self.crops_per_recording, "crops_per_recording", 1))
        put("shuffle", bool(self.shuffle))
        put("seed", whole_number(self.seed, "seed", -(2**63), 2**64 - 1))
        put("window_bytes", parse_size(self.shuffle_window, name="shuffle_window"))
        put("secondary_weight", finite_number(self.secondary_weight, "secondary_weight", 0.0, 1.0))
        if self.crop_seconds is not None:
            put("crop_seconds", finite_number(self.crop_seconds, "crop_seconds", 0.0, above=True))
        put("with_metadata", bool(self.with_metadata))
        put("read_ahead", None if self.read_ahead is None else bool(self.read_ahead))
        if not isinstance(self.verify_crc, bool):
            raise UsageError(f"verify_crc must be True or False, got {self.verify_crc!r}")
        if self.classes is not None:
            put("classes", tuple(str(c) for c in self.classes))
        self._check_crops()

    def _check_crops(self) -> None:
        """``crops``, ``tail``, ``targets`` and ``targets_reduce``."""
        if self.crops not in CROPS:
            raise UsageError(f"crops must be one of {CROPS}, got {self.crops!r}")
        if self.crops == "grid":
            if self.crop_seconds is None or self.shuffle or self.crops_per_recording != 1:
                raise UsageError("crops='grid' reads every window of crop_seconds of every sample in order: pass "
                                 "crop_seconds=..., shuffle=False and leave crops_per_recording at 1")
            if self.tail not in GRID_TAILS:
                raise UsageError(f"tail must be one of {GRID_TAILS}, got {self.tail!r}")
        if self.targets_reduce not in ("mean", "max"):
            raise UsageError(f"targets_reduce must be 'mean' or 'max', got {self.targets_reduce!r}")
        if self.targets is not None and not isinstance(self.targets, str):
            raise UsageError(f"targets must name a label layer of the set (a str), got {self.targets!r}")

    def check_layout(self, mode: str, root: object) -> None:
        """Raise :class:`UsageError` unless these options suit a shard set of layout ``mode``."""
        if mode == "recordings" and self.crop_seconds is None:
            raise UsageError(f"{root} holds whole recordings (layout mode 'recordings'): pass "
                             "crop_seconds=..., the length of the training crops in seconds")
        if mode != "recordings" and self.crops_per_recording != 1:
            raise UsageError(f"{root} holds fixed segments (layout mode {mode!r}): "
                             "crops_per_recording must be 1 (it is for recordings mode)")
