"""The built-in demo: a small synthetic BirdCLEF-shaped corpus, and pack → stream → log-mel end to end.

* :func:`plan_demo_corpus`, :func:`make_demo_corpus` (in :mod:`shardkit.demo.corpus`) — what the corpus
  holds, and writing it: ``train_audio/<label>/XC<id>.<ext>`` + ``train_metadata.csv``.
* :func:`run_demo` (in :mod:`shardkit.demo.run`) — makes the corpus, packs it, streams it through a
  DataLoader and the device stage, and returns a :class:`DemoReport` of sizes and speeds.
* :func:`synth_recording` — re-exported from :mod:`shardkit.synth`, where the audio is made.

The audio is synthetic (no recordings are shipped or downloaded); the same seed writes the same bytes.
torch and the pack/read stages are imported only by :func:`run_demo`.
"""

from __future__ import annotations

from shardkit.demo.corpus import (
    CSV_COLUMNS,
    SPECIES,
    DemoFile,
    label_names,
    make_demo_corpus,
    plan_demo_corpus,
    read_demo_metadata,
)
from shardkit.demo.run import DemoReport, default_workdir, run_demo
from shardkit.synth import synth_recording

__all__ = [
    "CSV_COLUMNS",
    "SPECIES",
    "DemoFile",
    "DemoReport",
    "default_workdir",
    "label_names",
    "make_demo_corpus",
    "plan_demo_corpus",
    "read_demo_metadata",
    "run_demo",
    "synth_recording",
]
