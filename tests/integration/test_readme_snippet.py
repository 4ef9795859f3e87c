"""The README's training snippet runs as written on a machine without CUDA (issue 22 item 23: it used
``.to("cuda")``), on a real packed set; and the Kaggle training example installs shardkit the way that
works in a notebook (its wheel dataset: shardkit is not on PyPI)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _training_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if "DevicePipeline" in b and "for batch in loader" in b)


def test_the_readme_training_snippet_runs_on_cpu(packed, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    code = _training_snippet()
    assert ".to(\"cuda\"" not in code and ".cuda()" not in code
    code = (code.replace('"shards/"', repr(str(packed))).replace("batch_size=64", "batch_size=4")
            .replace("range(3)", "range(1)").replace("num_workers=2", "num_workers=0")
            .replace("        ...", "        seen.append((x.shape, y.shape, x.device.type))"))
    scope: dict = {"seen": []}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["seen"] and all(device == "cpu" for _, _, device in scope["seen"])


def test_the_kaggle_training_example_installs_from_the_wheel_dataset():
    doc = (ROOT / "examples" / "kaggle" / "train.py").read_text()
    pips = [line.strip() for line in doc.splitlines() if "pip install" in line]
    assert pips and all("--no-index --find-links /kaggle/input/" in p for p in pips), pips
    assert "shardkit kaggle wheelhouse" in doc

