"""``shardkit kaggle wheelhouse``: wheels for a notebook without internet (code competitions).

A Kaggle image already has torch, torchaudio, numpy and the rest of the scientific stack: those are
never gathered (:data:`EXCLUDED`; a wheel of them would be gigabytes, and pip would replace the
image's CUDA build). What is gathered: shardkit's own wheel (built from its source tree, or downloaded
from PyPI for an installed copy) and, for the notebook's Python and platform, the wheels of its other
dependencies (:data:`DEPENDENCIES`, each without its own dependencies, so nothing excluded slips in).
The folder gets a ``dataset-metadata.json`` so that ``shardkit kaggle publish OUT`` (or ``kaggle
datasets create -p OUT``) makes it a dataset; in the notebook::

    pip install --no-index --find-links /kaggle/input/shardkit-wheels shardkit
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shardkit._version import __version__
from shardkit.errors import UsageError
from shardkit.files import make_folder
from shardkit.kaggle import rules
from shardkit.kaggle.layout import METADATA_NAME

log = logging.getLogger(__name__)

#: never gathered: a Kaggle image has them (pinned to its CUDA build)
EXCLUDED = ("torch", "torchaudio", "torchvision", "numpy", "scipy", "pandas", "nvidia-*", "triton")
#: shardkit's dependencies a Kaggle image may lack, with theirs (the [cli] extra's included), minus EXCLUDED
DEPENDENCIES = ("msgpack", "zstandard", "soundfile", "cffi", "pycparser", "soxr", "click", "rich",
                "markdown-it-py", "mdurl", "pygments")
DEFAULT_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")


@dataclass
class Wheelhouse:
    """What ``wheelhouse`` gathered."""

    folder: Path
    wheels: list[str] = field(default_factory=list)
    bytes: int = 0
    install: str = ""   #: the notebook's pip command


def wheelhouse(out: str | os.PathLike[str], *, python: str = "3.11", platforms: Sequence[str] = DEFAULT_PLATFORMS,
               dataset_id: str | None = None, deps: bool = True, source: str | os.PathLike[str] | None = None,
               timeout: float = 900.0) -> Wheelhouse:
    """Gather wheels into ``out``: shardkit's, then (``deps``) :data:`DEPENDENCIES` for ``python``
    (``"3.11"``) on ``platforms``; write ``dataset-metadata.json`` for ``dataset_id`` (default
    ``$KAGGLE_USERNAME/shardkit-wheels``). ``source``: shardkit's source tree (default: the one this
    package was imported from, when it has a ``pyproject.toml``; else shardkit is downloaded from PyPI).
    :class:`UsageError` when pip fails (its last line)."""
    folder = Path(out)
    make_folder(folder, "wheel folder")
    ref = dataset_id or f"{os.environ.get('KAGGLE_USERNAME') or 'OWNER'}/shardkit-wheels"
    owner, slug = rules.split_id(ref)
    tree = Path(source) if source is not None else Path(__file__).resolve().parents[2]
    if (tree / "pyproject.toml").is_file():
        _build_wheel(tree, folder, timeout)
    else:
        _pip(["download", "--no-deps", "--dest", str(folder), f"shardkit=={__version__}"], timeout)
    if deps:
        version = python.replace(".", "")
        args = ["download", "--no-deps", "--only-binary=:all:", "--dest", str(folder), "--python-version", python,
                "--implementation", "cp", "--abi", f"cp{version}", "--abi", "abi3", "--abi", "none"]
        for platform in platforms:
            args += ["--platform", platform]
        _pip([*args, "--platform", "any", *DEPENDENCIES], timeout)
    wheels = sorted(p.name for p in folder.glob("*.whl"))
    if len(wheels) > rules.MAX_FILES:
        raise UsageError(f"{folder}: {len(wheels)} wheels, more than the {rules.MAX_FILES} files a dataset takes")
    meta = {"id": f"{owner}/{slug}", "title": "shardkit wheels (offline install)", "licenses": [{"name": "apache-2.0"}],
            "subtitle": f"shardkit {__version__} and its dependencies for Python {python}",
            "description": "Wheels for `pip install --no-index --find-links /kaggle/input/" + slug + " shardkit` "
                           "in notebooks without internet. torch, torchaudio and numpy come from the Kaggle image."}
    (folder / METADATA_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = sum((folder / w).stat().st_size for w in wheels)
    return Wheelhouse(folder, wheels, size, f"pip install --no-index --find-links /kaggle/input/{slug} shardkit")


def _build_wheel(tree: Path, folder: Path, timeout: float) -> None:
    """``pip wheel`` of a copy of the source tree (the build leaves build/ and egg-info behind)."""
    with tempfile.TemporaryDirectory(prefix="shardkit-wheel-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md", "shardkit", "cli"):
            if (tree / name).is_dir():
                shutil.copytree(tree / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif (tree / name).is_file():
                shutil.copy2(tree / name, copy / name)
        _pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(folder.resolve()), str(copy)], timeout)


def _pip(args: list[str], timeout: float) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise UsageError(f"pip {args[0]} took over {timeout:.0f} s; check the network") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise UsageError(f"pip {args[0]} failed: {tail[0][:300]}")
