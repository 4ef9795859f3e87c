"""Reusable shared-memory slots that carry batches from DataLoader workers to the main process.

torch sends each tensor from a worker by copying it into a fresh shared-memory segment, which the
kernel allocates and zeroes page by page and the main process maps and faults in anew, and passes
a file descriptor for every tensor. On this project's VMs that costs ~20 ms for a 20 MB batch (64
five-second clips), several times the cost of reading the audio. Instead, a worker here reads each
batch (audio, labels, valid, index) straight into one of a few memfd-backed *slots* that live as
long as the worker. The main process maps a slot once (the descriptor travels only then) and, when
the last view of a part (the audio, the labels, ...) is gone, writes that batch's generation number
into the part's word of the slot header; a slot is free again once every part sent from it has been
released and no part of it is alive in the worker.

- Slots are anonymous memory files (``memfd``): nothing is left behind when a process dies.
- A worker owns at most :data:`MAX_SLOTS` slots (and :data:`MAX_POOL_BYTES`); when all are still
  held by the consumer (e.g. it keeps every batch), a batch falls back to plain tensors that torch
  sends its own way, so correctness never depends on the consumer releasing batches.
- Only the exact tensors the dataset yields travel through a slot (:class:`SlotTensor`); torch ops
  on them return plain tensors, and pickling one a second time sends a copy.
"""

from __future__ import annotations

import logging
import mmap
import os
import secrets
import threading
import weakref
from multiprocessing.reduction import DupFd
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

HEADER_BYTES = 128           # int64[0]: mapped by the receiver; int64[1 + p]: released gen of part p
MAX_PARTS = HEADER_BYTES // 8 - 1
ALIGN = 64
MAX_SLOTS = 6                # per worker: prefetch_factor (2) + batches held by the consumer + slack
MAX_POOL_BYTES = 1 << 30     # per worker
AVAILABLE = hasattr(os, "memfd_create") and hasattr(os, "ftruncate")

class _Slot:
    __slots__ = ("alive", "capacity", "fd", "gen", "header", "index", "mm", "sent")

    def __init__(self, index: int, capacity: int) -> None:
        self.index = index
        self.capacity = capacity
        self.fd = os.memfd_create(f"shardkit-batch-{index}", getattr(os, "MFD_CLOEXEC", 0))
        os.ftruncate(self.fd, HEADER_BYTES + capacity)
        self.mm = mmap.mmap(self.fd, HEADER_BYTES + capacity)
        self.header = np.frombuffer(self.mm, dtype=np.int64, count=HEADER_BYTES // 8)
        self.gen = 0
        self.alive = 0       # parts of the current batch still alive in this process
        self.sent: set[int] = set()

    def free(self) -> bool:
        return self.alive == 0 and all(int(self.header[1 + p]) == self.gen for p in self.sent)


def _layout(parts: list[tuple[tuple[int, ...], np.dtype]]) -> tuple[list[int], int]:
    offsets, end = [], HEADER_BYTES
    for shape, dtype in parts:
        offsets.append(end)
        end += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // ALIGN) * ALIGN
    return offsets, end - HEADER_BYTES


class SlotPool:
    """The slots of one worker process; see the module docstring."""

    def __init__(self, max_slots: int = MAX_SLOTS, max_bytes: int = MAX_POOL_BYTES) -> None:
        self.pid = os.getpid()
        self.uid = f"{self.pid}-{secrets.token_hex(6)}"
        self.max_slots = max_slots
        self.max_bytes = max_bytes
        self.slots: list[_Slot] = []
        self.fallbacks = 0
        self._gen = 0
        self._lock = threading.Lock()

    def batch(self, parts: list[tuple[tuple[int, ...], Any]]) -> list[torch.Tensor] | None:
        """Uninitialised tensors of the given (shape, numpy dtype), all in one free slot, or None
        when no slot is free (the caller then allocates plain tensors)."""
        if len(parts) > MAX_PARTS:
            raise ValueError(f"a slot holds at most {MAX_PARTS} tensors")
        offsets, nbytes = _layout(parts)
        slot, gen = self._acquire(nbytes, len(parts))
        if slot is None:
            return None
        out = []
        for part, ((shape, dtype), offset) in enumerate(zip(parts, offsets)):
            arr = np.frombuffer(slot.mm, dtype=dtype, count=int(np.prod(shape)), offset=offset)
            t = torch.from_numpy(arr.reshape(shape)).as_subclass(SlotTensor)
            t._sk_slot = (self, slot, gen, part, offset, np.dtype(dtype).str)
            weakref.finalize(t, self._dropped, slot, gen)
            out.append(t)
        return out

    def _acquire(self, nbytes: int, nparts: int) -> tuple[_Slot | None, int]:
        with self._lock:
            chosen = None
            for slot in self.slots:
                if slot.capacity >= nbytes and slot.free():
                    chosen = slot
                    break
            if chosen is None:
                used = sum(s.capacity for s in self.slots)
                if len(self.slots) >= self.max_slots or used + nbytes > self.max_bytes:
                    self.fallbacks += 1
                    if self.fallbacks == 1:
                        log.debug("all %d batch slots are held; this batch goes through torch's own "
                                  "shared memory", len(self.slots))
                    return None, 0
                try:
                    chosen = _Slot(len(self.slots), nbytes)
                except OSError as exc:  # out of memory or descriptors: send this batch torch's way
                    self.fallbacks += 1
                    log.warning("cannot create a shared-memory batch slot (%s); batches take torch's "
                                "slower path", exc)
                    self.max_slots = len(self.slots)
                    return None, 0
                self.slots.append(chosen)
            self._gen += 1
            chosen.gen, chosen.alive, chosen.sent = self._gen, nparts, set()
            return chosen, self._gen

    def _dropped(self, slot: _Slot, gen: int) -> None:
        """A part of batch ``gen`` died in this process."""
        with self._lock:
            if slot.gen == gen:
                slot.alive -= 1

    def _send(self, slot: _Slot, gen: int, part: int) -> tuple[bool, Any]:
        """(ok, descriptor or None): may ``part`` of batch ``gen`` travel through the slot?"""
        with self._lock:
            if slot.gen != gen or part in slot.sent or os.getpid() != self.pid:
                return False, None
            slot.sent.add(part)
            mapped = int(slot.header[0]) == 1
        return True, None if mapped else DupFd(slot.fd)


class SlotTensor(torch.Tensor):
    """A tensor over a worker's slot; pickling it (to the main process) sends a reference, not bytes."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __reduce_ex__(self, protocol: Any) -> Any:
        info = self.__dict__.get("_sk_slot")
        if info is not None:
            pool, slot, gen, part, offset, dtype = info
            ok, fd = pool._send(slot, gen, part)
            if ok:
                return _rebuild, (pool.uid, slot.index, slot.capacity, fd, gen, part, offset,
                                  tuple(self.shape), dtype)
        return _identity, (self.as_subclass(torch.Tensor).clone(),)


def _identity(x: Any) -> Any:
    return x


# -- the receiving (main) process -------------------------------------------------------------------

_MAPS: dict[tuple[str, int], tuple[mmap.mmap, np.ndarray]] = {}
_LOCK = threading.Lock()


def _part_released(header: np.ndarray, part: int, gen: int) -> None:
    header[1 + part] = gen  # the last view of this part is gone: the worker may overwrite it


def _rebuild(uid: str, index: int, capacity: int, dupfd: Any, gen: int, part: int, offset: int,
             shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """In the receiving process: one part of a batch as a plain tensor over the slot's mapping."""
    fd = dupfd.detach() if dupfd is not None else None
    try:
        with _LOCK:
            entry = _MAPS.get((uid, index))
            if entry is None:
                if fd is None:
                    raise RuntimeError(f"shardkit: batch slot {uid}/{index} is not mapped in this process")
                if not any(k[0] == uid for k in _MAPS):
                    _forget_dead_workers()
                mm = mmap.mmap(fd, HEADER_BYTES + capacity)
                entry = (mm, np.frombuffer(mm, dtype=np.int64, count=HEADER_BYTES // 8))
                _MAPS[(uid, index)] = entry
                entry[1][0] = 1  # tell the worker it need not send the descriptor again
    finally:
        if fd is not None:
            os.close(fd)
    arr = np.frombuffer(entry[0], dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
    weakref.finalize(arr, _part_released, entry[1], part, gen)
    return torch.from_numpy(arr)


def _forget_dead_workers() -> None:
    """Unmap the slots of workers that have exited (their memory is freed once unmapped)."""
    for key in list(_MAPS):
        try:
            os.kill(int(key[0].split("-", 1)[0]), 0)
        except ProcessLookupError:
            del _MAPS[key]
        except OSError:
            pass


_POOL: SlotPool | None = None


def worker_pool() -> SlotPool | None:
    """This process's slot pool (created on first use), or None where memfd is unavailable."""
    global _POOL
    if not AVAILABLE:
        return None
    if _POOL is None or _POOL.pid != os.getpid():
        _POOL = SlotPool()
    return _POOL
