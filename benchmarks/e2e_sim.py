"""The seed's yardstick without a GPU: the end-to-end pipelines feeding a *simulated* accelerator.

    python -m benchmarks.e2e --device sim [--step-ms 10,25,50,100] [--host-ms 3] [--runs 3] [--quick]

The same pipelines, corpus and epochs as the real end-to-end benchmark (:mod:`benchmarks.e2e_pipelines`,
:mod:`benchmarks.e2e_data`), pinned to 2 cores, but the model is replaced by :class:`SimAccelerator`.
Per training step the main process

1. takes the next batch from a :class:`PinThread` (the *wait*): as ``DataLoader(pin_memory=True)`` on
   CUDA, a thread of the main process receives each batch from the workers (unpickling it) and copies
   it into new host memory; everything the workers and that thread do is real host work on the 2 cores,
2. spends ``stage_host_ms`` of its own CPU time: the kernel launches of the pipeline's device stage
   (the mel of the seed's cures, shardkit's ``DevicePipeline``), counted as the stage's aten ops on the
   first real batch × ``--launch-us`` (default 10 µs, what a small op costs here on the host),
3. spends ``--host-ms`` of its own CPU time (a busy loop on the thread's CPU clock): the model step's
   kernel launches,
4. sleeps ``step_ms`` (releasing the GIL and the core): the accelerator computing the model step *and*
   the device stage.

So the device stage's arithmetic is not run in the timed steps: on an accelerator it is device time,
which ``step_ms`` stands for; only its launches cost host CPU. It does run once, for real, on the CPU
on the first batch of each pipeline (to count its ops and check the model input's shape).

Figures per (pipeline, step time): steps/s, **busy** = ideal step / measured step, where ideal =
``host_ms + stage_host_ms + step_ms`` (the same pipeline with its data always ready; 1.0 = never waits
for data), the share of wall time blocked in ``next(loader)``, and the first-batch latency (workers
starting → first batch, once per pipeline and run). ``ceiling`` has no loader: its busy figure shows
what the simulator itself loses (sleep overshoot, the machine's load).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.e2e_pipelines import Pipeline

#: host CPU per kernel launch of the device stage (µs); see docs/benchmarks-e2e.md
LAUNCH_US = 10.0
#: host CPU per model step (ms): EfficientNet-B0's frozen-backbone step launches ~330 ops; see the doc
HOST_MS = 3.0


class _CountOps(TorchDispatchMode):
    """Counts the aten ops dispatched inside it (≈ the kernels a GPU would be asked to run)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def spin_cpu(ms: float) -> None:
    """Hold the GIL and one core until this thread has used ``ms`` of CPU time (not wall time: on a
    loaded machine the launches take longer, as real ones would)."""
    end = time.thread_time() + ms / 1e3
    while time.thread_time() < end:
        pass


class SimAccelerator:
    """One training step: ``host_ms`` of host CPU (launches), then ``step_ms`` of sleep (the device)."""

    def __init__(self, step_ms: float, host_ms: float) -> None:
        self.step_ms, self.host_ms = step_ms, host_ms
        self.spin_s = self.sleep_s = 0.0  #: wall time spent launching and sleeping (the loss of each)

    def step(self, stage_host_ms: float = 0.0) -> None:
        t0 = time.perf_counter()
        spin_cpu(self.host_ms + stage_host_ms)
        t1 = time.perf_counter()
        time.sleep(self.step_ms / 1e3)
        self.spin_s += t1 - t0
        self.sleep_s += time.perf_counter() - t1


def _pinned(batch: Any) -> Any:
    """A batch's tensors copied into fresh host memory (what ``Tensor.pin_memory()`` does, but pageable)."""
    if isinstance(batch, torch.Tensor):
        return torch.empty_like(batch).copy_(batch)
    if isinstance(batch, dict):
        return {k: _pinned(v) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_pinned(v) for v in batch)
    return batch


class PinThread:
    """``DataLoader(pin_memory=True)`` as it runs on a CUDA machine, without CUDA: a thread takes each
    batch from the workers (the unpickling and slot mapping happen there, as in torch's ``pt_data_pin``
    thread) and copies its tensors into new host memory (the pinning copy); the training thread takes
    the batch from a queue. torch's pin thread holds no more batches than the workers sent; this one
    holds at most :data:`DEPTH` beyond them (torch cannot pin here: it asks for the NVIDIA driver)."""

    DEPTH = 3

    def __init__(self, gen: Iterator[Any]) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=self.DEPTH)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(gen,), name="sim_pin", daemon=True)
        self.thread.start()

    def _run(self, gen: Iterator[Any]) -> None:
        torch.set_num_threads(1)  # as torch's pin thread: the copy must not take every core
        try:
            for batch in gen:
                item = _pinned(batch)
                del batch
                while not self.stop.is_set():
                    try:
                        self.q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
            self.q.put(StopIteration())
        except Exception as exc:  # handed to the training thread
            self.q.put(exc)

    def __iter__(self) -> PinThread:
        return self

    def __next__(self) -> Any:
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(queue.Empty):
            self.q.get_nowait()
        self.thread.join(timeout=5)


def host_batches(pipe: Pipeline) -> Iterator[Any]:
    """``pipe``'s batches as the training thread gets them: through a :class:`PinThread` when it has a
    DataLoader (the ceiling's batches are already on the device)."""
    gen = pipe.batches()
    return gen if pipe.name == "ceiling" else PinThread(gen)


def stage_ops(pipe: Pipeline, host_batch: Any) -> tuple[int, list[int]]:
    """Run ``pipe``'s device stage once for real on the CPU: (aten ops it dispatched, model input shape).
    The mel front end's CPU-only chunking (a few clips at a time, for the caches) is off while counting:
    on a GPU the whole batch is one STFT, and the count is what a GPU would be asked to launch."""
    if pipe.name == "ceiling":
        return 0, list(host_batch[0].shape)
    from shardkit.device import frontend

    chunk, frontend.CPU_CHUNK = frontend.CPU_CHUNK, 1 << 30  # a GPU takes the batch's STFT whole
    try:
        with _CountOps() as count:
            mel, _ = pipe.stage(pipe.copy(host_batch))
    finally:
        frontend.CPU_CHUNK = chunk
    # seed-ogg has no device stage: its stage() returns the batch as it came (a view op or none)
    return (count.ops if pipe.name != "seed-ogg" else 0), list(mel.shape)


def _timed(pipe: Pipeline, gen: Any, acc: SimAccelerator, stage_ms: float, *, seconds: float,
           min_steps: int) -> dict[str, float]:
    wait = 0.0
    steps = 0
    acc.spin_s = acc.sleep_s = 0.0
    t0 = time.perf_counter()
    while True:
        tw = time.perf_counter()
        pipe.copy(next(gen))
        wait += time.perf_counter() - tw
        acc.step(stage_ms)
        steps += 1
        if steps >= min_steps and time.perf_counter() - t0 >= seconds:
            break
    return {"steps": steps, "seconds": time.perf_counter() - t0, "wait_s": wait, "spin_s": acc.spin_s,
            "sleep_s": acc.sleep_s}


def run_pipeline(pipe: Pipeline, *, step_ms: list[float], host_ms: float, launch_us: float, warmup: int,
                 seconds: float, min_steps: int, count_epoch: bool) -> list[dict[str, Any]]:
    """Feed the simulated accelerator from ``pipe`` at every step time (one set of workers for all of them).

    Untimed first: ``warmup`` steps and as many batches again as the workers prefetch (2 per worker), so
    the first timed span does not start on a full queue; the step times then run shortest first, so the
    queue a span starts with is never fuller than a steady state at that step time leaves it.
    ``count_epoch``: if no epoch finished, the rest of epoch 0 is read so its clips are counted.
    """
    gen = host_batches(pipe)
    t0 = time.perf_counter()
    first = next(gen)
    first_batch = time.perf_counter() - t0
    ops, shape = stage_ops(pipe, first)
    stage_ms = ops * launch_us / 1e3
    rows = []
    for k, ms in enumerate(sorted(step_ms)):
        acc = SimAccelerator(ms, host_ms)
        for _ in range(warmup + 2 * pipe.workers if k == 0 else 0):
            pipe.copy(next(gen))
            acc.step(stage_ms)
        t = _timed(pipe, gen, acc, stage_ms, seconds=seconds, min_steps=min_steps)
        actual = 1e3 * t["seconds"] / t["steps"]
        ideal = host_ms + stage_ms + ms
        rows.append({"step_ms": ms, "steps": t["steps"], "seconds": round(t["seconds"], 3),
                     "ms_per_step": round(actual, 3), "ideal_ms": round(ideal, 3),
                     "steps_per_s": round(t["steps"] / t["seconds"], 3), "busy": round(ideal / actual, 4),
                     "wait_share": round(t["wait_s"] / t["seconds"], 4),
                     # the rest of the loss: launches taking longer in wall time than their CPU time (the
                     # host's cores busy elsewhere) and sleeps overshooting; what is left is the loop itself
                     "launch_excess_share": round((t["spin_s"] - t["steps"] * (host_ms + stage_ms) / 1e3)
                                                  / t["seconds"], 4),
                     "sleep_excess_share": round((t["sleep_s"] - t["steps"] * ms / 1e3) / t["seconds"], 4)})
    if count_epoch:
        while not pipe.epoch_clips:
            next(gen)
    common = {"first_batch_s": round(first_batch, 4), "stage_ops": ops, "stage_host_ms": round(stage_ms, 3),
              "model_input": shape, "clips_per_epoch": pipe.steps_per_epoch() * pipe.batch,
              "epoch_clips_counted": pipe.epoch_clips[0] if pipe.epoch_clips else None}
    return [{**r, **common} for r in rows]


def busy_range(doc: dict, pipeline: str, step_ms: float) -> tuple[float, float] | None:
    """(min, max) busy of ``pipeline`` at ``step_ms`` over the document's runs; None if never measured."""
    vals = [r["busy"] for run in doc["runs"] for r in run["results"]
            if r["pipeline"] == pipeline and r.get("step_ms") == step_ms and "busy" in r]
    return (min(vals), max(vals)) if vals else None


def field_range(doc: dict, pipeline: str, step_ms: float | None, key: str) -> tuple[float, float] | None:
    """(min, max) of ``key`` for ``pipeline`` (at ``step_ms``, or any step time if None) over the runs."""
    vals = [r[key] for run in doc["runs"] for r in run["results"] if r["pipeline"] == pipeline and key in r
            and (step_ms is None or r.get("step_ms") == step_ms)]
    return (min(vals), max(vals)) if vals else None


def cpu_device() -> torch.device:
    """Where the simulated pipelines keep their tensors (the host: nothing is copied anywhere)."""
    return torch.device("cpu")


# ------------------------------------------------------------------------------------ the run


def sim_config(args: Any) -> dict[str, Any]:
    quick = args.quick
    return {
        "quick": quick, "device": "sim", "batch": args.batch or (4 if quick else 64),
        "clip_seconds": 1.0 if quick else 5.0, "sample_rate": 32000,
        "seconds": args.seconds if args.seconds is not None else (0.0 if quick else 8.0),
        "min_steps": 3 if quick else 5, "warmup": 0 if quick else 3, "count_epoch": quick,
        "step_ms": [float(s) for s in args.step_ms.split(",")], "host_ms": args.host_ms,
        "launch_us": args.launch_us, "runs": args.runs,
        "pipelines": args.pipelines.split(","),
    }


def _resident(prep: Any, cfg: dict) -> list:
    """The ceiling's 'batches already on the device': one zero model input of the right shape."""
    from shardkit.device import MelConfig

    mel = MelConfig()
    frames = 1 + int(cfg["clip_seconds"] * cfg["sample_rate"]) // mel.hop_length
    return [(torch.zeros(cfg["batch"], mel.n_mels, frames), torch.zeros(cfg["batch"], len(prep.classes)))]


def run_round(prep: Any, cfg: dict, noise: list, log: Any) -> list[dict[str, Any]]:
    """One run: every pipeline once (fresh workers), at every step time."""
    from benchmarks.e2e_pipelines import make
    from benchmarks.harness import load1
    from shardkit.device import MelConfig

    rows: list[dict[str, Any]] = []
    for name in cfg["pipelines"]:
        pipe = None
        load = load1()
        try:
            pipe = make(name, cpu_device(), cfg["batch"], prep, MelConfig(), noise, _resident(prep, cfg))
            got = run_pipeline(pipe, step_ms=cfg["step_ms"], host_ms=cfg["host_ms"], launch_us=cfg["launch_us"],
                               warmup=cfg["warmup"], seconds=cfg["seconds"], min_steps=cfg["min_steps"],
                               count_epoch=cfg["count_epoch"])
            rows += [{"pipeline": name, "workers": pipe.workers, "load_before": load, **r} for r in got]
        except Exception as exc:  # one broken pipeline must not lose the others
            rows.append({"pipeline": name, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            if pipe is not None:
                pipe.close()
        for r in rows[-len(cfg["step_ms"]):]:
            log(sim_line(r))
    return rows


def sim_line(r: dict) -> str:
    if "error" in r:
        return f"  {r['pipeline']:<16} ERROR {r['error']}"
    return (f"  {r['pipeline']:<16} step {r['step_ms']:>5g} ms  {r['steps_per_s']:>7.2f} steps/s  busy "
            f"{r['busy']:.3f}  wait {100 * r['wait_share']:5.1f} %  launch +{100 * r['launch_excess_share']:.1f} %  "
            f"sleep +{100 * r['sleep_excess_share']:.1f} %  first batch {r['first_batch_s']:.2f} s  "
            f"stage {r['stage_ops']} ops = {r['stage_host_ms']:.2f} ms host  ({r['steps']} steps)")
