"""Batch slots: the release protocol between a worker's SlotPool and the receiving process."""

import gc
import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch

from shardkit.dataset import transport

pytestmark = pytest.mark.skipif(not transport.AVAILABLE, reason="needs memfd (Linux)")

PARTS = [((4, 100), np.int16), ((4, 3), np.float32), ((4,), np.bool_), ((4,), np.int64)]


def _fill(tensors, value):
    for t in tensors:
        t.numpy()[...] = value
    return tensors


def _send(tensors):
    return pickle.loads(ForkingPickler.dumps(tensors))


def test_slot_reused_only_after_every_received_tensor_is_gone():
    pool = transport.SlotPool(max_slots=2)
    first = _fill(pool.batch(PARTS), 1)
    assert all(isinstance(t, transport.SlotTensor) for t in first)
    got = _send(first)
    del first
    gc.collect()
    assert all(type(t) is torch.Tensor for t in got)
    assert got[0].dtype == torch.int16 and got[0].shape == (4, 100) and bool((got[0] == 1).all())
    assert got[3].dtype == torch.int64 and got[2].dtype == torch.bool
    second = _fill(pool.batch(PARTS), 2)  # slot 0 is still held by `got`: a new slot
    assert len(pool.slots) == 2
    assert pool.batch(PARTS) is None and pool.fallbacks == 1  # both held: fall back
    assert bool((got[0] == 1).all())
    view = got[0][1:3]  # a view keeps the batch alive
    del got
    gc.collect()
    assert pool.batch(PARTS) is None
    assert bool((view == 1).all())
    del view
    gc.collect()
    third = pool.batch(PARTS)  # now slot 0 is free again
    assert third is not None and third[0]._sk_slot[1] is pool.slots[0]
    del second, third


def test_a_batch_dropped_unsent_frees_its_slot():
    pool = transport.SlotPool(max_slots=1)
    parts = pool.batch(PARTS)
    del parts
    gc.collect()
    assert pool.batch(PARTS) is not None


def test_ops_give_plain_tensors_and_a_second_send_copies():
    pool = transport.SlotPool(max_slots=2)
    tensors = _fill(pool.batch(PARTS), 3)
    assert type(tensors[0] + 1) is torch.Tensor and type(tensors[0][0]) is torch.Tensor
    once = _send(tensors)
    twice = _send(tensors)  # the same tensors again: plain copies, not the slot
    assert all(bool((a == b).all()) for a, b in zip(once, twice))
    assert twice[0].data_ptr() != once[0].data_ptr()
    del once, twice, tensors


def test_descriptor_sent_until_mapped():
    pool = transport.SlotPool(max_slots=1)
    tensors = _fill(pool.batch(PARTS), 5)
    with_fd = ForkingPickler.dumps(tensors[0])
    got = pickle.loads(with_fd)
    assert int(pool.slots[0].header[0]) == 1  # the receiver mapped it
    del got, tensors
    gc.collect()
    tensors = pool.batch(PARTS)  # only part 0 was sent, the rest died unsent: the slot is free
    assert tensors is not None
    ok, fd = pool._send(pool.slots[0], pool.slots[0].gen, 0)
    assert ok and fd is None
