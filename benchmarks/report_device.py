"""The device-stage report: ratios against the baseline, the terminal table, docs/benchmarks-device.md and the
"Device stage" section of docs/benchmarks.md, rendered from the committed results of
``python -m benchmarks.device --save`` in benchmarks/results/."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import _fmt, _md_table, _procs

#: committed device-stage results, one JSON per device type (``python -m benchmarks.device --save``)
DEVICE_RESULTS = Path(__file__).resolve().parent / "results"


def load_device_results(folder: Path = DEVICE_RESULTS) -> list[dict]:
    """The committed device-stage results (``device-*.json``), CPU first; [] when there are none."""
    if not folder.is_dir():
        return []
    docs = [json.loads(p.read_text()) for p in sorted(folder.glob("device-*.json"))]
    return sorted(docs, key=lambda d: (d["config"]["device"] != "cpu", d["config"]["device"]))


def best_device_result(results: list[dict], method: str, workers: int = 0) -> dict | None:
    """The fastest finished entry of ``method`` with ``workers`` over the thread counts tried; None if none."""
    ok = [r for r in results if r["method"] == method and r["workers"] == workers and "clips_per_s" in r]
    return max(ok, key=lambda r: r["clips_per_s"]) if ok else None


def ratios(results: list[dict]) -> dict[str, float | None]:
    """device-train and device-eval clips/s over each baseline's clips/s (same run, same batch shape), each side at
    its best thread count."""
    out: dict[str, float | None] = {}
    for name in ("device-train", "device-eval"):
        mine = best_device_result(results, name)
        for w in sorted({r["workers"] for r in results if r["method"] == "baseline"}):
            base = best_device_result(results, "baseline", w)
            key = f"{name}/baseline-{_procs(w).replace('×', 'x').replace(' ', '')}"
            ok = mine is not None and base is not None and base["clips_per_s"] > 0
            out[key] = round(mine["clips_per_s"] / base["clips_per_s"], 2) if ok else None  # type: ignore[index]
    return out


def _dev_find(doc: dict, method: str, workers: int = 0) -> dict | None:
    return best_device_result(doc["results"], method, workers)


def _dev_name(doc: dict) -> str:
    d = doc["device"]
    if d["type"] == "cuda":
        return f"{d['name']} (CUDA {d.get('cuda')}, {d.get('memory_gib')} GiB)"
    return f"CPU: {d['name']}, {doc['machine']['cpus_usable']} cores"


def _clips(r: dict | None, *, threads: bool = True) -> str:
    if r is None:
        return "–"
    return f"{r['clips_per_s']:,.0f}" + (f" ({r['threads']} thr)" if threads and r["workers"] == 0 else "")


def _mem(doc: dict, mode: str, batch: int) -> dict | None:
    for row in doc.get("gpu_memory", []):
        if row["mode"] == mode and row["batch"] == batch and "peak_allocated_mb" in row:
            return row
    return None


def device_summary_rows(docs: list[dict]) -> list[list[str]]:
    rows = []
    for doc in docs:
        cfg = doc["config"]
        train, evl = _dev_find(doc, "device-train"), _dev_find(doc, "device-eval")
        b0, b2 = _dev_find(doc, "baseline", 0), _dev_find(doc, "baseline", 2)
        mem = _mem(doc, "train", cfg["batch"])
        rows.append([
            _dev_name(doc), str(doc["machine"]["versions"].get("torch")),
            f"{cfg['batch']} × {cfg['clip_seconds']:g} s", _clips(train), _clips(evl), _clips(b0),
            _clips(b2, threads=False),
            _fmt(doc["ratios"].get("device-train/baseline-DLx2"), "{:.1f}×"),
            "–" if mem is None else f"{mem['peak_allocated_mb']:,.0f} MB ({mem['peak_reserved_mb']:,.0f} reserved)",
        ])
    return rows


DEVICE_SUMMARY_HEADER = ["device", "torch", "batch", "train clips/s", "eval clips/s", "baseline 1 proc",
                         "baseline DL×2", "train ÷ baseline DL×2", "GPU peak, train forward"]


def device_section(docs: list[dict]) -> list[str]:
    """The "Device stage" section of docs/benchmarks.md: a summary of the committed results and a link."""
    lines = ["## Device stage", "",
             "Measured separately (`python -m benchmarks.device --device cpu|cuda --save`; committed in "
             "`benchmarks/results/`, full tables in [benchmarks-device.md](benchmarks-device.md)): int16 batches → "
             "augmented log-mel with `DevicePipeline`, against the per-example torchaudio Dataset baseline.", ""]
    if not docs:
        return [*lines, "(No committed device-stage results yet.)", ""]
    return [*lines, _md_table(DEVICE_SUMMARY_HEADER, device_summary_rows(docs)), ""]


def device_rows(doc: dict) -> list[list[str]]:
    b2 = _dev_find(doc, "baseline", 2)
    rows = []
    for r in doc["results"]:
        if "clips_per_s" not in r:
            rows.append([r["method"], _procs(r["workers"]), _threads(r), "error", "", "", "", r.get("error", "")])
            continue
        rows.append([r["method"], _procs(r["workers"]), _threads(r), f"{r['clips_per_s']:,.1f}",
                     f"{r['ms_per_batch']:,.2f}",
                     _fmt(r.get("gpu_ms_per_batch")),
                     _fmt(r["clips_per_s"] / b2["clips_per_s"] if b2 and r["method"] != "h2d" else None, "{:.2f}"),
                     " / ".join(f"{v:,.0f}" for v in r["runs"]), r["label"]])
    return rows


def _threads(r: dict) -> str:
    return str(r["threads"]) if r["workers"] == 0 else "1 per worker"


DEVICE_HEADER = ["method", "procs", "threads", "clips/s", "ms/batch", "GPU ms/batch", "× baseline DL×2",
                 "every round's clips/s", "what"]


def device_text(doc: dict) -> str:
    """The results table of one device run as plain text (for the terminal)."""
    rows = [DEVICE_HEADER, *device_rows(doc)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(DEVICE_HEADER) - 1)]
    lines = [_dev_name(doc) + f"; batch {doc['config']['batch']} × {doc['config']['clip_seconds']:g} s"]
    for k, r in enumerate(rows):
        cells = [r[i].rjust(widths[i]) if i >= 3 else r[i].ljust(widths[i]) for i in range(len(DEVICE_HEADER) - 1)]
        lines.append("  ".join(cells) + "  " + r[-1][:80])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 20)
    for key, val in doc["ratios"].items():
        lines.append(f"{key}: {_fmt(val)}")
    for row in doc.get("gpu_memory", []):
        if "error" in row:
            lines.append(f"GPU memory, {row['mode']} batch {row['batch']}: {row['error']}")
        else:
            lines.append(f"GPU memory, {row['mode']:<5} batch {row['batch']:>3}: peak allocated "
                         f"{row['peak_allocated_mb']:,.0f} MB, reserved {row['peak_reserved_mb']:,.0f} MB "
                         f"(static {row['static_mb']:,.0f} MB)")
    return "\n".join(lines)


def _device_run_section(doc: dict) -> list[str]:
    cfg, m, d = doc["config"], doc["machine"], doc["device"]
    v = m["versions"]
    title = f"## {_dev_name(doc)}" + (" — quick mode, figures not meaningful" if cfg["quick"] else "")
    host = (f"{m['cpu_model']}, {m['cpus_usable']} usable cores ({m['cpu_count']} online), {m['mem_total_gib']} GiB "
            f"RAM, {m['os']}")
    lines = [
        title, "",
        f"- Device: {d['name']}" + (f", compute capability {d.get('capability')}, {d.get('multiprocessors')} SMs, "
                                    f"{d.get('memory_gib')} GiB" if d["type"] == "cuda" else "") + f". Host: {host}.",
        f"- Software: Python {m['python']}, torch {v.get('torch')}, torchaudio {v.get('torchaudio')}, numpy "
        f"{v.get('numpy')}, shardkit {v.get('shardkit')}.",
        f"- torch threads (`torch.set_num_threads`) of the measuring process, per entry: "
        f"{', '.join(map(str, cfg['threads']))} (interop {cfg['interop_threads']}); DataLoader workers run with "
        "torch's default of 1 thread each. Ratios and the summary take each side at its best thread count.",
        f"- Batch: {cfg['batch']} clips × {cfg['clip_seconds']:g} s, mono int16 at {cfg['mel']['sample_rate']} Hz "
        f"(synthetic tones over noise); labels float32 ({cfg['batch']}, {cfg['classes']}); noise bank "
        f"{cfg['noise_bank_seconds']:g} s of synthetic pink noise.",
        f"- Timing: {cfg['warmup']} warm-up steps, then ≥ {cfg['seconds']:g} s per run; best of {cfg['repeats']} "
        f"round-robin rounds. Load average (1 min) at start / end: {doc['load']['start']} / {doc['load']['end']}.",
        f"- Run: `{doc['command']}` on {doc['created']}.",
        "",
        _md_table(DEVICE_HEADER, device_rows(doc)),
        "",
        _md_table(["ratio", "value"], [[k, _fmt(val)] for k, val in doc["ratios"].items()]),
        "",
    ]
    mem = [r for r in doc.get("gpu_memory", []) if "peak_allocated_mb" in r]
    if mem:
        lines += [
            "GPU memory of one forward in the steady state of a loop (a fresh module per row, one untimed forward, "
            "then `reset_peak_memory_stats` and one measured forward with the int16 batch copied in inside the "
            "span; `torch.cuda.max_memory_allocated` / `max_memory_reserved`, counted from before the module was "
            "made; static = its buffers and the noise bank; runs before the commit that stopped `AddNoise` "
            "keeping its batch of noise (`last_noise`, B·T·4 bytes) include it in train mode):", "",
            _md_table(["mode", "batch", "peak allocated MB", "peak reserved MB", "static MB", "peak − static MB",
                       "int16 input MB", "log-mel output MB"],
                      [[r["mode"], str(r["batch"]), f"{r['peak_allocated_mb']:,.1f}", f"{r['peak_reserved_mb']:,.1f}",
                        f"{r['static_mb']:,.1f}", f"{r['peak_over_static_mb']:,.1f}", f"{r['input_mb']:,.1f}",
                        f"{r['output_mb']:,.1f}"] for r in mem]),
            "",
        ]
    lines += [f"- GPU memory at batch {r['batch']} ({r['mode']}): {r['error']}"
              for r in doc.get("gpu_memory", []) if "error" in r]
    return lines


def device_markdown(docs: list[dict]) -> str:
    """docs/benchmarks-device.md (every committed run), or one run's own table page."""
    cfg0 = docs[0]["config"] if docs else {"augment": {}}
    a = cfg0["augment"]
    lines = [
        "# Device-stage benchmarks",
        "",
        "<!-- Rendered by `python -m benchmarks.device --save` (or `--render`) from benchmarks/results/device-*.json;"
        " do not edit by hand. -->",
        "",
        "How fast int16 batches become augmented log-mel spectrograms, measured in one run against the common "
        "baseline on the same synthetic batch:",
        "",
        "```",
        "python -m benchmarks.device --device cpu --save     # or --device cuda; --quick for a smoke run",
        "python -m benchmarks.device --render                # re-render this page from benchmarks/results/",
        "```",
        "",
        "- `device-train`: `DevicePipeline(MelConfig(), AugmentConfig(gain_p=0.5, shift_p=0.5, noise_p=0.5, "
        "mixup_p=0.5, spec_p=0.5), noise_bank=NoiseBank(...))` on the whole batch"
        + (f" (SNR {a['noise_snr_db'][0]:g}–{a['noise_snr_db'][1]:g} dB, mixup alpha {a['mixup_alpha']:g}, "
           f"{a['freq_masks']}×{a['freq_width']}-bin and {a['time_masks']}×{a['time_width']}-frame masks)" if a else "")
        + "; on CUDA each step copies the int16 batch and labels from pinned host memory (`non_blocking=True`) and "
        "the clock stops after `torch.cuda.synchronize()`. `device-eval`: the same module in `eval()`, the log-mel "
        "front end only (what validation pays). On CUDA also `device-train-resident` (the batch already on the GPU) "
        "and `h2d` (the copy alone).",
        "- `baseline`: the way a typical Kaggle notebook does it — a `torch.utils.data.Dataset` whose `__getitem__` "
        "takes one clip and applies gain, `torch.roll`, noise at a random SNR, torchaudio `MelSpectrogram` + "
        "`AmplitudeToDB` (same settings) and `FrequencyMasking`/`TimeMasking` (each step with p = 0.5), batched by "
        "a `DataLoader` in-process (`1 proc`) or with 2 workers (`DL×2`); on CUDA the batch is then copied to the "
        "GPU. Both sides take their clips from memory, so only the transform is timed (no reading, no decoding); "
        "the baseline does no mixup, so it does slightly less work. Same output shape: (batch, 128, 313) for 5 s.",
        "- Reading the CPU figures: the whole-batch ops work on tensors far larger than the CPU's caches (the STFT "
        "of 64 × 5 s alone is ~164 MB of complex64, the shift and noise gathers build (B, T) int64 indices), so per "
        "clip they run slower than the same work one clip at a time: the device stage is made for the GPU. On a "
        "shared machine a second torch thread can be many times slower than one (OpenMP threads wait on busy "
        "cores), so the CPU run times both and every round is listed.",
        "",
    ]
    if not docs:
        return "\n".join([*lines, "(No results yet.)", ""])
    lines += ["## Summary", "", _md_table(DEVICE_SUMMARY_HEADER, device_summary_rows(docs)), ""]
    for doc in docs:
        lines += _device_run_section(doc)
    return "\n".join(lines)
