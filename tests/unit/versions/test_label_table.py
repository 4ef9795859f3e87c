"""Label tables read the same through pyarrow's CSV reader and Python's csv module (its fallback)."""

import numpy as np
import pytest

from shardkit.errors import MetadataError
from shardkit.versions import label_table


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("key,a,b\n0012,0.5, 0.25\nk-2,loud,\nk-3,1e-3,nan\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("python", [False, True])
def test_both_csv_readers_give_the_same_table(table, monkeypatch, python):
    if python:
        monkeypatch.setattr(label_table, "_csv_columns", label_table._csv_columns_python)
    t = label_table.read_table(table)
    assert t.keys == ["0012", "k-2", "k-3"] and t.classes == ["a", "b"]
    assert t.rows.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(t.values[[0, 2]], [[0.5, 0.25], [1e-3, np.nan]])
    assert [(p.row, p.column) for p in t.problems if "not a number" in p.reason] == [(2, "a")] + (
        [(2, "b")] if python else [])  # pyarrow reads an empty cell as null: NaN, refused as NaN later


@pytest.mark.parametrize("text, what", [("key,a,a\nk,1,1\n", "appears twice"), ("key\nk\n", "no class column"),
                                        ("x,a\n1,1\n", "needs a 'key' column"),
                                        ("key,source,start_seconds,a\nk,s,0,1\n", "identify rows by key only")])
def test_bad_headers_are_named(tmp_path, text, what):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(MetadataError, match=what):
        label_table.read_table(tmp_path / "t.csv")
