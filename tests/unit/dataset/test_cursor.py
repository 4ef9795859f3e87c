"""EpochCursor on its own: epochs, a restore that applies to one iteration, positions, checkpoint checks."""

import pickle
from pathlib import Path

import pytest

from shardkit.dataset.cursor import STATE_FORMAT, EpochCursor, OrderKey, SharedInt
from shardkit.errors import UsageError

KEY = OrderKey(seed=3, version_id="v1", num_items=100, shuffle=True, window_bytes=4096, root=Path("/set"))


def _cursor():
    return EpochCursor(KEY, step_items=2 * 8)  # world size 2, batch size 8


def test_shared_int_pickles_its_value():
    s = SharedInt(4)
    s.value = 5
    copy = pickle.loads(pickle.dumps(s))
    assert copy.value == 5 and copy._raw is None


def test_fresh_cursor_starts_epoch_0_at_0():
    c = _cursor()
    assert c.epoch == 0 and c.pending_start() == 0 and c.begin_iteration() == (0, 0)
    assert c.state_dict() == {"format": STATE_FORMAT, "seed": 3, "epoch": 0, "consumed": 0, "num_items": 100,
                              "version_id": "v1", "shuffle": True, "window_bytes": 4096, "order": 2,
                              "recipe": ""}


def test_position_counts_yielded_batches_or_the_given_count():
    c = _cursor()
    c.set_epoch(2)
    assert c.begin_iteration() == (2, 0)
    assert list(c.counted(iter("abc"))) == ["a", "b", "c"]
    assert c.position() == 3 * 16 and c.position(2) == 32
    assert c.position(100) == 100  # capped at the epoch's items
    with pytest.raises(UsageError, match="batches_done"):
        c.position(-1)
    with pytest.raises(UsageError, match="batches_done"):
        c.position(True)


def test_restore_applies_to_one_iteration_of_its_epoch():
    c = _cursor()
    c.restore(dict(c.state_dict(), epoch=4, consumed=40))
    assert c.epoch == 4 and c.pending_start() == 40
    assert c.position() == 40 and c.position(1) == 56  # restored, not iterated yet
    assert c.begin_iteration() == (4, 40)
    assert c.pending_start() == 0 and c.begin_iteration() == (4, 0)  # used up
    c.restore(dict(c.state_dict(), epoch=4, consumed=40))
    c.set_epoch(5)                                                    # another epoch drops it
    assert c.pending_start() == 0
    c.set_epoch(4)
    assert c.pending_start() == 0


def test_restore_is_seen_by_a_pickled_copy_made_before_it():
    c = _cursor()
    other = pickle.loads(pickle.dumps(c))  # a "worker": plain ints when not spawning
    assert other.pending_start() == 0 and other.key == c.key


@pytest.mark.parametrize("change, match", [
    ({"format": 9}, "not a ShardDataset state"),
    ({"seed": 4}, "seed=4"),
    ({"version_id": "v2"}, "version v2"),
    ({"num_items": 99}, "99 items"),
    ({"shuffle": False}, "shuffle=False"),
    ({"window_bytes": 1}, "window_bytes=1"),
    ({"consumed": 101}, "outside"),
    ({"consumed": -1}, "outside"),
    ({"recipe": "abc"}, "another subset"),
])
def test_restore_rejects_a_state_for_another_order(change, match):
    c = _cursor()
    with pytest.raises(UsageError, match=match):
        c.restore(dict(c.state_dict(), **change))
    assert c.pending_start() == 0 and c.epoch == 0  # nothing applied


def test_restore_needs_the_keys():
    c = _cursor()
    state = c.state_dict()
    del state["consumed"]
    with pytest.raises(UsageError, match="lacks 'consumed'"):
        c.load_state_dict(state)
    with pytest.raises(UsageError):
        c.restore("not a dict")


def test_an_old_mid_epoch_shuffled_checkpoint_is_refused_with_advice():
    c = _cursor()
    old = dict(c.state_dict(), epoch=3, consumed=40)
    del old["order"], old["recipe"]  # as shardkit <= 0.4 saved it: order version 1
    with pytest.raises(UsageError, match=r"version 1.*cannot be resumed exactly.*set_epoch\(3\)"):
        c.restore(old)
    for consumed in (0, 100):  # nothing or everything consumed: the same either way
        c.restore(dict(old, consumed=consumed))
        assert c.pending_start() == consumed
