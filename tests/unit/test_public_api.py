import subprocess
import sys

import shardkit


def test_exported_names():
    assert set(shardkit.__all__) == {
        "FORMAT_VERSION", "ShardkitError", "__version__", "LogMel", "MelConfig", "PackOptions", "PackProgress",
        "PackResult", "ShardDataset", "ShardSet", "info", "list_samples", "pack", "plan_split", "read_sample",
        "verify",
    }
    for name in shardkit.__all__:
        assert getattr(shardkit, name) is not None


def test_import_is_light_and_needs_no_cli_extras():
    # importing the package, the pack side, the synthesis and the demo must not pull in torch, click or rich
    code = ("import sys, shardkit, shardkit.write.pack, shardkit.versions.verify, shardkit.synth, shardkit.demo;"
            "bad=[m for m in ('torch','click','rich') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
