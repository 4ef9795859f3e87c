import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import shardkit


def test_exported_names():
    assert set(shardkit.__all__) == {
        "FORMAT_VERSION", "ShardkitError", "__version__", "MelConfig", "PackOptions", "PackProgress",
        "PackResult", "ShardDataset", "ShardSet", "ShardSetWriter", "extract_sample", "info", "list_samples",
        "pack", "plan_split", "read_sample", "show_sample", "verify", "reindex",
        # the device stage (imports torch on first use)
        "DevicePipeline", "AugmentConfig",
        # dataset versions (docs/versions.md)
        "update", "compact", "history", "diff", "UpdateResult", "CompactResult", "DiffReport",
        # label layers (docs/labels.md)
        "add_labels", "remove_labels", "list_labels", "LabelsResult",
        # training recipes (docs/recipes.md)
        "Mixture", "sample_columns", "folds", "write_folds", "load_folds", "Fold",
        # result types
        "ShardSetInfo", "SampleEntry", "Sample", "SplitPlan", "VerifyReport", "VerifyProblem", "ReindexResult",
        # the whole exception tree
        "BudgetExceededError", "DecodeError", "FormatError", "IntegrityError", "ManifestError", "MetadataError",
        "OutputConflictError", "PackError", "SampleNotFoundError", "ShardIndexError", "ShardReadError",
        "SourceError", "StorageError", "UnknownCodecError", "UnsafeFileError", "UnsupportedVersionError", "UsageError",
    }
    assert shardkit.__all__ == sorted(shardkit.__all__)
    for name in shardkit.__all__:
        assert getattr(shardkit, name) is not None


def test_extension_and_format_types_live_in_their_packages():
    import shardkit.device
    import shardkit.encode
    import shardkit.format

    for module, names in ((shardkit.encode, ("Codec", "Wav16", "MelU8", "get_codec", "codec_ids")),
                          (shardkit.format, ("Manifest", "ShardEntry", "ShardIndex")), (shardkit.device, ("LogMel",))):
        assert set(names) <= set(module.__all__)
        assert not set(names) & set(shardkit.__all__)


def test_every_exception_of_the_tree_is_exported():
    import shardkit.errors as errors

    tree = {n for n in dir(errors) if isinstance(getattr(errors, n), type)
            and issubclass(getattr(errors, n), errors.ShardkitError) and not n.endswith("_")}
    assert tree <= set(shardkit.__all__)


def test_import_is_light_and_needs_no_cli_extras():
    # importing the package, the pack side, the synthesis and the demo must not pull in torch, click or rich
    code = ("import sys, shardkit, shardkit.write.pack, shardkit.check.verify, shardkit.synth, shardkit.demo;"
            "bad=[m for m in ('torch','click','rich') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_library_works_without_cli_extras():
    # as after `pip install shardkit` without [cli]: every exported name still resolves
    code = ("import sys; sys.modules['click'] = sys.modules['rich'] = None\n"
            "import shardkit\n"
            "for name in shardkit.__all__: getattr(shardkit, name)\n"
            "assert shardkit.pack.__module__ == 'shardkit.write.pack'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _installed_from_this_checkout(dist: importlib.metadata.Distribution) -> bool:
    here = Path(shardkit.__file__).resolve().parent
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):  # pip install -e DIR
        return Path(unquote(urlparse(direct["url"]).path)).resolve() == here.parent
    return Path(str(dist.locate_file("shardkit/__init__.py"))).resolve().parent == here


def test_version_is_the_installed_metadata_version():
    # pyproject.toml reads the version from shardkit/_version.py, so the two cannot drift
    try:
        dist = importlib.metadata.distribution("shardkit")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("shardkit is not installed (pip install -e '.[test]')")
    if not _installed_from_this_checkout(dist):
        pytest.skip(f"the installed shardkit is another copy ({dist.read_text('direct_url.json')})")
    assert dist.version == shardkit.__version__
