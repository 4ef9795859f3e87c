"""List-looking metadata columns (issue 22 item 20; docs/format.md §5.4): BirdCLEF's ``type`` cells such as
``"['call', 'flight call']"`` are typed ``"list"`` when every cell with a value is a list literal of strings,
parsed as literals (never evaluated); one cell that is not makes the column text, never an error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkit.ingest.sources import MAX_LABEL_CELL, cell_value, column_types, discover, list_cell


def _rows(**columns: list[str]) -> list[dict[str, str]]:
    n = len(next(iter(columns.values())))
    return [{"filename": f"f{i}.ogg", **{k: v[i] for k, v in columns.items()}} for i in range(n)]


def test_list_columns_are_typed_list_and_coerced():
    types, coerced = column_types(_rows(
        type=["['call', 'flight call']", "[]", "", '["song"]'],
        missing=["['a']", "-", "nan", "['b']"],
        numbers=["[1, 2]", "[3]", "[]", "[4]"],
        text=["call", "['song']", "", "x"],
        empty=["[]", "[]", "", "[]"],
    ))
    assert types == {"type": "list", "missing": "list", "numbers": "str", "text": "str", "empty": "list"}
    assert coerced == ("type", "missing", "empty")  # their stored values change: a version-4 set


@pytest.mark.parametrize("bad", ["['song'", "['a'] + ['b']", "[__import__('os').system('true')]", "['a', None]",
                                 "[['a']]", "('a',)", "['a', 1]", "[" * 5000 + "]" * 5000, "['x']" * 3000])
def test_one_malformed_cell_makes_the_column_text(bad):
    types, coerced = column_types(_rows(type=["['call']", bad, "['song']"]))
    assert types == {"type": "str"} and coerced == ()
    assert list_cell(bad) is None


def test_cell_values_of_a_list_column():
    assert cell_value("list", " ['call', 'flight call'] ") == ["call", "flight call"]
    assert cell_value("list", "[]") == [] and cell_value("list", "") is None and cell_value("list", "NA") is None
    assert cell_value("list", '["caf\\u00e9"]') == ["café"] and cell_value("list", "['caf\\xe9']") == ["café"]
    assert list_cell("['x']" + " " * MAX_LABEL_CELL) == ("x",)  # surrounding blanks do not count
    assert list_cell("[" + "'a'," * MAX_LABEL_CELL + "]") is None  # too long: refused unread


@given(st.lists(st.text(max_size=12), max_size=6))
def test_any_list_of_strings_round_trips(values):
    assert cell_value("list", repr(values)) == values


def test_discover_gives_lists_in_extra(tmp_path):
    for name in ("a.ogg", "b.ogg", "c.ogg"):
        (tmp_path / name).write_bytes(b"x")
    csv = tmp_path / "meta.csv"
    csv.write_text("filename,primary_label,type,rating\n"
                   "a.ogg,x,\"['call', 'flight call']\",4\n"
                   "b.ogg,x,,5\n"
                   "c.ogg,x,[],-\n")
    items, rejects = discover(tmp_path, csv, order="sorted")
    assert not rejects
    assert [i.extra for i in items] == [{"type": ["call", "flight call"], "rating": 4},
                                        {"type": None, "rating": 5}, {"type": [], "rating": None}]
