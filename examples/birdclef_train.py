"""Train a tiny bird-call classifier from a shardkit shard set: the whole input pipeline in one file.

    CPU workers:  read int16 crops out of the shards (no decoding, no resampling, no STFT)
    device:       .to(device, non_blocking=True) → DevicePipeline (augment + log-mel) → CNN → BCEWithLogits

It also trains on a mel-u8 shard set (``shardkit pack ... --format mel-u8``) unchanged: the workers then
read uint8 log-mel crops and ``DevicePipeline.for_shard_set`` builds the front end that dequantises them
and augments in the dB domain — the training loop never asks which codec the set has.

Make a shard set first, e.g. the built-in synthetic demo (about 15 minutes of audio)::

    python -c "from shardkit.demo import run_demo; run_demo('demo')"
    python examples/birdclef_train.py demo/shards

or pack a BirdCLEF folder (``shardkit pack train_audio/ shards/ --metadata train_metadata.csv``)
and pass ``--val-shards`` a set packed from held-out recordings.

Checkpoints (``--checkpoint ckpt.pt --save-every 50``): the model, the optimizer, the dataset's position
in the epoch and the device pipeline's random state. Run the same command again after an interruption
(a preempted notebook, Ctrl-C) and it resumes mid-epoch with the batches *and the augmentations* the
uninterrupted run would have drawn.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from shardkit.dataset import ShardDataset
from shardkit.device import AugmentConfig, DevicePipeline


class TinyCNN(nn.Module):
    """log-mel (B, n_mels, frames) → logits (B, n_classes)."""

    def __init__(self, n_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(
            nn.BatchNorm2d(1),                    # dB values → roughly unit scale
            nn.Conv2d(1, width // 2, 5, stride=2, padding=2),  # a cheap stem: CPUs train this too
            block(width // 2, width // 2), block(width // 2, width), block(width, 2 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(mel.unsqueeze(1)))


def loader(ds: ShardDataset, workers: int, device: torch.device) -> DataLoader:
    # batch_size=None: the dataset makes the batches itself. set_epoch() reaches persistent workers.
    return DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0)


def run_epoch(model: nn.Module, frontend: DevicePipeline, batches: DataLoader, device: torch.device,
              optimizer: torch.optim.Optimizer | None = None, after_step: Callable[[int], None] | None = None
              ) -> tuple[float, float, int, float]:
    """One pass; trains when ``optimizer`` is given, calling ``after_step(batches done)`` after each step.
    Returns (mean loss, top-1 hit rate, clips, seconds)."""
    model.train(optimizer is not None)
    frontend.train(optimizer is not None)        # augmentations only while training
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    total_loss = hits = clips = 0.0
    steps = 0
    t0 = time.perf_counter()
    with torch.set_grad_enabled(optimizer is not None):
        for batch in batches:
            valid = batch["valid"].to(device, non_blocking=True)     # bool (B,): False = padding
            mel, labels = frontend.batch(batch)                      # float32 (B, n_mels, frames), (B, n_classes)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(mel).float()
            per_clip = loss_fn(logits, labels).mean(dim=1)
            loss = (per_clip * valid).sum() / valid.sum().clamp(min=1)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            steps += 1
            if after_step is not None:
                after_step(steps)
            n = int(valid.sum())
            top1 = labels.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1) > 0
            total_loss += loss.item() * n
            hits += int((top1 & valid).sum())
            clips += n
    if device.type == "cuda":
        torch.cuda.synchronize()
    return total_loss / max(clips, 1), hits / max(clips, 1), int(clips), time.perf_counter() - t0


def save_checkpoint(path: Path, epoch: int, batches_done: int, train_ds: ShardDataset, model: nn.Module,
                    frontend: DevicePipeline, optimizer: torch.optim.Optimizer) -> None:
    """Everything a resumed run needs, written to a temp file and renamed (a kill never leaves half of one)."""
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "data": train_ds.state_dict(batches_done),   # the position in the epoch (a few ints)
             "frontend": frontend.state_dict()}            # the augmentations' random state
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def resume(path: Path, train_ds: ShardDataset, model: nn.Module, frontend: DevicePipeline,
           optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint if there is one; returns the epoch to go on with (0 without one)."""
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    frontend.load_state_dict(state["frontend"])     # after .to(device): the generator lives there
    train_ds.load_state_dict(state["data"])         # the next iteration of that epoch starts where it stopped
    print(f"resumed from {path}: epoch {state['epoch']}, {state['data']['consumed']} samples done")
    return int(state["epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", help="shard set folder (made by shardkit pack)")
    parser.add_argument("--val-shards", help="held-out shard set (default: validate on the training set)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (2 on Kaggle)")
    parser.add_argument("--crop-seconds", type=float, default=5.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--checkpoint", type=Path, help="save here (and resume from here when it exists)")
    parser.add_argument("--save-every", type=int, default=50, help="training steps between checkpoints")
    args = parser.parse_args()

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(0)

    train_ds = ShardDataset(args.shards, batch_size=args.batch_size, crop_seconds=args.crop_seconds,
                            shuffle=True, seed=0)
    # validation: no shuffle, fixed crops, every clip once; the same label columns as training
    val_ds = ShardDataset(args.val_shards or args.shards, batch_size=args.batch_size,
                          crop_seconds=args.crop_seconds, shuffle=False, classes=train_ds.classes)
    train_batches = loader(train_ds, args.workers, device)
    val_batches = loader(val_ds, args.workers, device)

    sample_rate = train_ds.shard_set.sample_rate
    augment = AugmentConfig(gain_p=0.5, shift_p=0.3, mixup_p=0.5, mixup_label_mode="max", spec_p=0.5)
    # the front end the set's codec needs: log-mel of int16 audio (wav16), or dequantise (mel-u8)
    frontend = DevicePipeline.for_shard_set(train_ds, augment, seed=0).to(device)
    model = TinyCNN(n_classes=len(train_ds.classes)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    print(f"{len(train_ds.shard_set)} samples, {len(train_ds.classes)} classes, {len(train_ds)} batches/epoch, "
          f"{sample_rate} Hz, device {device}"
          + ("" if args.val_shards else "; validating on the training set (pass --val-shards)"))

    first = resume(args.checkpoint, train_ds, model, frontend, optimizer) if args.checkpoint else 0
    for epoch in range(first, args.epochs):
        train_ds.set_epoch(epoch)                 # new order and new random crops (keeps a restored position)

        def after_step(done: int, epoch: int = epoch) -> None:
            if args.checkpoint and done % args.save_every == 0:
                save_checkpoint(args.checkpoint, epoch, done, train_ds, model, frontend, optimizer)

        loss, _, clips, seconds = run_epoch(model, frontend, train_batches, device, optimizer, after_step)
        if args.checkpoint:                       # the next epoch from its start
            save_checkpoint(args.checkpoint, epoch + 1, 0, train_ds, model, frontend, optimizer)
        val_loss, val_top1, val_clips, val_seconds = run_epoch(model, frontend, val_batches, device)
        print(f"epoch {epoch}: train loss {loss:.4f} ({clips / seconds:.0f} clips/s)  "
              f"val loss {val_loss:.4f} top-1 {val_top1:.2f} ({val_clips / val_seconds:.0f} clips/s)")


if __name__ == "__main__":
    main()
