"""``shardkit.plan_split`` (the dry run of ``shardkit plan``) with recipe options against real reads: for each
recipe and rank/worker split, a real ``ShardDataset`` per rank through real DataLoader worker processes yields
exactly the batches, valid items, padding and per-worker batches the plan says; bad options raise the
dataset's errors."""

from collections import Counter

import numpy as np
import pytest
from recipe_fixtures import pack_corpus
from torch.utils.data import DataLoader, get_worker_info

import shardkit
from shardkit import ShardDataset

#: 1 s segments of 8 kHz ogg: rare 2, mid 20, common 60 (82 samples)
FILES = [("rare", 2.0)] + [("mid", 4.0)] * 5 + [("common", 5.0)] * 12


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """The set, and a version of it with a samples label layer "pl" over its keys but the first five."""
    root = tmp_path_factory.mktemp("dryrun")
    path = pack_corpus(root, FILES)
    keys = sorted(shardkit.ShardSet.open(path).keys)[5:]
    probs = np.random.default_rng(0).random((len(keys), 2)).round(3)
    shardkit.add_labels(path, root / "pl", name="pl", keys=keys, probs=probs, classes=["mid", "zzz"])
    return path, root / "pl"


def _rated(c):
    return c["rating"] >= 3


def _tag_worker(batch):
    """collate_fn: which DataLoader worker made the batch (runs in the worker process; 0 for the main one)."""
    info = get_worker_info()
    batch["worker"] = 0 if info is None else info.id
    return batch


#: (recipe options, world size, workers per rank, batch size, partial)
CASES = {
    "whole-set": ({}, 2, 2, 8, None),
    "where": (dict(where=_rated), 3, 2, 4, None),
    "where-drop": (dict(where=_rated), 2, 2, 8, "drop"),
    "keys-keep": (dict(keys="KEYS"), 2, 2, 4, "keep"),
    "balanced-draws": (dict(weights="balanced", samples_per_epoch=50), 2, 2, 4, None),
    "uniform-draws": (dict(samples_per_epoch=37), 3, 2, 4, None),
    "power-weights": (dict(weights=0.5, where=_rated), 1, 2, 8, None),
    "one-process": (dict(weights="balanced"), 2, 0, 8, "drop"),
    "targets": (dict(targets="pl"), 2, 2, 4, None),
    "grid": (dict(crops="grid", shuffle=False, crop_seconds=0.25), 2, 2, 8, None),
}


def _options(name, packed, tmp_path):
    recipe, world, workers, batch, partial = CASES[name]
    recipe = dict(recipe)
    path = packed[1] if "targets" in recipe else packed[0]
    if recipe.get("keys") == "KEYS":  # a file of one key per line: every third sample
        keys = sorted(shardkit.ShardSet.open(path).keys)[::3]
        (tmp_path / "keys.txt").write_text("# the subset\n" + "\n".join(keys) + "\n")
        recipe["keys"] = tmp_path / "keys.txt"
    return path, dict(recipe, batch_size=batch, partial=partial, seed=3, shuffle_window="40kB"), world, workers


@pytest.mark.parametrize("name", list(CASES))
def test_the_plan_is_what_real_reads_yield(name, packed, tmp_path):
    path, options, world, workers = _options(name, packed, tmp_path)
    plan = shardkit.plan_split(path, world_size=world, workers=workers, **options)
    assert len(plan.ranks) == world
    drawn, masked = Counter(), set()
    for rank, row in enumerate(plan.ranks):
        ds = ShardDataset(path, rank=rank, world_size=world, **options)
        assert (ds.num_items, len(ds)) == (plan.items, row["batches"])
        ds.set_epoch(1)
        batches = list(DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=_tag_worker))
        assert len(batches) == row["batches"]
        assert sum(int(b["valid"].sum()) for b in batches) == row["samples"]
        assert sum(int((~b["valid"]).sum()) for b in batches) == row["padded"]
        per_worker = Counter(b["worker"] for b in batches)
        assert [per_worker[w] for w in range(max(workers, 1))] == row["worker_batches"]
        for b in batches:
            drawn.update(k for k, v in zip(b["keys"], b["valid"].tolist()) if v)
            if "targets_mask" in b:
                masked.update(k for k, v, m in zip(b["keys"], b["valid"].tolist(), b["targets_mask"].tolist())
                              if v and m)
        ds.close()
    # over all ranks: the items per epoch, from the subset's samples, each as often as the plan says
    assert sum(drawn.values()) == sum(r["samples"] for r in plan.ranks)
    assert plan.samples <= plan.set_samples and len(drawn) <= plan.samples
    if plan.per_sample is not None and plan.partial != "drop":
        lo, hi = plan.per_sample
        assert sum(drawn.values()) == plan.items
        assert all(np.floor(lo + 1e-9) <= c <= np.ceil(hi - 1e-9) for c in drawn.values()), (plan.per_sample, drawn)
        if not plan.drawn:
            assert len(drawn) == plan.samples
    if plan.targets is not None:  # every sample read once: the layer's rows are the masks that come out True
        assert plan.classes == 4 and len(masked) == plan.targets_samples < plan.samples


def test_recipe_warnings(packed):
    path, _ = packed
    tiny = shardkit.plan_split(path, world_size=2, workers=2, batch_size=8, keys=[shardkit.ShardSet.open(path).keys[0]])
    assert (tiny.items, tiny.samples, tiny.set_samples) == (1, 1, 82)
    assert any("keep 1 of the set's 82 samples (1 items), fewer than one step (2 rank(s) × batch_size 8 = 16 "
               "items)" in w for w in tiny.warnings), tiny.warnings
    odd = shardkit.plan_split(path, world_size=2, batch_size=4, weights="balanced", samples_per_epoch=50)
    assert [w for w in odd.warnings if "samples_per_epoch" in w] == [
        "samples_per_epoch=50 is not a multiple of one step (2 rank(s) × batch_size 4 = 8 items): the last step "
        "is padded with 6 filler items; samples_per_epoch=48 or 56 fills every step"]
    assert odd.drawn and odd.items == 50 and odd.subset_items == 82
    lo, hi = odd.per_sample  # balanced: each class 50/3 draws; the rare class's 2 samples ~8.3 each
    assert lo == pytest.approx(50 / 3 / 60) and hi == pytest.approx(50 / 3 / 2)
    assert not [w for w in shardkit.plan_split(path, world_size=2, batch_size=4, samples_per_epoch=48).warnings
                if "samples_per_epoch" in w]
    zero = shardkit.plan_split(path, weights=lambda c: (c["primary_label"] != "rare").astype(float))
    assert "weights: 2 of the 82 samples read have weight 0 and are never drawn" in zero.warnings


def test_a_layer_without_rows_for_the_subset_is_warned(packed):
    _, layered = packed
    first = sorted(shardkit.ShardSet.open(layered).keys)[:5]  # the keys the layer has no row for
    p = shardkit.plan_split(layered, batch_size=2, keys=first, targets="pl")
    assert p.targets_samples == 0
    assert any("label layer 'pl' has no row for any of the 5 samples read" in w for w in p.warnings)


@pytest.mark.parametrize("options", [
    dict(keys=["no/such/key"]),
    dict(where=lambda c: c["rating"] > 99),
    dict(where=lambda c: c["rating"]),
    dict(weights="rare-first"),
    dict(weights=[1.0, 2.0]),
    dict(samples_per_epoch=0),
    dict(weights="balanced", shuffle=False),
    dict(targets="nosuchlayer"),
    dict(crops="grid", where=_rated, shuffle=False, crop_seconds=0.5),
    dict(crops_per_recording=2),
    dict(batch_size=0),
    dict(partial="some"),
])
def test_bad_options_raise_what_the_dataset_raises(packed, options):
    path, _ = packed
    with pytest.raises(shardkit.ShardkitError) as from_dataset:
        ShardDataset(path, **options)
    with pytest.raises(type(from_dataset.value)) as from_plan:
        shardkit.plan_split(path, world_size=2, workers=2, **options)
    assert str(from_plan.value) == str(from_dataset.value)
