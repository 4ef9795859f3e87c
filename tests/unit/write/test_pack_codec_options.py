"""PackOptions for codec mel-u8: validated before any work, with messages that say what to change."""

from __future__ import annotations

import pytest

from shardkit import MelConfig, PackOptions
from shardkit.errors import UsageError


def test_mel_u8_defaults_to_the_default_front_end_at_the_pack_rate():
    opts = PackOptions(codec="mel-u8", sample_rate=22050, shard_size="1MB")
    assert opts.mel == MelConfig(sample_rate=22050, f_max=11025.0)
    assert MelConfig.for_rate(32000) == MelConfig() and MelConfig.for_rate(16000, n_mels=40).f_max == 8000.0
    cfg = opts.codec_config()
    assert cfg["codec_id"] == "mel-u8" and cfg["header_bytes"] == 128 and cfg["n_mels"] == opts.mel.n_mels
    audio = opts.audio_doc()
    assert audio["codec"] == "mel-u8" and audio["mel"] == opts.mel.to_dict() and audio["sample_width"] == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"codec": "mel-u8", "channels": 2}, "mono"),
    ({"codec": "wav16", "mel": MelConfig()}, "mel-u8"),
    ({"codec": "mel-u8", "mel": MelConfig(sample_rate=16000, f_max=8000.0)}, "16000 Hz"),
    ({"codec": "mel-u8", "mel": MelConfig(normalize="per_example")}, "normalise on the device"),
    ({"codec": "flac"}, "codec"),
])
def test_bad_combinations_are_refused(kwargs, match):
    with pytest.raises(UsageError, match=match):
        PackOptions(**kwargs)
