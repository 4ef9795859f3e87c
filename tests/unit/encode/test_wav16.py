import io

import numpy as np
import pytest
import soundfile as sf

from shardkit.encode import meta, wav16
from shardkit.errors import FormatError


@pytest.mark.parametrize("channels", [1, 2])
def test_wav16_is_standard_and_round_trips(channels):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32767, size=(1000, channels), dtype=np.int16)
    data = wav16.encode(pcm if channels > 1 else pcm[:, 0], 22050)
    back, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    assert rate == 22050 and np.array_equal(back, pcm)
    mine, rate2 = wav16.decode(data)
    assert rate2 == 22050 and np.array_equal(mine, pcm)
    assert wav16.parse_header(data[:44]) == (1000, 22050, channels)


def test_bad_header():
    with pytest.raises(FormatError):
        wav16.parse_header(b"RIFX" + b"\0" * 40)
    with pytest.raises(FormatError):
        wav16.parse_header(b"short")


def test_meta_is_canonical():
    assert meta.encode({"b": 1, "a": {"d": 2, "c": 3}}) == meta.encode({"a": {"c": 3, "d": 2}, "b": 1})
    assert meta.decode(meta.encode({"a": [1, None, "x"]})) == {"a": [1, None, "x"]}
    with pytest.raises(FormatError):
        meta.decode(b"\xc1")
