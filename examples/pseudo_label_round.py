"""One pseudo-labelling round, the way BirdCLEF winners train: teacher → predict every 5 s window of the
unlabelled soundscapes → a label layer → student trains on the soft targets. No audio is re-packed.

    python examples/pseudo_label_round.py [WORKDIR] [--files 24] [--epochs 2]

1. the demo corpus (``shardkit.demo``, real Ogg/FLAC/MP3/WAV files) is packed as the labelled training set,
   and a flat folder of some of its recordings, without labels, as the "soundscapes" set;
2. a teacher (``birdclef_train.TinyCNN``) trains on the labelled set;
3. it predicts every 5 s window of every soundscape (``crops="grid"``, in order, ``source``/``start_seconds``
   per row; ``shardkit.labels.row_ids`` names them as a BirdCLEF submission would);
4. ``shardkit.add_labels`` writes the predictions as the layer ``pl`` of a new version of the soundscapes
   set (its shards referenced, not copied);
5. a student trains on ``batch["targets"]`` of random 5 s crops (each the overlap-weighted mean of the
   windows it covers), its loss masked by ``batch["targets_mask"]``.

Runs on CPU in about a minute with the defaults.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
from birdclef_train import TinyCNN, loader, run_epoch
from torch import nn

import shardkit
import shardkit.labels
from shardkit.demo import make_demo_corpus
from shardkit.device import DevicePipeline


def make_sets(work: Path, files: int, workers: int) -> tuple[Path, Path]:
    """(labelled set, unlabelled soundscapes set) packed from the demo corpus."""
    csv_path = make_demo_corpus(work / "corpus", n_files=files)
    scapes = work / "soundscapes-audio"
    scapes.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(sorted((work / "corpus" / "train_audio").rglob("*.*"))):
        if n % 3 == 0:  # a third of the recordings, in a flat folder: no labels
            shutil.copyfile(path, scapes / f"SC{n:03d}_{path.name}")
    opts = shardkit.PackOptions(sample_rate=32000, shard_size="16MB")
    for src, out, meta in ((work / "corpus" / "train_audio", work / "train", csv_path),
                           (scapes, work / "sets" / "soundscapes", None)):
        shardkit.pack(src, out, metadata=meta, options=opts, workers=workers)
    return work / "train", work / "sets" / "soundscapes"


@torch.no_grad()
def predict(model: nn.Module, frontend: DevicePipeline, shards: Path, classes: list[str], workers: int
            ) -> dict[str, list]:
    """Every 5 s window of every recording of ``shards``: {"source", "start_seconds", "row_id", "probs"}."""
    model.eval()
    frontend.eval()
    ds = shardkit.ShardDataset(shards, crop_seconds=5.0, crops="grid", shuffle=False, batch_size=16,
                               classes=classes)
    out: dict[str, list] = {"source": [], "start_seconds": [], "row_id": [], "probs": []}
    for batch in loader(ds, workers, torch.device("cpu")):
        mel, _ = frontend.batch(batch)
        keep = batch["valid"].tolist()
        probs = torch.sigmoid(model(mel))
        for k, name in (("source", "source"), ("start_seconds", "start_seconds")):
            out[k] += [v for v, ok in zip(list(batch[name]) if k == "source" else batch[name].tolist(), keep) if ok]
        out["row_id"] += [r for r, ok in zip(shardkit.labels.row_ids(batch), keep) if ok]
        out["probs"] += probs[batch["valid"]].tolist()
    return out


def train_student(shards: Path, classes: list[str], frontend: DevicePipeline, epochs: int, workers: int) -> None:
    """A fresh model on the layer's soft targets of random 5 s crops."""
    ds = shardkit.ShardDataset(shards, targets="pl", classes=classes, crop_seconds=5.0, batch_size=8, seed=1)
    model = TinyCNN(len(classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    batches = loader(ds, workers, torch.device("cpu"))
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        model.train()
        frontend.train()
        total, clips, t0 = 0.0, 0, time.perf_counter()
        for batch in batches:
            mel, targets = frontend.batch({**batch, "labels": batch["targets"]})  # augmented with the soft targets
            weight = (batch["targets_mask"] & batch["valid"]).float()   # rows with a prediction under them
            loss = (loss_fn(model(mel), targets).mean(dim=1) * weight).sum() / weight.sum().clamp(min=1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * int(weight.sum())
            clips += int(weight.sum())
        print(f"student epoch {epoch}: soft-target loss {total / max(clips, 1):.4f} on {clips} crops "
              f"({time.perf_counter() - t0:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", default="pseudo-label-demo")
    parser.add_argument("--files", type=int, default=24, help="demo recordings to make")
    parser.add_argument("--epochs", type=int, default=2, help="teacher and student epochs")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(args.workdir)
    train, scapes = make_sets(work, args.files, args.workers)

    teacher_ds = shardkit.ShardDataset(train, crop_seconds=5.0, batch_size=8, seed=0)
    classes = list(teacher_ds.classes)
    frontend = DevicePipeline.for_shard_set(teacher_ds, seed=0)  # the set's codec decides the front end
    teacher = TinyCNN(len(classes))
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    batches = loader(teacher_ds, args.workers, torch.device("cpu"))
    for epoch in range(args.epochs):
        teacher_ds.set_epoch(epoch)
        loss, _, clips, seconds = run_epoch(teacher, frontend, batches, torch.device("cpu"), optimizer)
        print(f"teacher epoch {epoch}: loss {loss:.4f} ({clips} clips, {seconds:.1f} s)")

    pred = predict(teacher, frontend, scapes, classes, args.workers)
    print(f"predicted {len(pred['row_id'])} windows of {len({*pred['source']})} soundscapes "
          f"(first: {pred['row_id'][0]})")
    new = scapes.parent / "soundscapes-pl"
    shutil.rmtree(new, ignore_errors=True)  # this example's own output of an earlier run
    r = shardkit.add_labels(scapes, new, name="pl", sources=pred["source"], start_seconds=pred["start_seconds"],
                            probs=pred["probs"], classes=classes, window_seconds=5.0, note="round 1")
    print(f"layer pl: {r.rows} rows, {r.bytes_written} bytes written (no audio), version {r.version_id}")
    train_student(new, classes, frontend, args.epochs, args.workers)


if __name__ == "__main__":
    main()
