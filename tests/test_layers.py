"""Imports only point down the layers of docs/architecture.md, and torch stays in the torch layers.

Every module of ``shardkit/`` is parsed (nothing is imported) and every ``import`` in it is checked: at
the top of the module, inside functions and methods (lazy imports), and under ``if TYPE_CHECKING:`` — a
type-only import of a higher layer is still a dependency on that layer's names, so it is not exempt.
A module may import its own layer and any lower one; ``shardkit/__init__.py`` (the public façade) may
import anything. Loading a module by a string (``importlib.import_module``, the scheme table of
:mod:`shardkit.storage.location`) is how a higher layer plugs into a lower one, and is not an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shardkit"

#: lowest first; a module may import only from its own layer or one before it
LAYERS = ("kernel", "storage", "encode", "format", "ingest", "write", "read", "dataset", "device", "check",
          "versions", "kaggle", "demo")
#: top-level modules of the kernel (no shardkit imports but each other)
KERNEL = ("errors", "units", "files", "_version", "synth")
#: top-level public façades, above every layer like the package itself: ``shardkit.labels`` (label layers'
#: add/rm/ls from versions/ and the BirdCLEF row_ids of a batch, in one place, as issue 21 names them)
FACADES = ("labels",)
#: layers that may import torch at module level
TORCH_LAYERS = ("dataset", "device", "demo")
TORCH = ("torch", "torchaudio")

#: the accepted upward edges, each lazy (inside a function), with why:
#: - the mel-u8 codec computes its spectrogram with the device stage's LogMel, so that packing and the
#:   device stage give the same mel for the same audio (and torch loads only when packing mel-u8);
#: - ``show_sample`` draws the log-mel of a sample with the same front end training uses.
ALLOWED_UP = {
    ("shardkit.encode.mel_u8", "shardkit.device.frontend"),
    ("shardkit.read.show", "shardkit.device.frontend"),
}
#: modules outside TORCH_LAYERS that may import torch, lazily (the same two reasons)
ALLOWED_TORCH = ("shardkit.encode.mel_u8", "shardkit.read.show")


def layer_of(module: str) -> str:
    """The layer of a ``shardkit`` module name (``"api"`` for the package itself, above every layer)."""
    parts = module.split(".")
    if parts == ["shardkit"] or (len(parts) == 2 and parts[1] in FACADES):
        return "api"
    if parts[1] in KERNEL:
        return "kernel"
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in a layer; add its package to LAYERS in tests/test_layers.py")
    return parts[1]


def rank(layer: str) -> int:
    return len(LAYERS) if layer == "api" else LAYERS.index(layer)


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """``(imported module, line, lazy)`` for every import in ``tree`` (relative ones resolved)."""
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")[: len(module.split(".")) - child.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                if base == "shardkit":  # `from shardkit import format`: the subpackage; `__version__`: the root
                    out.extend((f"shardkit.{a.name}" if (PACKAGE / a.name).exists()
                                or (PACKAGE / f"{a.name}.py").exists() else "shardkit", child.lineno, lazy)
                               for a in child.names)
                else:
                    out.append((base, child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return out


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every import of ``module`` (its ``source``) that breaks the layer order or the torch rule."""
    here = layer_of(module)
    found = []
    for target, line, lazy in _imports(ast.parse(source), module, is_package):
        top = target.split(".")[0]
        if top in TORCH and here not in TORCH_LAYERS and here != "api" and not (
                module in ALLOWED_TORCH and lazy):
            found.append(f"{module}:{line}: imports {target} outside the torch layers {TORCH_LAYERS}")
        if top != "shardkit":
            continue
        there = layer_of(target)
        edge = (module, ".".join(target.split(".")[:3]))
        if rank(there) > rank(here) and not (edge in ALLOWED_UP and lazy):
            found.append(f"{module}:{line}: imports {target} ({there}), a layer above {here}")
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def test_imports_point_down() -> None:
    found = [v for module, path in _modules()
             for v in violations(module, path.read_text(), path.name == "__init__.py")]
    assert not found, "upward imports (see docs/architecture.md):\n" + "\n".join(found)


def test_every_package_is_in_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS) - {"kernel"}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(KERNEL) | set(FACADES)


@pytest.mark.parametrize(("module", "source"), [
    ("shardkit.read.shardset", "from shardkit.kaggle.notebook import locate\n"),
    ("shardkit.read.shardset", "def open_it():\n    from shardkit.versions import update\n"),
    ("shardkit.format.index", "if True:\n    import shardkit.read.shardset\n"),
    ("shardkit.storage.local", "from shardkit import format as fmt\n"),
    ("shardkit.write.dask_engine", "def f():\n    from shardkit import __version__\n"),
    ("shardkit.write.pack", "from ..read import lineage\n"),
    ("shardkit.read.browse", "import torch\n"),
    ("shardkit.format.manifest", "def f():\n    import torchaudio\n"),
    ("shardkit.encode.mel_u8", "from shardkit.device.frontend import LogMel\n"),  # allowed only lazily
    ("shardkit.encode.mel_u8", "import torch\n"),
    ("shardkit.read.show", "def f():\n    from shardkit.dataset.dataset import ShardDataset\n"),
])
def test_checker_fails_on_an_upward_import(module: str, source: str) -> None:
    assert violations(module, source), f"{module}: {source!r} should be refused"


@pytest.mark.parametrize(("module", "source"), [
    ("shardkit.read.shardset", "from shardkit.storage.local import LocalStorage\n"),
    ("shardkit.versions.update", "def f():\n    from shardkit.write.pack import pack\n"),
    ("shardkit.encode.mel_u8", "def f():\n    import torch\n    from shardkit.device.frontend import LogMel\n"),
    ("shardkit.dataset.assemble.reader", "import torch\n"),
    ("shardkit", "from shardkit.demo import run_demo\n"),
    ("shardkit.check.verify", "from . import tarscan\n"),
])
def test_checker_accepts_downward_imports(module: str, source: str) -> None:
    assert not violations(module, source)
