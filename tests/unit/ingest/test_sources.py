import pytest

from shardkit.errors import MetadataError, SourceError
from shardkit.ingest.sources import discover, vocabulary_of


def _touch(p, data=b"x"):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_folder_scan_labels_from_parent(tmp_path):
    for rel in ["b/x.ogg", "a/y.FLAC", "a/sub/z.mp3", "top.wav", "a/notes.txt"]:
        _touch(tmp_path / rel)
    items, rejects = discover(tmp_path, order="sorted")
    assert [i.rel for i in items] == ["a/sub/z.mp3", "a/y.FLAC", "b/x.ogg", "top.wav"]
    assert [i.primary_label for i in items] == ["sub", "a", "b", None]
    assert rejects == []
    assert vocabulary_of(items) == ["a", "b", "sub"]


def test_shuffled_order_is_deterministic_and_mixes(tmp_path):
    for i in range(30):
        _touch(tmp_path / f"l{i % 3}" / f"f{i}.ogg")
    a, _ = discover(tmp_path)
    b, _ = discover(tmp_path)
    assert [i.rel for i in a] == [i.rel for i in b]
    assert [i.rel for i in a] != sorted(i.rel for i in a)


def test_csv_rows_labels_extra_and_rejects(tmp_path):
    _touch(tmp_path / "amecro" / "XC1.ogg")
    _touch(tmp_path / "barswa" / "XC2.ogg")
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "primary_label,secondary_labels,rating,latitude,author,filename\n"
        "amecro,\"['barswa', 'grewar3']\",4.5,52.1,Ann,amecro/XC1.ogg\n"
        "barswa,[],3,,Bob,barswa/XC2.ogg\n"
        "barswa,[],3,,Bob,barswa/missing.ogg\n"
        "barswa,not a list,3,,Bob,barswa/XC2.ogg\n"
        "amecro,\"['x'\",1,,C,amecro/XC1.ogg\n"
    )
    items, rejects = discover(tmp_path, csv, order="sorted")
    assert [(i.rel, i.row, i.primary_label, i.secondary_labels) for i in items] == [
        ("amecro/XC1.ogg", 1, "amecro", ("barswa", "grewar3")),
        ("barswa/XC2.ogg", 2, "barswa", ()),
    ]
    assert items[0].extra == {"rating": 4.5, "latitude": 52.1, "author": "Ann"}
    assert items[1].extra["latitude"] is None and items[1].extra["rating"] == 3
    reasons = {(r.row, r.reason.split(":")[0]) for r in rejects}
    assert reasons == {(3, "missing"), (4, "duplicate"), (5, "duplicate")}
    assert vocabulary_of(items) == ["amecro", "barswa", "grewar3"]


def test_bad_secondary_labels_is_a_named_reject(tmp_path):
    _touch(tmp_path / "a.ogg")
    csv = tmp_path / "m.csv"
    csv.write_text("primary_label,secondary_labels,filename\nx,\"['y'\",a.ogg\n")
    items, rejects = discover(tmp_path, csv)
    assert items == [] and rejects[0].row == 1 and "bad metadata: secondary_labels" in rejects[0].reason


def test_csv_without_filename_column(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("primary_label,path\nx,a.ogg\n")
    with pytest.raises(MetadataError, match="no 'filename' column"):
        discover(tmp_path, csv)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        discover(tmp_path / "nope")
    with pytest.raises(SourceError, match="no audio files"):
        discover(tmp_path)


def test_keys_are_unique_safe_and_bounded(tmp_path):
    for rel in ["a/b.c.ogg", "a/b_c.ogg", "a/x y.ogg", "q/" + "n" * 150 + ".ogg"]:
        _touch(tmp_path / rel)
    items, _ = discover(tmp_path, order="sorted")
    stems = [i.stem for i in items]
    assert len(set(stems)) == len(stems)
    import re
    for s in stems:
        assert re.fullmatch(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*", s)
        assert len(s) + 5 <= 90
