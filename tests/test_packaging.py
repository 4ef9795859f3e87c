"""The wheel holds every package: pyproject lists packages by name, so a new subpackage that is not
listed works in an editable install and is missing from ``pip install .`` (and from a Kaggle wheelhouse)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "shardkit").rglob("__init__.py")}
    found.add("shardkit_cli")
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
