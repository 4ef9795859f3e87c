"""``where=`` as text (shardkit/read/where.py): the expression equals the lambda it stands for, over a set packed
from real ogg files; anything outside the small language is refused by name."""

import numpy as np
import pytest
from recipe_fixtures import pack_corpus

import shardkit
from shardkit.errors import UsageError
from shardkit.read.columns import select_rows
from shardkit.read.shardset import ShardSet
from shardkit.read.where import where_expression

FILES = [("aaa", 3.0), ("bbb", 2.0), ("aaa", 1.5), ("ccc", 4.0)] * 3


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return pack_corpus(tmp_path_factory.mktemp("where"), FILES)


@pytest.mark.parametrize(("text", "same"), [
    ("rating >= 3", lambda c: c["rating"] >= 3),
    ("2 <= rating < 4", lambda c: (c["rating"] >= 2) & (c["rating"] < 4)),
    ("primary_label in ['aaa', 'ccc']", lambda c: np.isin(c["primary_label"], ["aaa", "ccc"])),
    ("primary_label not in ('aaa',) and not rating == 5", lambda c: (c["primary_label"] != "aaa") & (c["rating"] != 5)),
    ("author == 'author1' or seconds > 0.5 and rating < 2",
     lambda c: (c["author"] == "author1") | ((c["seconds"] > 0.5) & (c["rating"] < 2))),
])
def test_an_expression_selects_what_its_lambda_selects(packed, text, same):
    ss = ShardSet.open(packed)
    cols = shardkit.sample_columns(ss)
    np.testing.assert_array_equal(where_expression(text)(cols), same(cols))
    np.testing.assert_array_equal(select_rows(ss, where=text), np.flatnonzero(same(cols)))
    assert shardkit.ShardDataset(packed, where=text).num_items == int(same(cols).sum())


def test_a_list_column_answers_in():
    cols = {"type": np.array([("call",), (), ("song", "call")], dtype=object), "rating": np.array([1, 2, 3])}
    assert where_expression("'call' in type")(cols).tolist() == [True, False, True]
    assert where_expression("'song' not in type")(cols).tolist() == [True, True, False]


@pytest.mark.parametrize(("text", "needle"), [
    ("__import__('os').system('true')", "is not allowed"),
    ("rating.mean() > 1", "is not allowed"),
    ("rating[0] > 1", "is not allowed"),
    ("rating >=", "is not an expression"),
    ("nosuch > 1", "no column 'nosuch'; it has"),
    ("primary_label > 3", "compares values of different types"),
    ("rating in secondary_labels", "'in' takes a column and a list"),
    ("rating", "must return a bool array"),
])
def test_anything_else_is_refused_by_name(packed, text, needle):
    with pytest.raises(UsageError, match=needle):
        select_rows(ShardSet.open(packed), where=text)
