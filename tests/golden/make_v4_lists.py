"""How tests/golden/v4/lists was made (run once, by hand, when list columns joined format version 4; never again).

    python tests/golden/make_v4_lists.py

``lists``: three synthetic 16-bit WAV sources packed (wav16 recordings) from a CSV whose ``type`` column holds
BirdCLEF-style list literals (``"['call', 'flight call']"``, ``'["song"]'``, ``"[]"``) and whose ``note`` holds
one that is not (``"['song'"``): a version-4 manifest with ``columns`` (``type``: list, ``note``: str) and no
rejects (``rejects_file`` null). Shards and indexes are version 2, as a plain pack writes them.
``expected-lists.json`` holds the sha256 of each sample's data member, its label and its ``extra``.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_v4_typed import pack_and_record, write_tone  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(5)
    rows = []
    for rel, label, seconds, freq, kind, note in [
            ("amecro/XC1.wav", "amecro", 0.6, 700, "['call', 'flight call']", "['song'"),
            ("barswa/XC2.wav", "barswa", 0.5, 900, '["song"]', "dawn"),
            ("barswa/XC3.wav", "barswa", 0.4, 1100, "[]", "")]:
        write_tone(work / "audio" / rel, seconds, freq, rng)
        rows.append({"filename": rel, "primary_label": label, "secondary_labels": "[]", "type": kind, "note": note})
    with open(work / "train.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pack_and_record(work, "lists")


if __name__ == "__main__":
    main()
