"""A metadata CSV or a source folder cannot make pack read outside SRC, pack a file twice, or crash
with a traceback: such rows become rejects with a reason, unreadable CSVs a named MetadataError."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkit.errors import MetadataError
from shardkit.ingest.sources import discover


def _touch(p, data=b"x"):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def _csv(tmp_path, rows, encoding="utf-8"):
    path = tmp_path / "meta.csv"
    path.write_text("filename,primary_label,secondary_labels\n" + "".join(r + "\n" for r in rows),
                    encoding=encoding)
    return path


def test_rows_that_escape_src_are_rejected(tmp_path):
    src = tmp_path / "src"
    _touch(src / "grewar" / "a.ogg")
    _touch(tmp_path / "secret" / "private.ogg")
    (src / "link.ogg").symlink_to(tmp_path / "secret" / "private.ogg")
    csv_path = _csv(tmp_path, ["../secret/private.ogg,x,[]", f"{tmp_path}/secret/private.ogg,x,[]",
                               "link.ogg,x,[]", "grewar/a.ogg,grewar,[]", "grewar/../grewar/a.ogg,grewar,[]",
                               "./grewar/a.ogg,grewar,[]"])
    items, rejects = discover(src, csv_path, order="sorted")
    assert [i.rel for i in items] == ["grewar/a.ogg"]
    reasons = {r.row: r.reason for r in rejects}
    assert all(reasons[row].startswith("outside SRC") for row in (1, 2))
    assert reasons[3].startswith("symlink: this file leads outside SRC") and "--follow-symlinks" in reasons[3]
    assert all(reasons[row].startswith("duplicate") for row in (5, 6))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_utf16_and_bom_csvs_are_read(tmp_path, encoding):
    _touch(tmp_path / "src" / "a" / "é.ogg")
    items, _ = discover(tmp_path / "src", _csv(tmp_path, ["a/é.ogg,a,[]"], encoding))
    assert [i.rel for i in items] == ["a/é.ogg"]


def test_a_latin1_csv_is_named(tmp_path):
    _touch(tmp_path / "src" / "a" / "é.ogg")
    with pytest.raises(MetadataError, match=r"meta.csv: not UTF-8 .*save the CSV as UTF-8"):
        discover(tmp_path / "src", _csv(tmp_path, ["a/é.ogg,a,[]"], "latin-1"))


@pytest.mark.parametrize("cell", ["[" * 5000 + "]" * 5000, "'a'" * 4000, "[" * 200 + "]" * 200, "{1: 2}"])
def test_pathological_label_cells_are_rejects(tmp_path, cell):
    _touch(tmp_path / "src" / "a.ogg")
    items, rejects = discover(tmp_path / "src", _csv(tmp_path, [f'a.ogg,a,"{cell}"']))
    assert not items and rejects[0].reason.startswith("bad metadata: secondary_labels")


def test_a_file_name_that_is_not_utf8_is_a_reject_not_a_crash(tmp_path):
    src = tmp_path / "src"
    _touch(src / "good.ogg")
    with open(os.path.join(os.fsencode(src), b"bad\xff.ogg"), "wb") as fh:
        fh.write(b"x")
    items, rejects = discover(src)
    assert [i.rel for i in items] == ["good.ogg"]
    assert rejects[0].reason.startswith("bad file name") and "\\xff" in rejects[0].file


@given(st.text(alphabet="ab./\\_-", min_size=1, max_size=12))
def test_no_filename_reaches_outside_src(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("fuzz")
    _touch(root / "src" / "a" / "b.ogg")
    _touch(root / "outside.ogg")
    items, _ = discover(root / "src", _csv(root, [f"{name},a,[]"]))
    for it in items:
        assert os.path.realpath(it.path).startswith(os.path.realpath(root / "src") + os.sep)
