"""The label layer document and the version-4 manifest (docs/format.md §5.3)."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkit.errors import FormatError, ManifestError
from shardkit.format import Manifest
from shardkit.format.layers import Layer, LayerEntry, layer_file, layer_findings


def _samples_layer(n=3, classes=("a", "b")):
    values = np.linspace(0, 1, n * len(classes)).reshape(n, len(classes)).astype(np.float16)
    return Layer(name="pseudo", kind="samples", classes=list(classes), values=values,
                 keys=[f"k{i:02d}" for i in range(n)])


def _windows_layer():
    return Layer(name="w5", kind="windows", classes=["a"], values=np.array([[0.1], [0.2], [0.3]], np.float16),
                 sources=["s1.ogg", "s2.ogg"], source_ptr=np.array([0, 2, 3]), window=np.array([0, 3, 1]),
                 window_seconds=5.0, hop_seconds=5.0)


@pytest.mark.parametrize("make", [_samples_layer, _windows_layer])
def test_a_layer_round_trips_byte_for_byte(make):
    layer = make()
    data = layer.to_bytes()
    back = Layer.from_bytes(data, "x.layer")
    assert back.to_bytes() == data
    np.testing.assert_array_equal(back.values, layer.values)
    assert back.findings() == []
    entry = layer.entry(data)
    assert LayerEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
    assert layer_findings(data, entry, {"k00", "k01", "k02"}, {"s1.ogg", "s2.ogg"}, "x") == []


@given(st.integers(0, 200), st.integers(0, 2))
def test_a_flipped_byte_is_never_a_silent_change(pos, bit):
    data = bytearray(_samples_layer().to_bytes())
    pos %= len(data)
    data[pos] ^= 1 << bit
    entry = _samples_layer().entry(_samples_layer().to_bytes())
    found = layer_findings(bytes(data), entry, {"k00", "k01", "k02"}, set(), "x")
    assert any("sha256" in f for f in found)


def test_findings_name_bad_values_and_stray_rows():
    layer = _samples_layer()
    layer.values = layer.values.copy()
    layer.values[1, 0] = np.float16(1.5)
    data = layer.to_bytes()
    found = layer_findings(data, layer.entry(data), {"k00", "k01"}, set(), "x")
    assert any("row 1, class 'a'" in f for f in found)
    assert any("name no sample" in f and "'k02'" in f for f in found)


def test_garbage_is_a_format_error():
    with pytest.raises(FormatError, match=r"x\.layer: not a readable layer file"):
        Layer.from_bytes(b"nope", "x.layer")


@pytest.mark.parametrize("change, what", [
    ({"file": "../etc/passwd"}, "'file' must be"),
    ({"name": "a b"}, "layer name"),
    ({"kind": "frames"}, "kind"),
    ({"window_seconds": 5.0, "hop_seconds": 5.0}, "a samples layer neither"),
    ({"bytes": -1}, "count"),
])
def test_manifest_refuses_bad_layer_entries(tmp_path, change, what):
    doc = _v4_doc()
    doc["layers"][0].update(change)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=what):
        Manifest.load(tmp_path)


def _v4_doc():
    entry = _samples_layer().entry(_samples_layer().to_bytes()).to_dict()
    return {"format": "shardkit.manifest", "format_version": 4, "version_id": "sk1-x", "audio": {"codec": "wav16",
            "sample_rate": 16000, "channels": 1, "sample_width": 2}, "layout": {"mode": "recordings"},
            "vocabulary": [], "shards": [], "totals": {}, "parent": "sk1-p", "history": [], "overrides": {},
            "vocabularies": {}, "sources": {}, "layers": [entry]}


def test_v4_manifest_round_trips_and_its_id_covers_layers(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_v4_doc()))
    m = Manifest.load(tmp_path)
    assert m.layers[0].file == layer_file("pseudo")
    assert json.loads(m.to_json())["layers"] == _v4_doc()["layers"]
    without = Manifest.from_json(json.dumps({**_v4_doc(), "layers": [], "format_version": 3}).encode())
    assert m.content_id() != without.content_id()
    plain = Manifest.from_json(json.dumps({k: v for k, v in _v4_doc().items() if k not in (
        "layers", "parent", "history", "overrides", "vocabularies", "sources")} | {"format_version": 2}).encode())
    assert without.content_id() == plain.content_id()  # no layers: the id of the layer-free content


def test_a_decompression_bomb_is_refused():
    import msgpack
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(msgpack.packb({"format": "shardkit.layer", "pad": b"\0" * (80 << 20)}))
    assert len(bomb) < 100_000
    with pytest.raises(FormatError, match="decompression bomb"):
        Layer.from_bytes(bomb, "bomb.layer")
