"""Fuzzing metadata CSVs: generated rows (odd file names, traversal, absolute paths, NUL, huge and
nested label cells) in several encodings, and raw bytes, through ingest.sources.discover."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from fuzz_helpers import examples, guarded
from hypothesis import given
from hypothesis import strategies as st

from shardkit.ingest.sources import discover

NAMES = st.sampled_from(["a/x.wav", "a/../a/x.wav", "./a/x.wav", "../x.wav", "/etc/passwd", "a", "", " ",
                         "a\0b.wav", "a/x.wav/..", "\\a\\x.wav", "ä/ü.wav", "x" * 300, "a//x.wav", "~/x.wav",
                         "a/link.wav", "C:\\x.wav", "\ud7ff.wav"]) | st.text(max_size=30)
CELLS = st.sampled_from(["[]", "['a']", "['a', 'b']", "[" * 500 + "]" * 500, "{'a': 1}", "['" + "a" * 20000 + "']",
                         "a; b", "nan", "[1, 2]", "(", "\0"]) | st.text(max_size=40)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """SRC ``root/src`` with ``a/x.wav``, a symlink ``a/link.wav`` out of it, and ``root/secret.wav``."""
    root = tmp_path_factory.mktemp("csv")
    (root / "src" / "a").mkdir(parents=True)
    (root / "src" / "a" / "x.wav").write_bytes(b"RIFF")
    (root / "secret.wav").write_bytes(b"RIFF")
    (root / "src" / "a" / "link.wav").symlink_to(root / "secret.wav")
    return root



@examples(150)
@given(st.lists(st.tuples(NAMES, st.text(max_size=10), CELLS), max_size=6), ENCODINGS,
       st.sampled_from([("filename", "primary_label", "secondary_labels"), ("filename",), ("file", "label")]))
def test_generated_csv(root, rows, encoding, header):
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(header)
    for row in rows:
        w.writerow(row[: len(header)])
    try:
        data = text.getvalue().encode(encoding)
    except UnicodeEncodeError:  # a character the encoding lacks (or a lone surrogate)
        data = text.getvalue().encode("utf-8", "replace")
    path = root / "meta.csv"
    path.write_bytes(data)
    got = guarded(discover, root / "src", path)
    if isinstance(got, tuple):
        items, _rejects = got
        for it in items:  # whatever the CSV says, a source is a file inside SRC
            assert Path(it.path).resolve().is_relative_to((root / "src").resolve())


@examples(60)
@given(st.binary(max_size=300))
def test_raw_bytes(root, data):
    path = root / "raw.csv"
    path.write_bytes(b"filename,primary_label\n" + data)
    guarded(discover, root / "src", path)
    path.write_bytes(data)
    guarded(discover, root / "src", path)
