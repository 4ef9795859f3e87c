import os
import tempfile
from pathlib import Path

import pytest
from audio_factory import make_corpus
from hypothesis import HealthCheck, settings

# CI machines have 2 busy cores: no per-example deadlines; a moderate number of examples.
settings.register_profile("shardkit", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shardkit")

# shardkit's user cache (parent-shard hashes of derived sets) goes to a temp folder, never the user's
# ~/.cache; subprocesses started by tests inherit it
os.environ.setdefault("SHARDKIT_CACHE_DIR", tempfile.mkdtemp(prefix="shardkit-test-cache-"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """(audio folder, metadata CSV) of 12 short ogg recordings, 3 labels, mono and stereo."""
    root = tmp_path_factory.mktemp("corpus")
    csv_path = make_corpus(root)
    return root / "audio", csv_path


@pytest.fixture(scope="session")
def packed(corpus, tmp_path_factory) -> Path:
    """The corpus packed in recordings mode at 32 kHz (small shards so there are several)."""
    from shardkit import PackOptions, pack

    out = tmp_path_factory.mktemp("packed") / "shards"
    pack(corpus[0], out, metadata=corpus[1], options=PackOptions(shard_size="300KB"))
    return out
