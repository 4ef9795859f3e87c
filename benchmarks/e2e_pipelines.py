"""The five input pipelines of the end-to-end benchmark, each as batches of model input on the device.

A :class:`Pipeline` yields host batches across epochs (:meth:`Pipeline.batches`, counting the clips of
every finished epoch), copies one to the device (:meth:`Pipeline.copy`: what the training loop waits
for, together with ``next(loader)``) and turns it into the model's input (:meth:`Pipeline.stage`:
float32 ``(B, n_mels, frames)`` log-mels and float32 ``(B, n_classes)`` labels, on the device).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.e2e_data import Prepared, PresplitWavDataset, SeedOggDataset, cpu_mel
from shardkit.device import AugmentConfig, DevicePipeline, MelConfig, NoiseBank

#: every augmentation on, each at p = 0.5 (as benchmarks.device times it)
TRAIN_AUGMENT = AugmentConfig(gain_p=0.5, shift_p=0.5, noise_p=0.5, mixup_p=0.5, spec_p=0.5)
MEL_U8_AUGMENT = AugmentConfig(gain_p=0.5, shift_p=0.5, mixup_p=0.5, spec_p=0.5)  #: no noise on mel-u8

PIPELINES = ("seed-ogg", "seed-presplit", "shardkit-wav16", "shardkit-mel-u8", "ceiling")
LABELS = {
    "seed-ogg": "seed's start: map-style Dataset, whole .ogg via soundfile, resample, 5 s crop, noise, "
                "torchaudio mel on the CPU; DataLoader × 2",
    "seed-presplit": "seed's cures: presplit 16-bit WAV pieces, noise on the CPU, mel on the device; "
                     "DataLoader × 2",
    "shardkit-wav16": "shardkit wav16 recordings (random crops) + DevicePipeline (gain, shift, noise, mixup, "
                      "SpecAugment); DataLoader × 2",
    "shardkit-mel-u8": "shardkit mel-u8 recordings (random crops) + DevicePipeline (dequantise, gain, shift, "
                       "mixup, SpecAugment); DataLoader × 2",
    "ceiling": "the ceiling: the same model input already on the device (model only)",
}


class Pipeline:
    """One input pipeline; subclasses set :attr:`loader` and override :meth:`stage`."""

    name = ""
    workers = 0

    def __init__(self, device: torch.device, batch: int, epoch_items: int) -> None:
        self.device, self.batch, self.epoch_items = device, batch, epoch_items
        self.nb = device.type == "cuda"
        self.epoch_clips: list[int] = []    #: clips of every finished epoch
        self.loader: Any = None

    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        pass

    def batches(self) -> Iterator[Any]:
        """Host batches, epoch after epoch, without end."""
        epoch = 0
        while True:
            self.set_epoch(epoch)
            clips = 0
            for b in self.loader:
                clips += self.count(b)
                yield b
            self.epoch_clips.append(clips)
            epoch += 1

    def count(self, batch: Any) -> int:
        return int(batch[1].shape[0])

    def copy(self, batch: Any) -> Any:
        return [t.to(self.device, non_blocking=self.nb) for t in batch]

    def stage(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[0], batch[1]

    def close(self) -> None:
        """Stop the DataLoader's (persistent) workers now rather than at garbage collection."""
        it = getattr(self.loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.loader = None


def _map_loader(ds: torch.utils.data.Dataset, batch: int, epoch_items: int, device: torch.device,
                seed: int) -> DataLoader:
    sampler = RandomSampler(ds, replacement=False, num_samples=epoch_items,
                            generator=torch.Generator().manual_seed(seed))
    return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=2, drop_last=True,
                      pin_memory=device.type == "cuda", persistent_workers=True, prefetch_factor=2)


class SeedOgg(Pipeline):
    name, workers = "seed-ogg", 2

    def __init__(self, device: torch.device, batch: int, prep: Prepared, mel: MelConfig, noise: list) -> None:
        super().__init__(device, batch, prep.epoch_items)
        ds = SeedOggDataset(prep.files, prep.classes, prep.clip_seconds, mel, noise)
        self.loader = _map_loader(ds, batch, prep.epoch_items, device, seed=0)


class SeedPresplit(Pipeline):
    name, workers = "seed-presplit", 2

    def __init__(self, device: torch.device, batch: int, prep: Prepared, mel: MelConfig, noise: list) -> None:
        super().__init__(device, batch, prep.epoch_items)
        ds = PresplitWavDataset(prep.presplit, prep.classes, noise)
        self.loader = _map_loader(ds, batch, prep.epoch_items, device, seed=0)
        self.mel = cpu_mel(mel).to(device)  # "just remember to send the instance to the GPU"

    def stage(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.mel(batch[0]), batch[1]


class Shardkit(Pipeline):
    """``ShardDataset`` over a recordings-mode set (random crops), ``DataLoader(batch_size=None)``, then
    :class:`DevicePipeline` in training mode on the device."""

    workers = 2

    def __init__(self, device: torch.device, batch: int, prep: Prepared, mel: MelConfig, noise: list,
                 codec: str) -> None:
        from shardkit.dataset import ShardDataset

        super().__init__(device, batch, prep.epoch_items)
        self.name = f"shardkit-{codec}"
        path = prep.wav16 if codec == "wav16" else prep.mel_u8
        self.ds = ShardDataset(path, batch_size=batch, crop_seconds=prep.clip_seconds,
                               crops_per_recording=prep.crops, shuffle=True, seed=0, partial="drop",
                               classes=prep.classes)
        self.loader = DataLoader(self.ds, batch_size=None, num_workers=2, pin_memory=device.type == "cuda",
                                 persistent_workers=True, prefetch_factor=2)
        self.key = "audio" if codec == "wav16" else "mel"
        if codec == "wav16":
            bank = NoiseBank(noise, mel.sample_rate, max_seconds=600.0)
            self.pipe = DevicePipeline(mel, TRAIN_AUGMENT, noise_bank=bank, seed=0).to(device)
        else:
            self.pipe = DevicePipeline(MelConfig.from_dict(self.ds.shard_set.mel), MEL_U8_AUGMENT,
                                       seed=0).to(device)

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)

    def count(self, batch: Any) -> int:
        return int(batch["valid"].sum())

    def copy(self, batch: Any) -> Any:
        out = {k: batch[k].to(self.device, non_blocking=self.nb) for k in (self.key, "labels")}
        if "mel_range" in batch:
            out["mel_range"] = batch["mel_range"].to(self.device, non_blocking=self.nb)
        return out

    def stage(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            mel, y = self.pipe(batch[self.key], batch["labels"], mel_range=batch.get("mel_range"))
        return mel, y


class Ceiling(Pipeline):
    """The same model input already on the device: a few captured batches, cycled; nothing to wait for."""

    name = "ceiling"

    def __init__(self, device: torch.device, batch: int, epoch_items: int,
                 resident: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__(device, batch, epoch_items)
        self.resident = resident
        self.loader = range(epoch_items // batch)

    def batches(self) -> Iterator[Any]:
        k = 0
        while True:
            for _ in range(len(self.loader)):
                yield self.resident[k % len(self.resident)]
                k += 1
            self.epoch_clips.append(len(self.loader) * self.batch)

    def copy(self, batch: Any) -> Any:
        return batch


def make(name: str, device: torch.device, batch: int, prep: Prepared, mel: MelConfig, noise: list,
         resident: list | None) -> Pipeline:
    """The pipeline called ``name`` (one of :data:`PIPELINES`)."""
    if name == "seed-ogg":
        return SeedOgg(device, batch, prep, mel, noise)
    if name == "seed-presplit":
        return SeedPresplit(device, batch, prep, mel, noise)
    if name.startswith("shardkit-"):
        return Shardkit(device, batch, prep, mel, noise, name.removeprefix("shardkit-"))
    return Ceiling(device, batch, prep.epoch_items, resident or [])
