"""Shard sets written by every released format version stay readable (tests/golden/vN/).

v1: one wav16 recordings set (``expected.json``). v2 (made by ``tests/golden/make_v2.py``): a wav16
segments set and a mel-u8 recordings set, each with ``expected-<set>.json``. v3 (``make_v3.py``): a
parent and a derived set. v4: label layers (``make_v4.py``) and a set with typed metadata columns and a
rejects file (``make_v4_typed.py``), and one with a list column (``make_v4_lists.py``).
"""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import shardkit
from shardkit.format import READABLE_VERSIONS, Manifest

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
SETS = sorted(p for p in GOLDEN.glob("v*/*") if (p / "manifest.json").exists())


def _expected(path: Path) -> dict:
    own = path.parent / f"expected-{path.name}.json"
    return json.loads((own if own.exists() else path.parent / "expected.json").read_text())


def test_every_readable_version_has_a_fixture():
    assert {int(p.parent.name[1:]) for p in SETS} == set(READABLE_VERSIONS)


@pytest.mark.parametrize("path", SETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_set_reads(path):
    expected = _expected(path)
    assert shardkit.verify(path).ok
    entries = {e.key: e for e in shardkit.list_samples(path)}
    assert set(entries) == set(expected)
    for key, exp in expected.items():
        s = shardkit.read_sample(path, key)
        assert hashlib.sha256(s.data).hexdigest() == exp.get("data_sha256", exp.get("wav_sha256"))
        assert s.ext == exp.get("ext", "wav")
        assert entries[key].frames == exp["frames"] and entries[key].primary_label == exp["label"]
    ds = shardkit.ShardDataset(path, batch_size=len(expected), crop_seconds=0.25, shuffle=False)
    (batch,) = list(ds)
    mel = ds.shard_set.codec.codec_id == "mel-u8"
    for row, key in enumerate(batch["keys"]):
        data = shardkit.read_sample(path, key)
        if mel:
            ref = np.load(io.BytesIO(data.data))               # uint8 (n_mels, frames)
            got = batch["mel"][row].numpy()
            n = min(ref.shape[1], got.shape[1])
            np.testing.assert_array_equal(got[:, :n], ref[:, :n])
            np.testing.assert_allclose(batch["mel_range"][row].numpy(), [data.meta["q_lo"], data.meta["q_hi"]])
        else:
            ref, _ = sf.read(io.BytesIO(data.data), dtype="int16")
            np.testing.assert_array_equal(batch["audio"][row].numpy(), ref[: batch["audio"].shape[1]])
    if mel:  # the device stage takes the batch as it comes
        cfg = shardkit.MelConfig.from_dict(ds.shard_set.mel)
        from shardkit.device import DevicePipeline

        out, _ = DevicePipeline(cfg).eval()(batch["mel"], mel_range=batch["mel_range"])
        assert out.shape == batch["mel"].shape and torch.isfinite(out).all()


def test_verify_names_a_damaged_npy_member(tmp_path):
    import shutil

    path = tmp_path / "mel"
    shutil.copytree(GOLDEN / "v2" / "mel-u8", path)
    ss = shardkit.ShardSet.open(path)
    key, offset = ss.keys[1], int(ss.payload_offset[1]) + 5
    ss.close()
    shard = path / "shard-00000.tar"
    raw = bytearray(shard.read_bytes())
    raw[offset] ^= 0xFF
    shard.write_bytes(bytes(raw))
    report = shardkit.verify(path)
    assert not report.ok
    assert any(p.key == key and f"{key}.npy" in p.what for p in report.problems), report.problems


def test_an_unknown_codec_is_refused_with_a_named_error(tmp_path):
    import shutil

    import msgpack
    import zstandard

    from shardkit.errors import ManifestError, ShardIndexError

    path = tmp_path / "mel"
    shutil.copytree(GOLDEN / "v2" / "mel-u8", path)
    idx = path / "shard-00000.index"
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(idx.read_bytes()))
    doc["codec"]["codec_id"] = "flac24"
    idx.write_bytes(zstandard.ZstdCompressor().compress(msgpack.packb(doc)))
    with pytest.raises(ShardIndexError, match=r"shard-00000\.index.*flac24.*upgrade shardkit"):
        shardkit.ShardSet.open(path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["audio"]["codec"] = "flac24"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="flac24"):
        shardkit.ShardSet.open(path)


LAYERED = sorted(GOLDEN.glob("v*/layers-*.json"))


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_label_layers_read(path):
    """Version 4 (tests/golden/make_v4.py): every layer's rows as written, and a samples layer's targets."""
    root = path.parent / path.stem[len("layers-"):]
    expected = json.loads(path.read_text())
    with shardkit.ShardSet.open(root) as ss:
        assert sorted(e.name for e in ss.manifest.layers) == sorted(expected)
        for name, exp in expected.items():
            layer = ss.read_layer(name)
            assert layer.classes == exp["classes"] and layer.findings() == []
            rows = layer.keys if layer.kind == "samples" else [
                f"{s}@{int(w)}" for k, s in enumerate(layer.sources)
                for w in layer.window[layer.source_ptr[k]:layer.source_ptr[k + 1]]]
            assert dict(zip(rows, layer.values.astype(float).tolist())) == exp["rows"]
    ds = shardkit.ShardDataset(root, targets="pseudo", batch_size=8, crop_seconds=0.25, shuffle=False)
    (batch,) = list(ds)
    assert ds.classes == ["amecro", "barswa", "newbird"]
    for key, targets in zip(batch["keys"], batch["targets"].tolist()):
        assert targets == expected["pseudo"]["rows"][key]


def test_golden_v4_types_its_columns_and_lists_its_rejects():
    path = GOLDEN / "v4" / "typed"
    m = Manifest.load(path)
    assert m.format_version == 4 and m.columns == {"count": "float", "rating": "float"}
    assert [r["file"] for r in m.rejects] == ["barswa/XC9.wav"] and m.reject_count == 1
    expected = _expected(path)
    for key, exp in expected.items():
        assert shardkit.read_sample(path, key).meta["extra"] == exp["extra"]
    assert shardkit.info(path).rejects and m.to_json() == (path / "manifest.json").read_bytes()


def test_golden_v4_list_columns_read_as_lists():
    """A list column (BirdCLEF's ``type``, docs/format.md §5.4): ``"list"`` in ``columns``, arrays of strings in
    ``extra``; a column with one cell that is no list literal (``note``) stays text."""
    path = GOLDEN / "v4" / "lists"
    m = Manifest.load(path)
    assert m.format_version == 4 and m.columns == {"note": "str", "type": "list"} and m.reject_count == 0
    expected = _expected(path)
    for key, exp in expected.items():
        assert shardkit.read_sample(path, key).meta["extra"] == exp["extra"]
    cols = shardkit.sample_columns(path)
    assert dict(zip(cols["key"], cols["type"])) == {k: tuple(e["extra"]["type"]) for k, e in expected.items()}
    assert m.to_json() == (path / "manifest.json").read_bytes()
