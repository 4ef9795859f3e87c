"""Train on a published shard set in a Kaggle GPU notebook (P100/T4, 4 vCPU): the set is an attached
input, read-only; nothing is written next to it; checkpoints go to /kaggle/working.

In the notebook, shardkit installed from its wheel dataset (it is not on PyPI: ``shardkit kaggle wheelhouse
wheels/ --id OWNER/shardkit-wheels`` + ``shardkit kaggle publish wheels/`` once, then attach that dataset;
docs/kaggle.md, "Offline install")::

    !pip install --no-index --find-links /kaggle/input/shardkit-wheels shardkit
    !python train.py --dataset OWNER/SLUG --epochs 10

``--input-root`` (default ``/kaggle/input``) and ``--device cpu`` run it anywhere.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

import shardkit.kaggle
from shardkit import ShardDataset
from shardkit.device import AugmentConfig, DevicePipeline


def model(n_classes: int, width: int = 48) -> nn.Module:
    """log-mel (B, n_mels, frames) → logits (B, n_classes): a small CNN (swap in timm's EfficientNet at will)."""
    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(_AddChannel(), nn.BatchNorm2d(1),
                         block(1, width // 2), block(width // 2, width), block(width, 2 * width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, n_classes))


class _AddChannel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="OWNER/SLUG of the attached shard-set dataset")
    ap.add_argument("--input-root", default=None, help="the notebook's input folder [/kaggle/input]")
    ap.add_argument("--out", type=Path, default=None, help="checkpoint folder [/kaggle/working or temp]")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--crop-seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers (a Kaggle GPU notebook has 4 vCPUs)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    found = shardkit.kaggle.locate(args.dataset, input_root=args.input_root)
    print(f"reading {found.path} ({found.layout}); inputs with shard sets: {[str(p) for p in found.search_path]}")
    ds = ShardDataset(found.path, crop_seconds=args.crop_seconds, batch_size=args.batch_size, seed=0)
    loader = DataLoader(ds, batch_size=None, num_workers=args.workers, pin_memory=args.device.startswith("cuda"),
                        persistent_workers=args.workers > 0)
    device = torch.device(args.device)
    # wav16 or mel-u8 alike: the pipeline's front end follows the set's codec
    pipe = DevicePipeline.for_shard_set(ds, AugmentConfig(gain_p=0.5, mixup_p=0.5, spec_p=0.5), seed=0).to(device)
    net = model(len(ds.shard_set.vocabulary)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    out = args.out or shardkit.kaggle.notebook.cache_dir().parent / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    for epoch in range(args.epochs):
        ds.set_epoch(epoch)
        net.train()
        pipe.train()
        start, total, n = time.perf_counter(), 0.0, 0
        for batch in loader:
            x, y = pipe.batch(batch)
            loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        print(f"epoch {epoch}: loss {total / max(n, 1):.4f}, {n} batches in {time.perf_counter() - start:.1f} s")
        torch.save({"model": net.state_dict(), "vocabulary": ds.shard_set.vocabulary, "epoch": epoch,
                    "version_id": ds.shard_set.version_id}, out / "model.pt")
    print(f"saved {out / 'model.pt'}")


if __name__ == "__main__":
    main()
