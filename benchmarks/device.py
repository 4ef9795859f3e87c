"""The device stage against the per-example baseline, in one run on the same synthetic batch.

    python -m benchmarks.device [--quick] [--device cpu|cuda|auto] [--out DIR] [--threads 1,2] [--save]
    python -m benchmarks.device --render      # only re-render docs/benchmarks-device.md

What is timed (clips/s and ms per batch of ``--batch`` clips of 5 s, mono int16 at 32 kHz):

* ``device-train``: :class:`shardkit.device.DevicePipeline` with the default :class:`MelConfig` and a typical
  training :class:`AugmentConfig` (gain, shift, noise from a :class:`NoiseBank` of synthetic noise, mixup,
  SpecAugment, each at p = 0.5), on the whole int16 batch at once. On CUDA every step first copies the int16
  batch from pinned host memory with ``non_blocking=True`` (as a training loop does), and the clock stops
  after ``torch.cuda.synchronize()``.
* ``device-eval``: the same module in ``eval()`` — the log-mel front end only.
* on CUDA also ``device-train-resident`` (the batch already on the GPU) and ``h2d`` (the copy alone).
* ``mel-u8-train`` / ``mel-u8-eval``: the same for a mel-u8 batch (uint8 ``(B, 128, 313)`` + ``mel_range``, the
  quantised log-mels of the same clips): dequantise → gain, shift, mixup (power domain) → SpecAugment, no noise
  (a stored log-mel cannot take it); eval = dequantise only. On CUDA the uint8 batch is what is copied.
* ``baseline``: what a typical Kaggle notebook does — a ``torch.utils.data.Dataset`` whose ``__getitem__`` takes
  one clip, applies gain, ``torch.roll`` shift, noise added at a random SNR and a per-example torchaudio
  ``MelSpectrogram`` + ``AmplitudeToDB`` + ``FrequencyMasking``/``TimeMasking``, batched by a ``DataLoader`` with
  ``num_workers`` 0 (in-process) and 2; on CUDA the batch is then copied to the GPU (``pin_memory=True``). The
  clips come from memory for both sides, so neither pays for reading or decoding: only the transform is timed.
  The baseline does no mixup (notebooks mix batches in the training loop), so it does a little less work.

Every method gets warm-up steps first (CUDA: cuFFT plans, allocator), then runs for ``--seconds``; methods run
round-robin for ``--repeats`` rounds and the best run is reported (on a shared machine other processes only ever
take time away). On CUDA the peak GPU memory of one forward (``torch.cuda.max_memory_allocated`` /
``max_memory_reserved``) is recorded at batch 64, 128 and 256.

Writes OUT/device-<device>.json and OUT/device-<device>.md (default OUT = bench-out/) and prints the table;
``--save`` also copies the JSON to benchmarks/results/ and re-renders docs/benchmarks-device.md from every
JSON there. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import ROOT, _log, _procs, machine
from benchmarks.device_baseline import KaggleStyleDataset, synth_clips, synth_labels, synth_noise
from benchmarks.harness import load1
from benchmarks.report_device import device_markdown, device_text, load_device_results, ratios
from shardkit.device import AugmentConfig, DevicePipeline, MelConfig, NoiseBank

RESULTS_DIR = ROOT / "benchmarks" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks-device.md"
SCHEMA = 1

#: A typical training configuration: every augmentation on, each at p = 0.5.
TRAIN_AUGMENT = AugmentConfig(gain_p=0.5, shift_p=0.5, noise_p=0.5, mixup_p=0.5, spec_p=0.5)
MEL_U8_AUGMENT = AugmentConfig(gain_p=0.5, shift_p=0.5, mixup_p=0.5, spec_p=0.5)  #: no noise on mel-u8
CLASSES = 182           #: multi-hot label width (BirdCLEF-sized)
NOISE_RECORDINGS = 8
NOISE_SECONDS = 10.0
MEMORY_BATCHES = (64, 128, 256)


# ------------------------------------------------------------------------------------------- timing


class Bench:
    """What the run measures with: the device, the synthetic data, the modules."""

    def __init__(self, device: torch.device, batch: int, samples: int, mel: MelConfig, seed: int = 0) -> None:
        self.device, self.batch, self.samples, self.mel = device, batch, samples, mel
        self.clips = synth_clips(batch, samples, mel.sample_rate, seed)
        self.labels = synth_labels(batch, CLASSES, seed + 2)
        noise = synth_noise(NOISE_RECORDINGS, int(NOISE_SECONDS * mel.sample_rate), seed + 1)
        self.noise_flat = np.concatenate(noise)
        cuda = device.type == "cuda"
        self.host_audio = torch.from_numpy(self.clips)
        self.host_labels = torch.from_numpy(self.labels)
        if cuda:
            self.host_audio = self.host_audio.pin_memory()
            self.host_labels = self.host_labels.pin_memory()
        self.noise, self.seed = noise, seed
        self.pipe = self.make_pipe().to(device)
        self.resident_audio = self.host_audio.to(device)
        self.resident_labels = self.host_labels.to(device)
        # the same clips as a mel-u8 set stores them: LogMel on the CPU, quantised per clip
        from shardkit.device import LogMel
        from shardkit.encode import mel_u8

        with torch.no_grad():
            db = LogMel(mel)(torch.from_numpy(self.clips)).numpy()
        quantised = [mel_u8.quantize(row) for row in db]
        self.host_mel = torch.from_numpy(np.stack([q for q, _, _ in quantised]))
        self.host_range = torch.tensor([[lo, hi] for _, lo, hi in quantised], dtype=torch.float32)
        if cuda:
            self.host_mel, self.host_range = self.host_mel.pin_memory(), self.host_range.pin_memory()
        self.pipe_mel = DevicePipeline(mel, MEL_U8_AUGMENT, seed=seed).to(device)

    def make_pipe(self) -> DevicePipeline:
        """The measured module, on the CPU: default MelConfig, TRAIN_AUGMENT, a NoiseBank of the synthetic noise."""
        bank = NoiseBank(self.noise, self.mel.sample_rate, max_seconds=NOISE_RECORDINGS * NOISE_SECONDS)
        return DevicePipeline(self.mel, TRAIN_AUGMENT, noise_bank=bank, seed=self.seed)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # one step each; every step returns the output so nothing is optimised away
    def step_h2d(self) -> Any:
        return self.host_audio.to(self.device, non_blocking=True), self.host_labels.to(self.device, non_blocking=True)

    def step_mel_u8(self, train: bool) -> Callable[[], Any]:
        def step() -> Any:
            self.pipe_mel.train(train)
            nb = self.device.type == "cuda"
            return self.pipe_mel(self.host_mel.to(self.device, non_blocking=nb),
                                 self.host_labels.to(self.device, non_blocking=nb),
                                 mel_range=self.host_range.to(self.device, non_blocking=nb))
        return step

    def step_pipe(self, train: bool, *, h2d: bool) -> Callable[[], Any]:
        def step() -> Any:
            self.pipe.train(train)
            if h2d and self.device.type == "cuda":
                audio, labels = self.step_h2d()
            else:
                audio, labels = self.resident_audio, self.resident_labels
            return self.pipe(audio, labels)
        return step


def time_steps(step: Callable[[], Any], sync: Callable[[], None], *, seconds: float, warmup: int, cuda: bool,
               min_steps: int = 2) -> dict[str, float]:
    """Warm up, guess how many steps fill ``seconds``, run exactly that many between two synchronisations."""
    with torch.no_grad():
        for _ in range(warmup):
            step()
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        one = max(time.perf_counter() - t0, 1e-6)
        steps = max(min_steps, int(math.ceil(seconds / one)))
        start = end = None
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        sync()
        t0 = time.perf_counter()
        if start is not None:
            start.record()
        for _ in range(steps):
            step()
        if end is not None:
            end.record()
        sync()
        wall = time.perf_counter() - t0
    out = {"steps": steps, "seconds": wall}
    if start is not None and end is not None:
        out["gpu_seconds"] = start.elapsed_time(end) / 1e3
    return out


def time_loader(bench: Bench, workers: int, *, seconds: float, warmup: int) -> dict[str, float]:
    """The baseline through a DataLoader: the first ``1 + warmup`` batches are untimed (workers starting)."""
    cuda = bench.device.type == "cuda"
    ds = KaggleStyleDataset(bench.clips, bench.labels, bench.noise_flat, bench.mel, TRAIN_AUGMENT, length=10**9)
    loader = torch.utils.data.DataLoader(ds, batch_size=bench.batch, shuffle=False, num_workers=workers,
                                         pin_memory=cuda, drop_last=True,
                                         prefetch_factor=2 if workers else None, persistent_workers=False)
    it = iter(loader)
    # untimed: the first batch (workers starting), the warm-up batches, and as many again as the workers prefetch
    # (2 per worker), so the timed span does not start with a full prefetch queue
    untimed = 1 + warmup + 2 * workers
    try:
        t_start = time.perf_counter()
        for _ in range(untimed):
            mel, y = next(it)
        startup = time.perf_counter() - t_start
        bench.sync()
        t0 = time.perf_counter()
        steps = 0
        while True:
            mel, y = next(it)
            if cuda:
                mel, y = mel.to(bench.device, non_blocking=True), y.to(bench.device, non_blocking=True)
            steps += 1
            if steps >= 2 and time.perf_counter() - t0 >= seconds:
                break
        bench.sync()
        wall = time.perf_counter() - t0
        shape = list(mel.shape)
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        del it, loader
    return {"steps": steps, "seconds": wall, "startup_s": startup, "shape": shape}


# ------------------------------------------------------------------------------------------- memory


def gpu_memory(bench: Bench, batches: tuple[int, ...]) -> list[dict[str, Any]]:
    """Peak GPU memory of one forward per (mode, batch size), in the steady state of a training loop.

    The timing run's module and resident batch are freed first. Per (mode, batch): a fresh pipeline (its buffers
    and the noise bank are ``static``), one untimed forward (cuFFT plans; in train mode the augmentations then hold
    their ``last_*`` tensors, as they do between steps), then the peak counters are reset and one more forward is
    measured, the int16 batch and labels copied in from pinned memory inside the measured span.
    """
    rows = []
    dev = bench.device
    bench.pipe = bench.resident_audio = bench.resident_labels = None  # type: ignore[assignment]
    for mode in ("train", "eval"):
        for b in batches:
            reps = -(-b // bench.batch)
            host = bench.host_audio.repeat(reps, 1)[:b].pin_memory()
            host_y = bench.host_labels.repeat(reps, 1)[:b].pin_memory()
            gc.collect()
            torch.cuda.synchronize(dev)
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(dev)
            pipe = bench.make_pipe().to(dev).train(mode == "train")
            static = torch.cuda.memory_allocated(dev) - before
            try:
                with torch.no_grad():
                    pipe(host.to(dev, non_blocking=True), host_y.to(dev, non_blocking=True))
                    torch.cuda.synchronize(dev)
                    torch.cuda.reset_peak_memory_stats(dev)
                    audio, y = host.to(dev, non_blocking=True), host_y.to(dev, non_blocking=True)
                    mel, y = pipe(audio, y)
                torch.cuda.synchronize(dev)
                peak = torch.cuda.max_memory_allocated(dev) - before
                rows.append({
                    "mode": mode, "batch": b,
                    "peak_allocated_mb": round(peak / 2**20, 1),
                    "peak_reserved_mb": round(torch.cuda.max_memory_reserved(dev) / 2**20, 1),
                    "static_mb": round(static / 2**20, 1),
                    "peak_over_static_mb": round((peak - static) / 2**20, 1),
                    "input_mb": round(audio.numel() * 2 / 2**20, 1),
                    "output_mb": round(mel.numel() * 4 / 2**20, 1),
                })
                del audio, y, mel
            except torch.cuda.OutOfMemoryError as exc:
                rows.append({"mode": mode, "batch": b, "error": f"OutOfMemoryError: {str(exc)[:200]}"})
            del pipe
    torch.cuda.empty_cache()
    return rows


# --------------------------------------------------------------------------------------------- run


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False here (CPU-only torch build or no GPU)")
    return torch.device(name)


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "name": machine()["cpu_model"]}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(name=p.name, memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count,
                    capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda)
    return info


def _config(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The run's settings from the command line, with the full or quick defaults filled in."""
    usable = len(os.sched_getaffinity(0))
    if args.threads:
        thread_counts = [int(t) for t in args.threads.split(",")]
    else:   # CPU: 1 and every core (a busy shared machine can make >1 thread far slower); CUDA: every core
        thread_counts = sorted({1, usable}) if device.type == "cpu" else [usable]
    torch.set_num_threads(max(thread_counts))
    quick = args.quick
    clip_seconds = args.clip_seconds or (1.0 if quick else 5.0)
    mel = MelConfig()
    return {"quick": quick, "device": device.type, "batch": args.batch or (8 if quick else 64),
            "clip_seconds": clip_seconds, "samples": int(round(clip_seconds * mel.sample_rate)), "classes": CLASSES,
            "seconds": args.seconds if args.seconds is not None else (0.2 if quick else 3.0),
            "repeats": args.repeats if args.repeats is not None else (1 if quick else 3),
            "warmup": 1 if quick else 3, "threads": thread_counts,
            "interop_threads": torch.get_num_interop_threads(),
            "baseline_workers": [int(w) for w in args.workers.split(",")],
            "noise_bank_seconds": NOISE_RECORDINGS * NOISE_SECONDS, "mel": mel.to_dict(),
            "augment": TRAIN_AUGMENT.to_dict()}


#: One measured entry: (name, label, DataLoader workers, torch threads of this process, one timed run).
_Method = tuple[str, str, int, int, Callable[[], dict[str, float]]]


def _methods(bench: Bench, cfg: dict[str, Any]) -> list[_Method]:
    """Every entry of the run, in the order the rounds take them."""
    cuda, threads, th_max = bench.device.type == "cuda", cfg["threads"], max(cfg["threads"])
    timing = {"seconds": cfg["seconds"], "warmup": cfg["warmup"]}

    def steps(step: Callable[[], Any]) -> Callable[[], dict[str, float]]:
        return lambda: time_steps(step, bench.sync, cuda=cuda, **timing)

    h2d_note = " (H2D copy from pinned memory in every step)" if cuda else ""
    methods: list[_Method] = []
    for th in threads:
        methods.append(("device-train", "DevicePipeline.train(): gain, shift, noise, mixup → LogMel → SpecAugment, "
                        "whole batch" + h2d_note, 0, th, steps(bench.step_pipe(True, h2d=True))))
        methods.append(("device-eval", "DevicePipeline.eval(): LogMel only" + h2d_note, 0, th,
                        steps(bench.step_pipe(False, h2d=True))))
    for th in threads:
        for train, name in ((True, "mel-u8-train"), (False, "mel-u8-eval")):
            what = ("DevicePipeline.train() on a mel-u8 batch: dequantise, gain, shift, mixup (power domain) → "
                    "SpecAugment" if train else "DevicePipeline.eval() on a mel-u8 batch: dequantise only")
            methods.append((name, what + (" (H2D copy of the uint8 batch in every step)" if cuda else ""),
                            0, th, steps(bench.step_mel_u8(train))))
    if cuda:
        methods.append(("device-train-resident", "DevicePipeline.train(), the batch already on the GPU (no copy)", 0,
                        th_max, steps(bench.step_pipe(True, h2d=False))))
        methods.append(("h2d", "the int16 batch + labels copied from pinned memory, non_blocking, alone", 0, th_max,
                        steps(bench.step_h2d)))
    label = ("per-example Dataset: gain, roll, noise at a random SNR, torchaudio MelSpectrogram + AmplitudeToDB, "
             "Frequency/TimeMasking; DataLoader")
    if cuda:
        label += ", then .to(cuda, non_blocking) from pinned memory"
    for w in cfg["baseline_workers"]:
        # workers run with 1 torch thread each (torch's default in DataLoader workers): one entry for them
        for th in threads if w == 0 else [th_max]:
            methods.append(("baseline", label, w, th, lambda w=w: time_loader(bench, w, **timing)))
    return methods


def _measure(methods: list[_Method], repeats: int, batch: int) -> tuple[list[dict[str, Any]], list[dict | None]]:
    """Run the methods round-robin for ``repeats`` rounds: (one result per method, its best run or None)."""
    results = [{"method": n, "label": lab, "workers": w, "threads": th, "runs": [], "load": []}
               for n, lab, w, th, _ in methods]
    best: list[dict[str, Any] | None] = [None] * len(methods)
    for rnd in range(repeats):
        if repeats > 1:
            _log(f"  round {rnd + 1} of {repeats}")
        for k, (name, _lab, w, th, fn) in enumerate(methods):
            gc.collect()
            torch.set_num_threads(th)
            results[k]["load"].append(load1())
            try:
                r = fn()
            except Exception as exc:  # one broken method must not lose the others
                results[k]["error"] = f"{type(exc).__name__}: {exc}"
                _log(f"  {name:<22} {_procs(w):<6} {th:>2} thr ERROR {results[k]['error']}")
                continue
            rate = r["steps"] * batch / r["seconds"]
            results[k]["runs"].append(round(rate, 2))
            if best[k] is None or rate > best[k]["steps"] * batch / best[k]["seconds"]:  # type: ignore[index]
                best[k] = r
            ms = 1e3 * r["seconds"] / r["steps"]
            _log(f"  {name:<22} {_procs(w):<6} {th:>2} thr {rate:>10.1f} clips/s {ms:>9.2f} ms/batch  "
                 f"({r['steps']} batches, load {results[k]['load'][-1]})")
    return results, best


def _summarise(results: list[dict[str, Any]], best: list[dict | None], batch: int) -> None:
    """Write each method's best run (clips/s, ms per batch, GPU time, start-up) into its result."""
    for res, b in zip(results, best):
        if b is None:
            res.setdefault("error", "no run finished")
            continue
        res.update(steps=b["steps"], seconds=round(b["seconds"], 4),
                   clips_per_s=round(b["steps"] * batch / b["seconds"], 2),
                   ms_per_batch=round(1e3 * b["seconds"] / b["steps"], 3))
        if "gpu_seconds" in b:
            res["gpu_ms_per_batch"] = round(1e3 * b["gpu_seconds"] / b["steps"], 3)
        if "startup_s" in b:
            res["startup_s"] = round(b["startup_s"], 3)
            res["shape"] = b["shape"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every method on one synthetic batch; the results document (``device-<device>.json``)."""
    device = resolve_device(args.device)
    cfg = _config(args, device)
    doc: dict[str, Any] = {
        "schema": SCHEMA, "kind": "device-stage",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.device " + " ".join(args.argv),
        "config": cfg, "machine": machine(), "device": device_info(device), "load": {"start": load1()},
    }
    m, d = doc["machine"], doc["device"]
    _log(f"device: {d['name']}; host {m['cpu_model']}, {m['cpus_usable']} usable cores, torch "
         f"{m['versions']['torch']} (torchaudio {m['versions']['torchaudio']}), torch threads {cfg['threads']}; "
         f"load {doc['load']['start']}")
    _log(f"batch {cfg['batch']} × {cfg['clip_seconds']:g} s at {cfg['mel']['sample_rate']} Hz; {cfg['repeats']} "
         f"round(s) of ≥{cfg['seconds']:g} s per method")
    bench = Bench(device, cfg["batch"], cfg["samples"], MelConfig())
    results, best = _measure(_methods(bench, cfg), cfg["repeats"], cfg["batch"])
    _summarise(results, best, cfg["batch"])
    torch.set_num_threads(max(cfg["threads"]))
    doc["results"] = results
    doc["ratios"] = ratios(results)
    if device.type == "cuda":
        mem_batches = tuple(b for b in MEMORY_BATCHES if b <= 4 * cfg["batch"]) if cfg["quick"] else MEMORY_BATCHES
        _log("gpu memory: one forward per batch size ...")
        doc["gpu_memory"] = gpu_memory(bench, mem_batches)
    doc["load"]["end"] = load1()
    return doc


def save(doc: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    dev = doc["config"]["device"]
    jpath = out / f"device-{dev}.json"
    jpath.write_text(json.dumps(doc, indent=1) + "\n")
    mpath = out / f"device-{dev}.md"
    mpath.write_text(device_markdown([doc]))
    return jpath, mpath


def render_docs(results_dir: Path = RESULTS_DIR, page: Path = DOCS_PAGE) -> Path:
    """Re-render the docs page from every committed ``benchmarks/results/device-*.json``."""
    docs = load_device_results(results_dir)
    page.write_text(device_markdown(docs))
    return page


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.device", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="default auto (cuda if there)")
    ap.add_argument("--quick", action="store_true", help="tiny batch (8 × 1 s), short timings: a smoke run")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder (default bench-out/)")
    ap.add_argument("--threads", help="torch.set_num_threads values for the in-process methods, comma separated "
                    "(default on CPU: 1 and every usable core; on CUDA: every usable core)")
    ap.add_argument("--batch", type=int, help="clips per batch (default 64; quick 8)")
    ap.add_argument("--clip-seconds", type=float, help="seconds per clip (default 5; quick 1)")
    ap.add_argument("--seconds", type=float, help="timed seconds per run of a method (default 3; quick 0.2)")
    ap.add_argument("--repeats", type=int, help="rounds, best run reported (default 3; quick 1)")
    ap.add_argument("--workers", default="0,2", help="baseline DataLoader num_workers, comma separated (default 0,2)")
    ap.add_argument("--save", action="store_true", help="also write benchmarks/results/device-<device>.json and "
                    "re-render docs/benchmarks-device.md")
    ap.add_argument("--render", action="store_true", help="measure nothing: re-render docs/benchmarks-device.md "
                    "from benchmarks/results/")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.render:
        _log(f"rendered {render_docs()}")
        return 0
    doc = run(args)
    jpath, mpath = save(doc, args.out)
    _log("")
    _log(device_text(doc))
    _log("")
    _log(f"results: {jpath}; table: {mpath}")
    if args.save:
        if doc["config"]["quick"]:
            _log("--save ignored for --quick runs (their figures are not meaningful)")
        else:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            (RESULTS_DIR / jpath.name).write_text(jpath.read_text())
            _log(f"saved {RESULTS_DIR / jpath.name}; rendered {render_docs()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
