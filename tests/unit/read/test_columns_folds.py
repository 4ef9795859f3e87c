"""The per-sample columns table, keys=/where= subsets and cross-validation folds, on a set packed by
``shardkit.pack`` from real ogg files with a metadata CSV."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recipe_fixtures import pack_corpus

import shardkit
from shardkit.errors import SampleNotFoundError, UsageError
from shardkit.read.columns import select_rows, typed_column
from shardkit.read.folds import assign_folds
from shardkit.read.shardset import ShardSet

FILES = [("aaa", 3.0), ("bbb", 2.0), ("aaa", 1.5), ("ccc", 4.0)] * 4


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return pack_corpus(tmp_path_factory.mktemp("cols"), FILES)


def test_columns_join_the_csv_by_source(packed):
    cols = shardkit.sample_columns(packed)
    n = len(ShardSet.open(packed))
    assert all(len(v) == n for v in cols.values())
    assert cols["rating"].dtype == np.int64 and cols["author"].dtype.kind == "U"
    for key, src, label, start, rating in zip(cols["key"], cols["source"], cols["primary_label"],
                                              cols["start_seconds"], cols["rating"]):
        number = int(src.split("/XC")[1][:4])
        assert src.startswith(label + "/") and rating == number % 5 + 1
        assert start == float(key.rsplit("-", 1)[1])  # 1 s segments
    assert set(cols["seconds"]) == {1.0}


def test_typed_column_picks_one_type():
    assert typed_column([1, 2]).dtype == np.int64
    assert np.isnan(typed_column([1, None, 2.5])[1])
    assert typed_column(["a", None]).tolist() == ["a", ""]
    assert typed_column([True, False]).dtype == bool
    assert typed_column([1, "a"]).dtype == object
    lists = typed_column([["call", "song"], None, [], ["call"]])  # a "list" column (docs/format.md §5.4)
    assert lists.dtype == object and lists.shape == (4,)
    assert lists.tolist() == [("call", "song"), (), (), ("call",)]
    assert typed_column([["a"], ["b"]]).tolist() == [("a",), ("b",)]  # equal lengths stay one row each


def test_select_rows_by_keys_file_and_where(packed, tmp_path):
    ss = ShardSet.open(packed)
    keys = ss.keys[::3]
    f = tmp_path / "keys.txt"
    f.write_text("# bad takes\n" + "\n".join(keys) + "\n\n")
    assert select_rows(ss, keys=f).tolist() == list(range(0, len(ss), 3))
    rows = select_rows(ss, where=lambda c: c["rating"] >= 3)
    cols = shardkit.sample_columns(ss)
    assert rows.tolist() == np.flatnonzero(cols["rating"] >= 3).tolist()
    both = select_rows(ss, keys=keys, where=lambda c: c["rating"] >= 3)
    assert both.tolist() == sorted(set(rows.tolist()) & set(range(0, len(ss), 3)))
    assert select_rows(ss) is None


def test_select_rows_refuses_bad_input(packed, tmp_path):
    ss = ShardSet.open(packed)
    with pytest.raises(SampleNotFoundError, match="1 of the keys"):
        select_rows(ss, keys=[ss.keys[0], "nope"])
    with pytest.raises(UsageError, match="bool array"):
        select_rows(ss, where=lambda c: c["rating"])
    with pytest.raises(UsageError, match="select no sample"):
        select_rows(ss, where=lambda c: c["rating"] > 99)
    with pytest.raises(UsageError, match="no such file"):
        select_rows(ss, keys=str(tmp_path / "missing.txt"))


def test_folds_are_grouped_disjoint_and_cover(packed):
    ss = ShardSet.open(packed)
    cols = shardkit.sample_columns(ss)
    source = dict(zip(cols["key"].tolist(), cols["source"].tolist()))
    fl = shardkit.folds(packed, k=4, seed=3)
    valid = [k for f in fl for k in f.valid]
    assert sorted(valid) == sorted(ss.keys) and len(set(valid)) == len(ss)
    for f in fl:
        assert set(f.train) | set(f.valid) == set(ss.keys) and not set(f.train) & set(f.valid)
    groups = [{source[k] for k in f.valid} for f in fl]
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert shardkit.folds(packed, k=4, seed=3) == fl
    # per class: recordings of one class spread evenly (4 recordings of bbb: one per fold)
    assert [sum(k.startswith("bbb/") for k in f.valid) for f in fl] == [2, 2, 2, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=10, max_size=80), st.integers(2, 6), st.integers(0, 9))
def test_assign_folds_spreads_each_class_within_one(classes, k, seed):
    cls = np.asarray(classes)
    fold = assign_folds(np.arange(len(cls)), cls, k, seed)
    assert fold.min() >= 0 and fold.max() < k
    for c in set(classes):
        counts = np.bincount(fold[cls == c], minlength=k)
        assert counts.max() - counts.min() <= 1


def test_write_and_load_folds(packed, tmp_path):
    out = tmp_path / "folds.csv"
    fl = shardkit.write_folds(packed, out, 3)
    assert shardkit.load_folds(out) == fl
    with pytest.raises(UsageError, match="exists"):
        shardkit.write_folds(packed, out, 3)
    shardkit.write_folds(packed, out, 3, seed=1, force=True)
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="not a regular file"):
        shardkit.write_folds(packed, tmp_path / "d", 3, force=True)
    rated = shardkit.folds(packed, k=2, where=lambda c: c["rating"] >= 4)
    assert {k for f in rated for k in f.valid} == set(
        select_rows_keys := [k for k, r in zip(*(shardkit.sample_columns(packed)[c] for c in ("key", "rating")))
                             if r >= 4])
    assert len(select_rows_keys) == sum(len(f.valid) for f in rated)
