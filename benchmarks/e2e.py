"""End to end: training steps/s of a real image model on 2 CPU cores, fed by the seed's pipelines and shardkit's.

    python -m benchmarks.e2e [--device cuda|cpu|auto] [--quick] [--out DIR] [--save]
    python -m benchmarks.e2e --render        # only re-render docs/benchmarks-e2e.md and docs/e2e.png
    python -m benchmarks.e2e --device sim --step-ms 10,25,50,100 [--host-ms 3] [--runs 3] [--quick] [--save]

``--device sim`` feeds a simulated accelerator instead of training (no GPU needed; :mod:`benchmarks.e2e_sim`):
per step a fixed host CPU time (kernel launches) and a sleep of the step time (the device computing);
busy = ideal / measured step time, per pipeline and step time, ranges over ``--runs``; ``--save`` writes
benchmarks/results/sim-e2e.json and re-renders its section of docs/benchmarks-e2e.md and docs/e2e-sim.png.

The machine as Kaggle has it: the corpus and its packed forms are prepared with every core, then this
process pins itself to the first 2 usable cores (``os.sched_setaffinity``; its DataLoader workers inherit
that) and ``torch.set_num_threads(2)``. The model is torchvision EfficientNet-B0 from random weights on
log-mels (128 mels, 5 s clips at 32 kHz, batch 64; ``--quick``: 1 s clips, batch 4, a 10-file corpus),
AdamW, autocast bf16 (fp16 + GradScaler where bf16 is missing) on CUDA, fp32 on the CPU
(:mod:`benchmarks.e2e_train`). Two cases: the whole model trains, and the frozen backbone (only the head).

Pipelines (:mod:`benchmarks.e2e_pipelines`), one run, the same corpus and model: the seed's start (Ogg +
CPU mel), the seed's cures (presplit WAV + mel on the device), shardkit wav16 and mel-u8 (+
``DevicePipeline``), and the ceiling (the model input already on the device). Every pipeline yields the
same number of clips per epoch (:mod:`benchmarks.e2e_data`).

Figures per (case, pipeline): steps/s, clips/s, device-busy fraction (ceiling step time / step time),
the share of each step the loop waited for data (``next(loader)`` + the copy call), first-batch latency,
peak host RSS and PSS (summed over the process and its workers) and peak device memory. Targets
(reported, never asserted): both shardkit pipelines ≥ 0.95 of the ceiling in both cases, on a GPU.

Writes OUT/e2e-<device>[-quick].json, .md and .png (OUT default bench-out/); ``--save`` also copies the
JSON to benchmarks/results/ and re-renders docs/benchmarks-e2e.md and docs/e2e.png from every
``benchmarks/results/e2e-*.json`` (:mod:`benchmarks.report_e2e`).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import ROOT, _log, machine
from benchmarks.device import device_info, resolve_device
from benchmarks.e2e_data import noise_list, prepare, prepared_dict
from benchmarks.e2e_pipelines import LABELS, PIPELINES, make
from benchmarks.e2e_sim import HOST_MS, LAUNCH_US, run_round, sim_config
from benchmarks.e2e_train import Trainer, run_one
from benchmarks.harness import load1
from benchmarks.report_e2e import e2e_markdown, e2e_text, plot, render_docs, targets
from benchmarks.report_sim import render_sim_docs, sim_targets, sim_text
from shardkit.device import MelConfig

RESULTS_DIR = ROOT / "benchmarks" / "results"
SCHEMA = 1
CASES = ("whole", "frozen")
PIN_CORES = 2


def pin_cores(n: int = PIN_CORES) -> dict[str, Any]:
    """Pin this process (and the workers it will start) to its first ``n`` usable cores."""
    before = sorted(os.sched_getaffinity(0))
    pinned = before[:n]
    os.sched_setaffinity(0, pinned)
    torch.set_num_threads(len(pinned))
    return {"machine_cores": os.cpu_count(), "usable_before": len(before), "pinned_to": pinned,
            "torch_threads": torch.get_num_threads()}


def _config(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    quick = args.quick
    return {
        "quick": quick, "device": device.type, "batch": args.batch or (4 if quick else 64),
        "clip_seconds": 1.0 if quick else 5.0, "sample_rate": 32000, "n_mels": MelConfig().n_mels,
        "seconds": args.seconds if args.seconds is not None else (0.0 if quick else 15.0),
        "min_steps": 3 if quick else 5, "warmup": 0 if quick else 3, "drain_prefetch": not quick,
        "count_epoch": quick, "cases": args.cases.split(","), "pipelines": args.pipelines.split(","),
        "model": "torchvision efficientnet_b0(weights=None), input repeated to 3 channels",
        "optimizer": "AdamW lr 1e-3", "loss": "BCEWithLogits", "cudnn_benchmark": device.type == "cuda",
    }


def _resident_fallback(prep, cfg: dict, device: torch.device) -> list:
    """Model input for the ceiling when shardkit-wav16 did not run: random log-mels of the same shape."""
    frames = 1 + int(cfg["clip_seconds"] * cfg["sample_rate"]) // MelConfig().hop_length
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(cfg["batch"], cfg["n_mels"], frames, generator=g).to(device) * 20 - 40,
             torch.zeros(cfg["batch"], len(prep.classes)).to(device)) for _ in range(4)]


def _run_case(case: str, prep, cfg: dict, device: torch.device, noise: list, resident: list) -> list[dict]:
    rows = []
    mel = MelConfig()
    for name in cfg["pipelines"]:
        if name == "ceiling" and not resident:
            resident.extend(_resident_fallback(prep, cfg, device))
        row: dict[str, Any] = {"case": case, "pipeline": name, "label": LABELS[name], "load_before": load1()}
        pipe = None
        try:
            pipe = make(name, device, cfg["batch"], prep, mel, noise, resident)
            trainer = Trainer(len(prep.classes), device, frozen=case == "frozen")
            row.update(workers=pipe.workers, precision=trainer.precision, trainable_params=trainer.trainable)
            capture = resident if name == "shardkit-wav16" and not resident else None
            row.update(run_one(pipe, trainer, warmup=cfg["warmup"], seconds=cfg["seconds"],
                               min_steps=cfg["min_steps"], drain_prefetch=cfg["drain_prefetch"],
                               count_epoch=cfg["count_epoch"], capture=capture))
        except Exception as exc:  # one broken pipeline must not lose the others
            row["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if pipe is not None:
                pipe.close()
            trainer = pipe = None
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        _log(_line(row))
        rows.append(row)
    return rows


def _line(r: dict) -> str:
    if "error" in r:
        return f"  {r['case']:<6} {r['pipeline']:<16} ERROR {r['error']}"
    return (f"  {r['case']:<6} {r['pipeline']:<16} {r['steps_per_s']:>7.3f} steps/s {r['clips_per_s']:>8.1f} clips/s"
            f"  wait {100 * r['wait_share']:>5.1f} %  first batch {r['first_batch_s']:.2f} s  "
            f"host PSS {r['peak_host_pss_mb']:.0f} MB  ({r['steps']} steps, epoch {r['clips_per_epoch']} clips)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the data (all cores), pin to 2 cores, time every (case, pipeline); the results document."""
    device = resolve_device(args.device)
    cfg = _config(args, device)
    mach = machine()
    prep = prepare(args.out, quick=cfg["quick"], clip_seconds=cfg["clip_seconds"],
                   workers=max(1, len(os.sched_getaffinity(0))), log=_log)
    pinning = pin_cores()
    torch.backends.cudnn.benchmark = device.type == "cuda"
    doc: dict[str, Any] = {
        "schema": SCHEMA, "kind": "e2e",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.e2e " + " ".join(args.argv), "config": cfg, "machine": mach,
        "pinning": pinning, "device": device_info(device), "data": prepared_dict(prep), "load": {"start": load1()},
    }
    mach["versions"]["torchvision"] = _torchvision_version()
    _log(f"e2e on {doc['device']['name']}: pinned to cores {pinning['pinned_to']} of {pinning['machine_cores']}; "
         f"batch {cfg['batch']} × {cfg['clip_seconds']:g} s, epoch {prep.epoch_items} clips "
         f"({prep.recordings} recordings × {prep.crops} crops); load {doc['load']['start']}")
    noise = noise_list()
    resident: list = []
    rows: list[dict] = []
    for case in cfg["cases"]:
        rows += _run_case(case, prep, cfg, device, noise, resident)
    doc["results"] = rows
    doc["load"]["end"] = load1()
    doc["targets"] = targets(doc)
    return doc


def run_sim(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the data (all cores), pin to 2 cores, feed the simulated accelerator ``--runs`` times."""
    cfg = sim_config(args)
    mach = machine()
    prep = prepare(args.out, quick=cfg["quick"], clip_seconds=cfg["clip_seconds"],
                   workers=max(1, len(os.sched_getaffinity(0))), log=_log)
    pinning = pin_cores()
    doc: dict[str, Any] = {
        "schema": SCHEMA, "kind": "e2e-sim",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.e2e " + " ".join(args.argv), "config": cfg, "machine": mach,
        "pinning": pinning, "device": device_info(torch.device("cpu")), "data": prepared_dict(prep),
        "load": {"start": load1()}, "runs": [],
    }
    _log(f"e2e sim: pinned to cores {pinning['pinned_to']} of {pinning['machine_cores']}; batch {cfg['batch']} × "
         f"{cfg['clip_seconds']:g} s, epoch {prep.epoch_items} clips; step {cfg['step_ms']} ms + host "
         f"{cfg['host_ms']:g} ms; load {doc['load']['start']}")
    noise = noise_list()
    for k in range(cfg["runs"]):
        _log(f"run {k + 1} of {cfg['runs']} (load {load1()})")
        doc["runs"].append({"load_start": load1(), "results": run_round(prep, cfg, noise, _log)})
        gc.collect()
    doc["load"]["end"] = load1()
    doc["targets"] = sim_targets(doc)
    return doc


def _sim_main(args: argparse.Namespace) -> int:
    doc = run_sim(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "sim-e2e" + ("-quick" if doc["config"]["quick"] else "") + ".json"
    (args.out / name).write_text(json.dumps(doc, indent=1) + "\n")
    _log("")
    _log(sim_text(doc))
    _log(f"results: {args.out / name}")
    if args.save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / name).write_text(json.dumps(doc, indent=1) + "\n")
        _log(f"saved {RESULTS_DIR / name}; rendered {', '.join(map(str, render_sim_docs(RESULTS_DIR)))}")
    return 0


def _torchvision_version() -> str:
    try:
        import torchvision
    except ImportError:
        return "not installed"
    return torchvision.__version__


def save(doc: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"e2e-{doc['config']['device']}" + ("-quick" if doc["config"]["quick"] else "")
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(doc, indent=1) + "\n")
    paths["md"].write_text(e2e_markdown([doc], plot_name=paths["png"].name))
    plot(doc, paths["png"])
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto", "sim"),
                    help="default auto (cuda if there); sim: the simulated accelerator")
    ap.add_argument("--quick", action="store_true", help="tiny corpus, 1 s clips, batch 4, 3 timed steps: a smoke run")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder (default bench-out/)")
    ap.add_argument("--batch", type=int, help="clips per batch (default 64; quick 4)")
    ap.add_argument("--seconds", type=float, help="timed seconds per run, at least (default 15; quick 0)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma separated: whole, frozen")
    ap.add_argument("--pipelines", default=",".join(PIPELINES), help=f"comma separated of {', '.join(PIPELINES)}")
    ap.add_argument("--save", action="store_true", help="also copy the JSON to benchmarks/results/ and re-render "
                    "docs/benchmarks-e2e.md and docs/e2e.png")
    ap.add_argument("--render", action="store_true", help="measure nothing: re-render the docs from "
                    "benchmarks/results/e2e-*.json")
    sim = ap.add_argument_group("--device sim")
    sim.add_argument("--step-ms", default="10,25,50,100", help="device time per step, ms, comma separated")
    sim.add_argument("--host-ms", type=float, default=HOST_MS, help=f"host CPU per model step (kernel launches), "
                     f"ms (default {HOST_MS:g}: see docs/benchmarks-e2e.md)")
    sim.add_argument("--launch-us", type=float, default=LAUNCH_US, help="host CPU per device-stage op, µs "
                     f"(default {LAUNCH_US:g})")
    sim.add_argument("--runs", type=int, default=3, help="runs (every pipeline, every step time; default 3)")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.render:
        _log(f"rendered {', '.join(map(str, render_docs(RESULTS_DIR) + render_sim_docs(RESULTS_DIR)))}")
        return 0
    bad = sorted(set(args.pipelines.split(",")) - set(PIPELINES)) + sorted(set(args.cases.split(",")) - set(CASES))
    if bad:
        raise SystemExit(f"unknown pipeline or case: {', '.join(bad)}")
    if args.device == "sim":
        return _sim_main(args)
    doc = run(args)
    paths = save(doc, args.out)
    _log("")
    _log(e2e_text(doc))
    _log(f"results: {paths['json']}; table: {paths['md']}; plot: {paths['png']}")
    if args.save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / paths["json"].name).write_text(paths["json"].read_text())
        _log(f"saved {RESULTS_DIR / paths['json'].name}; rendered {', '.join(map(str, render_docs(RESULTS_DIR)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
