"""The end-to-end demo: make the corpus, pack it, stream it through a DataLoader and the device stage.

torch and the pack/read stages are imported only when :func:`run_demo` runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import soundfile as sf

from shardkit.demo.corpus import AUDIO_DIR, METADATA_NAME, make_demo_corpus, read_demo_metadata
from shardkit.errors import UsageError

if TYPE_CHECKING:
    import torch

    from shardkit.dataset import ShardDataset
    from shardkit.device import DevicePipeline
    from shardkit.read.browse import ShardSetInfo
    from shardkit.write.pack import PackProgress, PackResult

log = logging.getLogger(__name__)

#: Sample rate of the packed demo set, in Hz (the default :class:`~shardkit.device.MelConfig`'s).
_RATE = 32000
#: Random 5 s crops per recording and epoch in the streamed passes.
CROPS = 8


@dataclass
class DemoReport:
    """What :func:`run_demo` measured. Rates are wall-clock, including DataLoader worker start-up."""

    corpus_files: int
    corpus_hours: float                 # audio hours in the source corpus
    pack_seconds: float                 # wall time of pack()
    pack_audio_hours_per_minute: float  # audio hours packed per minute of pack time
    shards: int
    shard_bytes: int
    packed_hours: float                 # audio hours in the shard set
    rejects: int
    epochs: int
    batch_size: int
    clips_streamed: int                 # valid clips per pass (all epochs)
    reader_clips_per_s: float           # DataLoader alone (batches moved to the device)
    mel_clips_per_s: float              # DataLoader + transfer + LogMel, end to end
    mel_compute_clips_per_s: float      # LogMel alone on a batch already on the device
    mel_shape: tuple[int, ...]          # (B, n_mels, frames) of a full batch
    device: str
    reader_startup_s: float = 0.0       # wall seconds to the first batch (workers starting, first reads)
    timed_clips: int = 0                # clips the steady-state reader rate was timed over
    shard_set: str = ""                 # where the shard set is
    summary: list[str] = field(default_factory=list)   # what is in it (shardkit info, short)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_run(
        cls,
        *,
        corpus_files: int,
        corpus_seconds: float,
        result: PackResult,
        pack_seconds: float,
        epochs: int,
        batch_size: int,
        reader: _Streamed,
        mel: _Streamed,
        mel_compute_clips_per_s: float,
        device: torch.device,
        info: ShardSetInfo | None = None,
    ) -> DemoReport:
        """The report of one :func:`run_demo`: seconds become hours, counts over seconds become rates.

        Args:
            corpus_files: files in the source corpus.
            corpus_seconds: audio seconds in the source corpus.
            result: what :func:`~shardkit.write.pack.pack` returned.
            pack_seconds: wall seconds of the pack.
            epochs: epochs streamed per pass.
            batch_size: clips per batch.
            reader: the pass with the DataLoader alone.
            mel: the pass through the device stage.
            mel_compute_clips_per_s: clips/s of the device stage alone.
            device: where the batches went.
            info: the packed set's :func:`shardkit.info`.
        """
        notes = [f"rejected {len(result.rejects)} source(s): {result.rejects[:3]}"] if result.rejects else []
        packed_hours = result.seconds / 3600
        return cls(
            corpus_files=corpus_files,
            corpus_hours=corpus_seconds / 3600,
            pack_seconds=pack_seconds,
            pack_audio_hours_per_minute=packed_hours / (pack_seconds / 60) if pack_seconds > 0 else 0.0,
            shards=int(result.shards),
            shard_bytes=int(result.bytes),
            packed_hours=packed_hours,
            rejects=len(result.rejects),
            epochs=epochs,
            batch_size=batch_size,
            clips_streamed=reader.clips,
            reader_clips_per_s=reader.rate,
            mel_clips_per_s=mel.rate,
            mel_compute_clips_per_s=mel_compute_clips_per_s,
            mel_shape=tuple(mel.last.shape) if mel.last is not None else (),
            device=_device_name(device),
            reader_startup_s=reader.startup,
            timed_clips=reader.timed_clips,
            shard_set=str(info.root) if info else "",
            summary=_summary(info) if info else [],
            notes=notes,
        )

    def lines(self) -> list[str]:
        """A short human-readable summary, one fact per line (for the CLI to print), ending with the
        commands to run next."""
        where = self.shard_set or "SHARDS"
        return [
            f"corpus     {self.corpus_files} files, {self.corpus_hours * 60:.1f} min of audio",
            f"pack       {self.pack_seconds:.1f}s, {self.pack_audio_hours_per_minute:.2f} audio-hours/min, "
            f"{self.shards} shards, {self.shard_bytes / 1e6:.1f} MB, {self.rejects} rejects",
            *self.summary,
            f"reader     {self.reader_clips_per_s:,.0f} clips/s steady state (5 s crops, batch {self.batch_size}, "
            f"{self.timed_clips} clips timed; start-up {self.reader_startup_s:.2f} s)",
            f"+ device stage (augment + log-mel) {self.mel_clips_per_s:,.0f} clips/s end to end on {self.device}; "
            f"stage alone {self.mel_compute_clips_per_s:,.0f} clips/s, output {tuple(self.mel_shape)}",
            *self.notes,
            "next:",
            f"  shardkit info {where}                 # what the set holds",
            f"  shardkit show {where} KEY -o clip.png # waveform + log-mel (keys: shardkit ls; needs shardkit[plot])",
            "  shardkit pack YOUR_AUDIO/ shards/ --metadata train_metadata.csv --workers 2   # your data",
        ]


@dataclass(frozen=True)
class _Streamed:
    """One pass of :func:`_stream_epochs`: valid clips of its first ``epochs`` epochs, the steady-state
    clips and wall seconds after the first batch (start-up excluded), the start-up seconds to the first
    batch, and the last output tensor (or None)."""

    clips: int
    timed_clips: int
    seconds: float
    startup: float
    last: Any

    @property
    def rate(self) -> float:
        """Steady-state clips per wall second (0 when nothing was timed)."""
        return self.timed_clips / self.seconds if self.seconds > 0 else 0.0


def default_workdir() -> Path:
    """Where ``shardkit demo`` works when given no folder: ``demo/`` in shardkit's cache folder
    (``$SHARDKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/shardkit`` or ``~/.cache/shardkit``, else the temp
    folder) — never the current folder, which may be a clone of the repository."""
    from shardkit.read.lineage import cache_dir

    return cache_dir() / "demo"


def run_demo(
    workdir: str | os.PathLike[str],
    *,
    workers: int = 2,
    epochs: int = 1,
    batch_size: int = 32,
    progress: Callable[[PackProgress], None] | None = None,
    min_seconds: float = 4.0,
) -> DemoReport:
    """Make the demo corpus (if absent), pack it, and stream it into the device stage (augmentations +
    log-mel, :class:`shardkit.device.DevicePipeline`).

    Layout: ``workdir/corpus`` (made once, reused) and ``workdir/shards`` (re-packed on every call
    with ``overwrite=True``, so the pack time is real; pack refuses a folder holding other files).

    Args:
        workdir: folder for the corpus and the shard set.
        workers: pack processes (at least 1) and DataLoader workers (0 = read in this process).
        epochs: epochs streamed, once with the loader alone and once through the device stage (more, while
            fewer than ``min_seconds`` of steady state were timed: a small corpus streams fast).
        min_seconds: seconds of steady state timed per pass, after the first batch (the start-up).
        batch_size: clips per batch (5 s crops at 32000 Hz, int16).
        progress: called with a :class:`~shardkit.write.pack.PackProgress` after every source packed
            (passed to :func:`shardkit.write.pack.pack`).

    Returns:
        a :class:`DemoReport`.
    """
    import torch

    from shardkit.read.browse import info

    if workers < 0 or epochs < 1 or batch_size < 1:
        raise UsageError(f"run_demo needs workers >= 0, epochs >= 1, batch_size >= 1; "
                         f"got {workers}, {epochs}, {batch_size}")
    workdir = Path(workdir)
    csv_path, rows, corpus_seconds = _ensure_corpus(workdir)
    result, pack_seconds = _timed_pack(csv_path, workdir / "shards", max(1, workers), progress)
    device, dataset, loader, pipeline = _build_stream(workdir / "shards", batch_size, workers)
    with torch.inference_mode():
        reader = _stream_epochs(loader, dataset, pipeline, device, epochs, with_mel=False, min_seconds=min_seconds)
        mel = _stream_epochs(loader, dataset, pipeline, device, epochs, with_mel=True, min_seconds=min_seconds)
        mel_compute = _time_mel(pipeline, reader.last, device) if reader.last is not None else 0.0
    report = DemoReport.from_run(
        corpus_files=len(rows), corpus_seconds=corpus_seconds, result=result, pack_seconds=pack_seconds,
        epochs=epochs, batch_size=batch_size, reader=reader, mel=mel, mel_compute_clips_per_s=mel_compute,
        device=device, info=info(workdir / "shards"),
    )
    for line in report.lines():
        log.info("%s", line)
    return report


#: written into a demo's workdir: the demo overwrites ``workdir/shards`` only where it finds this
DEMO_MARKER = ".shardkit-demo"


def _ensure_corpus(workdir: Path) -> tuple[Path, list[dict[str, str]], float]:
    """``workdir/corpus``, made unless its CSV is there: (CSV path, CSV rows, audio seconds of all files)."""
    src = workdir / "corpus"
    csv_path = src / METADATA_NAME
    shards = workdir / "shards"
    if shards.exists() and any(shards.iterdir()) and not (workdir / DEMO_MARKER).exists():
        raise UsageError(f"{shards}: holds files the demo did not make; the demo re-packs this folder, so "
                         "choose another --workdir (or an empty one)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / DEMO_MARKER).touch()
    if not csv_path.exists():
        make_demo_corpus(src)
    rows = read_demo_metadata(csv_path)
    corpus_seconds = sum(sf.info(str(src / AUDIO_DIR / r["filename"])).duration for r in rows)
    return csv_path, rows, corpus_seconds


def _timed_pack(csv_path: Path, out: Path, workers: int,
                progress: Callable[[PackProgress], None] | None) -> tuple[PackResult, float]:
    """Pack the corpus beside ``csv_path`` into ``out`` (overwriting a set there): (result, wall seconds).

    Recordings mode at 32000 Hz, recordings cut into pieces of at most 60 s, 16 MB shards.
    """
    from shardkit.write.options import PackOptions
    from shardkit.write.pack import pack

    options = PackOptions(sample_rate=_RATE, mode="recordings", max_seconds=60, shard_size="16MB")
    t0 = time.perf_counter()
    result = pack(csv_path.parent / AUDIO_DIR, out, metadata=csv_path, options=options, workers=workers,
                  overwrite=True, progress=progress)
    pack_seconds = time.perf_counter() - t0
    log.info("packed %.2f h of audio into %d shards in %.1fs", result.seconds / 3600, result.shards, pack_seconds)
    return result, pack_seconds


def _build_stream(out: Path, batch_size: int, workers: int
                  ) -> tuple[torch.device, ShardDataset, torch.utils.data.DataLoader, DevicePipeline]:
    """(device, dataset, loader, pipeline) to stream the set at ``out``: shuffled 5 s crops, ``batch_size``
    per batch, ``workers`` DataLoader workers, and a training device stage (each augmentation at p = 0.5)
    on CUDA when there is one, else the CPU."""
    import torch

    from shardkit.dataset import ShardDataset
    from shardkit.device import AugmentConfig, DevicePipeline, MelConfig

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    augment = AugmentConfig(gain_p=0.5, shift_p=0.5, mixup_p=0.5, mixup_label_mode="max", spec_p=0.5)
    pipeline = DevicePipeline(MelConfig(sample_rate=_RATE), augment, seed=0).to(device)
    # 8 random crops per recording and epoch: epochs of ~400 clips, so the rate is not DataLoader restarts
    dataset = ShardDataset(out, batch_size=batch_size, crop_seconds=5.0, crops_per_recording=CROPS, shuffle=True,
                           seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    return device, dataset, loader, pipeline


def _stream_epochs(loader: Any, dataset: ShardDataset, pipeline: DevicePipeline, device: torch.device,
                   epochs: int, *, with_mel: bool, min_seconds: float = 0.0) -> _Streamed:
    """Stream ``epochs`` epochs — and more, up to 100, until ``min_seconds`` of steady state are timed —
    each batch moved to ``device`` (and through ``pipeline`` if ``with_mel``).

    Counts valid clips only (the padding rows of a last, short batch do not count). The first batch's
    wait is the start-up (DataLoader workers starting, first reads); the rate is timed from there to
    when the device has finished, so a small corpus still gives a steady-state figure.
    """
    import torch

    clips = timed = 0
    last, t_first = None, None
    t_start = time.perf_counter()
    epoch = 0
    while epoch < epochs or (t_first is not None and time.perf_counter() - t_first < min_seconds and epoch < 100):
        dataset.set_epoch(epoch)      # reaches persistent workers too
        for batch in loader:
            audio = batch["audio"].to(device, non_blocking=True)
            labels = batch["labels"].to(device, non_blocking=True)  # the targets travel too (and mix)
            last = pipeline(audio, labels)[0] if with_mel else audio
            n = int(batch["valid"].sum())
            clips += n if epoch < epochs else 0
            if t_first is None:
                t_first = time.perf_counter()
            else:
                timed += n
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_end = time.perf_counter()
    t_first = t_end if t_first is None else t_first
    return _Streamed(clips, timed, t_end - t_first, t_first - t_start, last)


def _time_mel(frontend: DevicePipeline, audio: torch.Tensor, device: torch.device, repeats: int = 5) -> float:
    """Clips per second of ``frontend`` alone on ``audio``, a batch ``(B, samples)`` already on ``device``."""
    import torch

    frontend(audio)                       # warm-up (cuFFT plans, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        frontend(audio)                   # labels are optional: the stage returns (mel, None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return repeats * audio.shape[0] / elapsed if elapsed > 0 else 0.0


def _summary(info: ShardSetInfo) -> list[str]:
    """Two lines of :func:`shardkit.info` for the report."""
    top = ", ".join(f"{k} {v}" for k, v in info.top_classes(4))
    return [f"shard set  {info.root} ({info.version_id}, {info.codec}, {info.sample_rate} Hz)",
            f"           {info.samples} samples, {info.hours * 60:.1f} min, {info.classes} classes (top: {top})"]


def _device_name(device: torch.device) -> str:
    """``"cpu"``, or ``"cuda:0 (<GPU name>)"``."""
    if device.type == "cpu":
        return str(device)
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})"
