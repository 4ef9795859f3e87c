"""The notebook side: find a published shard set among a Kaggle notebook's read-only inputs.

Kaggle mounts an attached dataset at ``/kaggle/input/<slug>/`` or, in newer images,
``/kaggle/input/datasets/<owner>/<slug>/`` (kagglehub: ``$KAGGLE_CACHE_MOUNT_FOLDER``, default
``/kaggle/input``, + a mount slug). :func:`locate` looks in both, reads nothing but names, writes
nothing, and also lists every attached input that holds a shard set (:attr:`KaggleInput.search_path`):
where a derived set's parent shards are found (by sha256) once sets can reference a parent's shards.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from shardkit import format as fmt
from shardkit.errors import ManifestError, UsageError
from shardkit.kaggle import rules

#: the environment variable kagglehub reads for the input mount folder
INPUT_ROOT_ENV = "KAGGLE_CACHE_MOUNT_FOLDER"
DEFAULT_INPUT_ROOT = "/kaggle/input"
#: the persistent, writable working folder of a notebook (20 GB kept between sessions)
WORKING = "/kaggle/working"
SCHEME = "kaggle://"


@dataclass
class KaggleInput:
    """A shard set found among the notebook's inputs."""

    ref: str                 #: OWNER/SLUG asked for
    path: Path               #: the set's folder (read-only)
    layout: str              #: "datasets/OWNER/SLUG" or "SLUG": which mount layout it was found under
    #: every attached input folder holding a manifest.json, this set's first (for parent shards)
    search_path: list[Path] = field(default_factory=list)
    #: a writable folder for anything a reader keeps (never next to the shards)
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "shardkit")


def resolve_input_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$KAGGLE_CACHE_MOUNT_FOLDER``, else ``/kaggle/input``."""
    return Path(root if root is not None else os.environ.get(INPUT_ROOT_ENV) or DEFAULT_INPUT_ROOT)


def locate(dataset: str, input_root: str | os.PathLike[str] | None = None) -> KaggleInput:
    """Find ``OWNER/SLUG`` (or ``kaggle://OWNER/SLUG``) under the notebook's input folder.

    Looks at ``ROOT/datasets/OWNER/SLUG`` then ``ROOT/SLUG`` (and one folder below each, for a mount
    that keeps the upload's folder). Raises :class:`ManifestError` naming the folders looked at and
    what to attach when none holds the set's ``manifest.json``, or when a shard arrived as a folder
    (Kaggle unpacked it)."""
    ref = dataset[len(SCHEME):] if dataset.startswith(SCHEME) else dataset
    owner, slug = rules.split_id(ref.strip("/"))
    root = resolve_input_root(input_root)
    tried = []
    for layout, base in ((f"datasets/{owner}/{slug}", root / "datasets" / owner / slug), (slug, root / slug)):
        tried.append(base)
        found = _manifest_folder(base)
        if found is not None:
            _check_not_unpacked(found)
            return KaggleInput(f"{owner}/{slug}", found, layout, _search_path(root, found), cache_dir())
    raise ManifestError(f"{owner}/{slug}: no shard set at {' or '.join(map(str, tried))}; attach the dataset to "
                        "the notebook (Add Input) and check the id")


def resolve_location(location: str) -> tuple[Path, list[Path]]:
    """The resolver of ``kaggle://`` (:func:`shardkit.storage.location.register_scheme`; ``ShardDataset`` /
    ``ShardSet.open``): the set's folder among the notebook's inputs, and every other attached input
    holding a shard set (where a delta dataset's parents are found)."""
    found = locate(location)
    return found.path, found.search_path[1:]


def missing_parent_hint(root: Path, origin: str) -> str | None:
    """What to do when a shard of version ``origin`` of the derived set in ``root`` is not found: attach
    its dataset, when ``root`` is among the notebook's inputs (:func:`shardkit.read.lineage.register_hint`)."""
    try:
        inside = Path(os.path.abspath(root)).is_relative_to(os.path.abspath(resolve_input_root()))
    except (OSError, ValueError):
        return None
    if not inside:
        return None
    return (f"attach the Kaggle dataset holding version {origin} to the notebook (Add Input; the delta "
            "dataset's description names it) and open the set again")


def cache_dir() -> Path:
    """``/kaggle/working/.shardkit-cache`` when that folder is writable, else a temp folder."""
    working = Path(WORKING)
    if working.is_dir() and os.access(working, os.W_OK):
        return working / ".shardkit-cache"
    return Path(tempfile.gettempdir()) / "shardkit"


def _manifest_folder(base: Path) -> Path | None:
    if (base / fmt.MANIFEST_NAME).is_file():
        return base
    if not base.is_dir():
        return None
    below = sorted(p for p in base.iterdir() if p.is_dir() and (p / fmt.MANIFEST_NAME).is_file())
    if len(below) > 1:
        raise UsageError(f"{base}: holds shard sets in {', '.join(p.name for p in below)}; pass the one to read "
                         "as a folder path")
    return below[0] if below else None


def _check_not_unpacked(folder: Path) -> None:
    """A shard that arrived as a folder was unpacked by Kaggle: every offset would be wrong."""
    manifest = fmt.Manifest.load(folder)
    for e in manifest.shards:
        if (folder / e.name).is_dir():
            raise ManifestError(f"{folder / e.name}: arrived as a folder (Kaggle unpacked it); publish with "
                                "'shardkit kaggle prepare', which names shards .shard so they stay one file")


def _search_path(root: Path, first: Path) -> list[Path]:
    """Every attached input folder holding a shard set: ``first``, then the others by name."""
    found: list[Path] = []
    bases = [root] + ([p for p in sorted((root / "datasets").iterdir()) if p.is_dir()]
                      if (root / "datasets").is_dir() else [])
    for base in bases:
        for child in sorted(base.iterdir()) if base.is_dir() else []:
            if child.name == "datasets" and base == root:
                continue
            folder = _quiet_manifest_folder(child)
            if folder is not None and folder != first:
                found.append(folder)
    return [first, *found]


def _quiet_manifest_folder(base: Path) -> Path | None:
    try:
        return _manifest_folder(base)
    except (UsageError, OSError):
        return None
