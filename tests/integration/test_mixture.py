"""``shardkit.Mixture`` of two packed ogg sets with different vocabularies: exact per-epoch counts,
labels joined by name, resume, DataLoader workers and real DDP (gloo); each part's label layer targets in the
joined classes."""

import json
import os
from collections import Counter
from datetime import timedelta
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from procs import free_port
from recipe_fixtures import pack_corpus
from test_recipes import _rows
from torch.utils.data import DataLoader

import shardkit
from shardkit import Mixture, ShardDataset


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    a = pack_corpus(root / "a", [("aaa", 3.0), ("bbb", 2.0)] * 6, prefix="XA")   # 30 segments
    b = pack_corpus(root / "b", [("bbb", 2.0), ("ccc", 4.0)] * 3, prefix="XB")   # 18 segments
    return a, b


def _mix(paths, rank=None, world=None, **kw):
    a, b = paths
    parts = [ShardDataset(a, batch_size=4, seed=1, shuffle_window="40kB", crop_seconds=0.5),
             ShardDataset(b, batch_size=4, seed=2, shuffle_window="40kB", crop_seconds=0.5, weights="balanced")]
    return Mixture(parts, proportions=[0.75, 0.25], samples_per_epoch=kw.pop("m", 41), seed=7, rank=rank,
                   world_size=world, **kw)


def _parts(batches):
    return [(p, k) for b in batches for p, k, v in zip(b["part"].tolist(), b["keys"], b["valid"].tolist()) if v]


def test_counts_vocabulary_and_labels(two_sets):
    mix = _mix(two_sets)
    assert mix.classes == ["aaa", "bbb", "ccc"] and mix.counts == [31, 10]
    for epoch in (0, 1):
        mix.set_epoch(epoch)
        batches = list(DataLoader(mix, batch_size=None, num_workers=2))
        assert len(batches) == len(mix) == 11
        got = _parts(batches)
        assert len(got) == 41
        assert sum(p == 0 for p, _ in got) == 31 and sum(p == 1 for p, _ in got) == 10
        for b in batches:  # labels land in the joined vocabulary by name
            for p, k, row, v in zip(b["part"].tolist(), b["keys"], b["labels"].numpy(), b["valid"].tolist()):
                if v:
                    assert mix.classes[int(row.argmax())] == k.split("/")[0] and row.sum() == 1.0
                    assert k.split("/")[1][:2] == ("XA", "XB")[p]
        assert b["audio"].shape == (b["audio"].shape[0], 4000)
    fixed = _mix(two_sets, classes=["ccc", "bbb"])
    b = next(iter(fixed))
    for k, row in zip(b["keys"], b["labels"].numpy()):
        assert row.sum() == (0.0 if k.startswith("aaa/") else 1.0)


def test_resume_equals_the_uninterrupted_epoch(two_sets):
    ref = [_rows(DataLoader(_mix(two_sets, r, 2), batch_size=None, num_workers=2)) for r in range(2)]
    mix = _mix(two_sets, 0, 2)
    done = 3
    assert _rows(islice(iter(DataLoader(mix, batch_size=None, num_workers=2)), done)) == ref[0][:done]
    state = mix.state_dict(done)
    for r in range(2):
        again = _mix(two_sets, r, 2)
        again.load_state_dict(state)
        assert ref[r][:done] + _rows(DataLoader(again, batch_size=None, num_workers=2)) == ref[r]
    with pytest.raises(shardkit.UsageError, match="another subset"):
        _mix(two_sets, 0, 2, m=40).load_state_dict(state)


def test_refusals(two_sets, tmp_path):
    a, b = two_sets
    with pytest.raises(shardkit.UsageError, match="Mixture"):
        ShardDataset([a, b])
    with pytest.raises(shardkit.UsageError, match="crop length"):
        Mixture([ShardDataset(a, crop_seconds=0.5), ShardDataset(b, crop_seconds=0.25)])
    other = pack_corpus(tmp_path / "c", [("ccc", 2.0)] * 3, sample_rate=16000, prefix="XC")
    with pytest.raises(shardkit.UsageError, match="sample rate"):
        Mixture([ShardDataset(a, crop_seconds=0.5), ShardDataset(other, crop_seconds=0.5)])
    with pytest.raises(shardkit.UsageError, match="proportions"):
        Mixture([ShardDataset(a), ShardDataset(b)], proportions=[1.0])
    with pytest.raises(shardkit.UsageError, match="shuffle=False"):
        Mixture([ShardDataset(a), ShardDataset(b, shuffle=False)])


def _ddp_rank(rank, world, port, paths, outdir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        mix = _mix(paths)
        assert (mix.rank, mix.world_size) == (rank, world)
        steps, got = 0, []
        for batch in DataLoader(mix, batch_size=None, num_workers=2):
            dist.all_reduce(batch["valid"].sum().reshape(1).float())
            got += [[p, k] for p, k, v in zip(batch["part"].tolist(), batch["keys"], batch["valid"].tolist()) if v]
            steps += 1
        Path(outdir, f"rank{rank}.json").write_text(json.dumps([steps, len(mix), got]))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_real_ddp_equal_counts(two_sets, tmp_path):
    paths = tuple(map(str, two_sets))
    tmp.spawn(_ddp_rank, args=(2, free_port(), paths, str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert {(s, n) for s, n, _ in results} == {(6, 6)}  # ceil(41 / 8)
    got = sorted(tuple(x) for _, _, g in results for x in g)
    ref = sorted(_parts(DataLoader(_mix(two_sets), batch_size=None)))
    assert got == ref
    assert np.bincount([p for p, _ in got]).tolist() == [31, 10]


@pytest.mark.parametrize("workers", [0, 2])
def test_read_ahead_changes_no_batch(two_sets, workers):
    a, b = two_sets

    def mix(ahead):
        parts = [ShardDataset(p, batch_size=4, seed=s, shuffle_window="40kB", crop_seconds=0.5, read_ahead=ahead,
                              weights=w) for p, s, w in ((a, 1, None), (b, 2, "balanced"))]
        return Mixture(parts, proportions=[0.6, 0.4], samples_per_epoch=30, seed=3)

    with_hints = _rows(DataLoader(mix(True), batch_size=None, num_workers=workers))
    assert with_hints == _rows(DataLoader(mix(False), batch_size=None, num_workers=workers))


# -- label layer targets in a mixture (issue 21): each part's layer, its classes joined by name --------------

#: each part's layer classes: its own vocabulary in another order plus a name only it has
LAYER_CLASSES = (["bbb", "zzz", "aaa"], ["ccc", "yyy", "bbb"])


@pytest.fixture(scope="module")
def layered(two_sets):
    """Each set of ``two_sets`` with a samples layer "pl" over all its keys but the first two (sorted):
    (paths of the new versions, per part {key: layer row as float32 after float16})."""
    paths, tables = [], []
    for n, (path, classes) in enumerate(zip(two_sets, LAYER_CLASSES)):
        keys = sorted(shardkit.ShardSet.open(path).keys)[2:]
        probs = np.random.default_rng(n).random((len(keys), len(classes))).round(3)
        new = path.parent / "set-pl"
        shardkit.add_labels(path, new, name="pl", keys=keys, probs=probs, classes=classes)
        paths.append(new)
        tables.append({k: p.astype(np.float16).astype(np.float32) for k, p in zip(keys, probs)})
    return paths, tables


def _layer_mix(paths, targets=("pl", "pl"), **kw):
    parts = [ShardDataset(p, batch_size=4, seed=s, shuffle_window="40kB", crop_seconds=0.5, targets=t)
             for p, s, t in zip(paths, (1, 2), targets)]
    return Mixture(parts, proportions=[0.5, 0.5], samples_per_epoch=kw.pop("m", 37), seed=7, **kw)


def _expected(mix, tables, part, key):
    """The item's own layer row mapped into the mixture's classes by name (None: no row, masked)."""
    if tables[part] is None or key not in tables[part]:
        return None
    row = dict(zip(LAYER_CLASSES[part], tables[part][key].tolist()))
    return np.asarray([row.get(c, 0.0) for c in mix.classes], dtype=np.float32)


def _check_targets(mix, batches, tables):
    seen = {0: 0, 1: 0}
    for b in batches:
        assert b["targets"].dtype == torch.float32 and b["targets"].shape == (len(b["keys"]), len(mix.classes))
        assert b["targets_mask"].dtype == torch.bool
        for p, k, t, m, v in zip(b["part"].tolist(), b["keys"], b["targets"].numpy(), b["targets_mask"].tolist(),
                                 b["valid"].tolist()):
            want = _expected(mix, tables, p, k) if v else None
            assert m == (want is not None), (p, k, v)
            np.testing.assert_array_equal(t, np.zeros(len(mix.classes), np.float32) if want is None else want)
            seen[p] += v
    return seen


def test_targets_of_each_part_in_the_joined_classes_through_workers(layered):
    paths, tables = layered
    mix = _layer_mix(paths)
    # the joined classes: both vocabularies and both layers' own names, sorted
    assert mix.classes == ["aaa", "bbb", "ccc", "yyy", "zzz"] and mix.counts == [19, 18]
    batches = list(DataLoader(mix, batch_size=None, num_workers=2))
    assert _check_targets(mix, batches, tables) == {0: 19, 1: 18}
    assert any(not b["valid"].all() for b in batches)  # the padded last step is masked
    masked = {(p, k) for b in batches for p, k, m, v in zip(b["part"].tolist(), b["keys"],
                                                             b["targets_mask"].tolist(), b["valid"].tolist())
              if v and not m}
    assert masked and all(k not in tables[p] for p, k in masked)  # the keys each layer has no row for
    # classes= narrows and reorders: a part's layer classes the mixture lacks are dropped
    narrow = _layer_mix(paths, classes=["zzz", "bbb"])
    _check_targets(narrow, DataLoader(narrow, batch_size=None, num_workers=2), tables)


def test_targets_resume_half_way(layered):
    paths, tables = layered
    full = [(b["keys"], b["targets"].clone(), b["targets_mask"].clone()) for b in _layer_mix(paths)]
    mix = _layer_mix(paths)
    mix.load_state_dict(mix.state_dict(4))
    rest = list(DataLoader(mix, batch_size=None, num_workers=2))
    assert [b["keys"] for b in rest] == [k for k, _, _ in full[4:]]
    for b, (_, t, m) in zip(rest, full[4:]):
        assert torch.equal(b["targets"], t) and torch.equal(b["targets_mask"], m)
    _check_targets(mix, rest, tables)


def test_a_part_without_targets_gives_masked_rows(layered, two_sets):
    paths, tables = layered
    mix = _layer_mix([paths[0], two_sets[1]], targets=("pl", None))
    assert mix.classes == ["aaa", "bbb", "ccc", "zzz"]
    batches = list(DataLoader(mix, batch_size=None, num_workers=2))
    assert _check_targets(mix, batches, [tables[0], None]) == {0: 19, 1: 18}
    # the labels are still each part's own, by name
    for b in batches:
        for k, row, v in zip(b["keys"], b["labels"].numpy(), b["valid"].tolist()):
            assert not v or mix.classes[int(row.argmax())] == k.split("/")[0]
    # no part with targets: no targets fields, as before
    plain = next(iter(_layer_mix(paths, targets=(None, None))))
    assert "targets" not in plain and "targets_mask" not in plain


def _batch_rows(batches):
    """[(parts, keys, valid, targets, targets_mask)] per batch, as plain lists (JSON-able)."""
    return [(b["part"].tolist(), list(b["keys"]), b["valid"].tolist(), b["targets"].tolist(),
             b["targets_mask"].tolist()) for b in batches]


def _ddp_layer_rank(rank, world, port, paths, outdir, done):
    """One gloo rank of a mixture whose parts read ``targets="pl"``: the whole epoch through 2 DataLoader workers,
    then ``done`` batches of it, a checkpoint, and a fresh mixture that resumes from it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=90))
    try:
        mix = _layer_mix([Path(p) for p in paths])
        assert (mix.rank, mix.world_size) == (rank, world)
        full = []
        for batch in DataLoader(mix, batch_size=None, num_workers=2):
            dist.all_reduce(batch["targets_mask"].sum().reshape(1).float())  # a rank short of a step would hang
            full += _batch_rows([batch])
        first = _layer_mix([Path(p) for p in paths])
        head = _batch_rows(islice(iter(DataLoader(first, batch_size=None, num_workers=2)), done))
        state = first.state_dict(done)
        states = [None] * world
        dist.all_gather_object(states, state)
        again = _layer_mix([Path(p) for p in paths])
        again.load_state_dict(state)
        rest = []
        for batch in DataLoader(again, batch_size=None, num_workers=2):
            dist.all_reduce(batch["valid"].sum().reshape(1).float())
            rest += _batch_rows([batch])
        same_state = all(s == states[0] for s in states)
        Path(outdir, f"rank{rank}.json").write_text(json.dumps([len(mix), mix.classes, full, head, rest, same_state]))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(240)
def test_targets_on_two_gloo_ranks_equal_counts_disjoint_draws_and_resume(layered, tmp_path):
    """issue 21's follow-up: a mixture whose parts read label layers on 2 real gloo ranks × 2 DataLoader workers."""
    paths, tables = layered
    done = 2
    tmp.spawn(_ddp_layer_rank, args=(2, free_port(), tuple(map(str, paths)), str(tmp_path), done), nprocs=2,
              join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    one = _layer_mix(paths)  # the same mixture in one process: the draws the ranks share out
    # equal batch counts: ceil(37 items / (2 ranks × 4)) = 5 each, as len() says
    assert [(n, len(full)) for n, _, full, _, _, _ in ranks] == [(5, 5), (5, 5)]
    # targets and targets_mask in the mixture's joined class order, each part's own layer row by name
    joined = ["aaa", "bbb", "ccc", "yyy", "zzz"]
    seen = Counter()
    for _, classes, full, _, _, _ in ranks:
        assert classes == joined
        for parts, keys, valid, targets, mask in full:
            for p, k, v, t, m in zip(parts, keys, valid, targets, mask):
                want = _expected(one, tables, p, k) if v else None
                assert m == (want is not None), (p, k, v)
                np.testing.assert_array_equal(np.float32(t), np.zeros(len(joined), np.float32) if want is None
                                              else want)
                seen[(p, k)] += v
    # disjoint draws: the two ranks' valid items together are the one-process epoch's draws, each once
    ref = Counter((p, k) for b in DataLoader(one, batch_size=None) for p, k, v in
                  zip(b["part"].tolist(), b["keys"], b["valid"].tolist()) if v)
    assert seen == ref and sum(ref.values()) == 37
    assert np.bincount([p for (p, _), c in ref.items() for _ in range(c)]).tolist() == one.counts == [19, 18]
    # resume mid-epoch: the checkpoint is the same on both ranks, and each rank's head + rest is its uninterrupted
    # batches (targets and masks too)
    for _, _, full, head, rest, same_state in ranks:
        assert same_state and head == full[:done] and head + rest == full
