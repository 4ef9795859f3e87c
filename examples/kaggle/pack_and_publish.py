"""Pack a large audio collection inside a Kaggle notebook and publish it as a dataset (version) — the
"very large datasets from a notebook" flow: stage the shards in the notebook's scratch disk under a
budget, lay them out for Kaggle (hard links: no second copy), upload with the kaggle client.

In a notebook with internet on and the Kaggle API key as secrets KAGGLE_USERNAME / KAGGLE_KEY::

    !pip install 'shardkit[kaggle]'
    !python pack_and_publish.py /kaggle/input/birdclef-2025 --metadata /kaggle/input/birdclef-2025/train.csv \\
        --id OWNER/birdclef-2025-wav16 --title "BirdCLEF 2025 wav16 shards" --budget 90GB

The shard size is chosen so that the set stays within Kaggle's 50 top-level files (at most 24 shards:
each has an index). ``/kaggle/working`` keeps only 20 GB between sessions; ``--scratch`` (default
``/kaggle/tmp``) is the larger disk that is not kept — publishing is what keeps the shards.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import shardkit
import shardkit.encode
import shardkit.kaggle
from shardkit.units import format_size, parse_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="folder of the audio (or the competition folder holding train_audio/)")
    ap.add_argument("--metadata", type=Path, help="train_metadata.csv / train.csv")
    ap.add_argument("--id", required=True, help="OWNER/SLUG of the dataset")
    ap.add_argument("--title", required=True)
    ap.add_argument("--license", default="CC-BY-NC-SA-4.0", help="the recordings' license (BirdCLEF: CC BY-NC-SA)")
    ap.add_argument("--scratch", type=Path, default=Path("/kaggle/tmp"), help="staging disk (not kept)")
    ap.add_argument("--budget", default="90GB", help="stop packing before the shards take more than this")
    ap.add_argument("--sample-rate", type=int, default=32000)
    ap.add_argument("--format", default="wav16", choices=shardkit.encode.codec_ids())
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--notes", default=None, help="version notes [the version id and totals]")
    ap.add_argument("--dry-run", action="store_true", help="pack and lay out, but do not upload")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    budget = parse_size(args.budget, name="budget")
    most = (shardkit.kaggle.MAX_FILES - 1) // 2          # manifest + (shard + index) per shard
    shard_size = max(64_000_000, -(-budget // most))      # so that a full budget makes at most `most` shards
    shards = args.scratch / "shards"
    options = shardkit.PackOptions(sample_rate=args.sample_rate, shard_size=shard_size, codec=args.format)
    r = shardkit.pack(args.src, shards, metadata=args.metadata, options=options, budget=budget,
                      workers=args.workers)
    print(f"packed {r.samples} samples, {r.hours:.2f} h, {r.shards} shards, {format_size(r.bytes)}"
          + ("" if r.complete else " (budget reached: a subset)"))
    plan = shardkit.kaggle.prepare(shards, args.id, args.title, args.license, out=args.scratch / "upload")
    print(f"upload folder {plan.folder}: {len(plan.files)} files, {format_size(plan.total_bytes)} "
          f"({plan.linked} shards hard-linked, {plan.copied} copied)")
    if args.dry_run:
        return
    result = shardkit.kaggle.publish(plan.folder, args.notes,
                                     progress=lambda event, info: print(f"{event}: {info}", flush=True))
    print(f"{'created' if result.new else 'new version of'} {result.ref}: {result.url}")


if __name__ == "__main__":
    main()
