"""The model, the training step and how one (pipeline, case) run is timed in the end-to-end benchmark.

* :class:`Trainer`: torchvision ``efficientnet_b0(weights=None)`` (random weights; nothing is downloaded)
  on log-mels ``(B, n_mels, frames)`` repeated to 3 channels, BCE-with-logits, AdamW. Mixed precision on
  CUDA (``torch.autocast`` bf16 where the GPU supports it, else fp16 with a ``GradScaler``); fp32 on the CPU.
  ``frozen=True``: the backbone (``model.features``) is frozen (no gradients, BatchNorm in eval mode) and
  only the classifier head trains.
* :func:`run_one`: first batch (latency), untimed warm-up steps, then timed steps; per step the time
  blocked in ``next(loader)`` plus the host→device copy call is added up as the *wait*.
* :class:`MemoryWatch`: peak host memory (a thread samples /proc: RSS and PSS summed over this process and
  all its descendants, i.e. the DataLoader workers) and peak device memory (``max_memory_allocated``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.e2e_pipelines import Pipeline


class Trainer:
    """A fresh model and optimizer (same seed every time) and one training step."""

    def __init__(self, n_classes: int, device: torch.device, *, frozen: bool, seed: int = 0) -> None:
        from torchvision.models import efficientnet_b0

        torch.manual_seed(seed)
        self.device, self.frozen = device, frozen
        self.model = efficientnet_b0(weights=None, num_classes=n_classes).to(device)
        if frozen:
            self.model.features.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = torch.optim.AdamW(params, lr=1e-3)
        cuda = device.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loss_fn = torch.nn.BCEWithLogitsLoss()
        self.loss_sum = torch.zeros((), device=device)

    @property
    def precision(self) -> str:
        return {torch.bfloat16: "autocast bf16", torch.float16: "autocast fp16 + GradScaler"}.get(
            self.amp_dtype, "fp32")

    def step(self, mel: torch.Tensor, labels: torch.Tensor) -> None:
        """One optimiser step on float32 ``(B, n_mels, frames)`` log-mels and ``(B, n_classes)`` targets.

        Nothing here waits for the device (the loss is summed on the device, read once at the end).
        """
        self.model.train()
        if self.frozen:
            self.model.features.eval()
        x = mel.unsqueeze(1).expand(-1, 3, -1, -1)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.model(x)
        loss = self.loss_fn(logits.float(), labels.float())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.loss_sum += loss.detach()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def host_memory_kb() -> tuple[int, int]:
    """(RSS, PSS) in KiB, summed over this process and its descendants (PSS counts shared pages once)."""
    total = [0, 0]
    for p in _descendants(os.getpid()):
        r, s = _rss_pss_kb(p)
        total[0] += r
        total[1] += s
    return total[0], total[1]


class MemoryWatch:
    """Peak host RSS/PSS (sampled every ``interval`` s by a thread) and peak device memory over a run."""

    def __init__(self, device: torch.device, interval: float = 0.25) -> None:
        self.device, self.interval = device, interval
        self.peak = [0, 0]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        r, s = host_memory_kb()
        self.peak = [max(self.peak[0], r), max(self.peak[1], s)]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemoryWatch:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def result(self) -> dict[str, float | None]:
        dev = None
        if self.device.type == "cuda":
            dev = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return {"peak_host_rss_mb": round(self.peak[0] / 1024, 1), "peak_host_pss_mb": round(self.peak[1] / 1024, 1),
                "peak_device_mb": dev}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(pipe: Pipeline, trainer: Trainer, gen: Any, *, seconds: float, min_steps: int,
           capture: list | None) -> dict[str, float]:
    """Timed steps until ``min_steps`` and ``seconds`` are both reached."""
    dev = pipe.device
    _sync(dev)
    wait = 0.0
    steps = clips = 0
    t0 = time.perf_counter()
    while True:
        tw = time.perf_counter()
        host = next(gen)
        batch = pipe.copy(host)
        wait += time.perf_counter() - tw
        mel, y = pipe.stage(batch)
        if capture is not None and len(capture) < 4:
            capture.append((mel.detach().clone(), y.detach().clone()))
        trainer.step(mel, y)
        steps += 1
        clips += pipe.count(host) if pipe.name != "ceiling" else pipe.batch
        if steps >= min_steps and time.perf_counter() - t0 >= seconds:
            break
    _sync(dev)
    return {"steps": steps, "clips": clips, "seconds": time.perf_counter() - t0, "wait_s": wait}


def run_one(pipe: Pipeline, trainer: Trainer, *, warmup: int, seconds: float, min_steps: int,
            drain_prefetch: bool, count_epoch: bool, capture: list | None = None) -> dict[str, Any]:
    """Time ``pipe`` feeding ``trainer``: first-batch latency, then steady-state steps (see the module doc).

    Untimed before the clock starts: the first batch, ``warmup`` steps and (``drain_prefetch``) as many
    batches again as the workers prefetch (2 per worker), so the timed span does not start on a full queue.
    ``count_epoch``: if no epoch finished while timing, the rest of epoch 0 is read (not trained on) so
    that its clips are counted.
    """
    dev = pipe.device
    with MemoryWatch(dev) as mem:
        gen = pipe.batches()
        t0 = time.perf_counter()
        batch = pipe.copy(next(gen))
        first_batch = time.perf_counter() - t0
        trainer.step(*pipe.stage(batch))
        _sync(dev)
        first_step = time.perf_counter() - t0
        for _ in range(warmup + (2 * pipe.workers if drain_prefetch else 0)):
            trainer.step(*pipe.stage(pipe.copy(next(gen))))
        timed = _timed(pipe, trainer, gen, seconds=seconds, min_steps=min_steps, capture=capture)
        loss = float(trainer.loss_sum)
    if count_epoch and not pipe.epoch_clips:
        while not pipe.epoch_clips:
            next(gen)
    steps, wall = timed["steps"], timed["seconds"]
    return {
        "steps": steps, "seconds": round(wall, 4), "ms_per_step": round(1e3 * wall / steps, 3),
        "steps_per_s": round(steps / wall, 4), "clips_per_s": round(timed["clips"] / wall, 2),
        "wait_s": round(timed["wait_s"], 4), "wait_share": round(timed["wait_s"] / wall, 4),
        "first_batch_s": round(first_batch, 4), "first_step_s": round(first_step, 4),
        "steps_per_epoch": pipe.steps_per_epoch(), "clips_per_epoch": pipe.steps_per_epoch() * pipe.batch,
        "epoch_clips_counted": pipe.epoch_clips[0] if pipe.epoch_clips else None,
        "loss_finite": math.isfinite(loss), **mem.result(),
    }
