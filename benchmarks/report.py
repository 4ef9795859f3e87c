"""The machine description, the results table, the issue-5 targets, docs/benchmarks.md and the plot; the
device-stage tables (docs/benchmarks-device.md and the "Device stage" section of docs/benchmarks.md), rendered
from the committed results of ``python -m benchmarks.device --save`` in benchmarks/results/."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

#: committed device-stage results, one JSON per device type (``python -m benchmarks.device --save``)
DEVICE_RESULTS = Path(__file__).resolve().parent / "results"

# ------------------------------------------------------------------------------------------ machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return "not installed"
    return str(getattr(mod, "__version__", "installed"))


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    versions = {m: _version(m) for m in ("numpy", "torch", "torchaudio", "torchcodec", "soundfile", "soxr",
                                         "webdataset", "msgpack", "litdata", "streaming", "matplotlib", "psutil")}
    try:
        import soundfile

        versions["libsndfile"] = soundfile.__libsndfile_version__
    except Exception:
        pass
    try:
        import shardkit

        versions["shardkit"] = shardkit.__version__
    except Exception:
        pass
    return {
        "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable,
        "mem_total_gib": _mem_total_gib(), "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0], "versions": versions,
    }


# ------------------------------------------------------------------------------------------ targets


def _find(results: list[dict], method: str, workers: int) -> dict | None:
    for r in results:
        if r["method"] == method and r["workers"] == workers and r["status"] == "ok":
            return r
    return None


def ratios(results: list[dict]) -> dict[str, float | None]:
    """shardkit over the ceiling, the peers and the baselines, at 1 process and with workers."""
    out: dict[str, float | None] = {}

    def ratio(a: dict | None, b: dict | None, key: str = "clips_per_s") -> float | None:
        if a is None or b is None or not b[key]:
            return None
        return round(a[key] / b[key], 4)

    cat = _find(results, "cat", 0)
    workers = sorted({r["workers"] for r in results if r["workers"] > 0})
    for w in [0, *workers]:
        tag = "1proc" if w == 0 else f"{w}workers"
        seg = _find(results, "shardkit-segments", w)
        rec = _find(results, "shardkit-recordings", w)
        out[f"segments/cat_{tag}"] = ratio(seg, cat, "mb_per_s")
        out[f"recordings/cat_{tag}"] = ratio(rec, cat, "mb_per_s")
        out[f"segments/webdataset_{tag}"] = ratio(seg, _find(results, "webdataset", w))
        out[f"segments/webdataset-frombuffer_{tag}"] = ratio(seg, _find(results, "webdataset-frombuffer", w))
        out[f"recordings/segments_{tag}"] = ratio(rec, seg)
        base = [r for r in results if r["group"] == "baseline" and r["workers"] == w and r["status"] == "ok"]
        best = max(base, key=lambda r: r["clips_per_s"], default=None)
        out[f"segments/best-baseline_{tag}"] = ratio(seg, best)
        out[f"best-baseline_{tag}"] = best["method"] if best else None  # type: ignore[assignment]
        for peer in ("litdata", "mosaicml-streaming"):
            out[f"segments/{peer}_{tag}"] = ratio(seg, _find(results, peer, w))
    return out


def targets(doc: dict) -> list[dict[str, Any]]:
    """The issue-5 targets with the figure measured, met or missed (None: not measurable here)."""
    res, rat = doc["results"], doc["ratios"]
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, fmt: str, higher: bool = True, detail: str = "") -> None:
        met = None if value is None else (value >= goal if higher else value <= goal)
        rows.append({"target": name, "value": value, "goal": goal, "met": met,
                     "shown": "n/a" if value is None else fmt.format(value), "detail": detail})

    cat = _find(res, "cat", 0)
    seg = _find(res, "shardkit-segments", 0)
    add("reader ≥ 60 % of the raw byte rate (segments, 1 process)", rat.get("segments/cat_1proc"), 0.60,
        "{:.0%}", detail=(f"{seg['mb_per_s']:.0f} of {cat['mb_per_s']:.0f} MB/s" if seg and cat else ""))
    add("reader ≥ 4× webdataset on the same shards (1 process)", rat.get("segments/webdataset_1proc"), 4.0,
        "{:.2f}×")
    add("reader ≥ 100× the best per-file path (1 process)", rat.get("segments/best-baseline_1proc"), 100.0,
        "{:.0f}×", detail=f"best per-file path: {rat.get('best-baseline_1proc')}")
    add("recordings mode (fresh random crops) ≥ 80 % of segments mode (1 process)",
        rat.get("recordings/segments_1proc"), 0.80, "{:.0%}")
    rss = doc.get("rss", {}).get("shardkit-segments-256MB")
    if rss and "peak_kb" in rss:
        reader_mb = rss["reader_kb"] / 1024
        add("peak RSS ≤ shuffle window + 150 MB (256 MB window; reader's own memory)",
            round(reader_mb, 1), 256 + 150, "{:.0f} MB", higher=False,
            detail=(f"process peak {rss['peak_kb'] / 1024:.0f} MB, of which {rss['rss_imports_kb'] / 1024:.0f} MB "
                    "is the interpreter + import torch/numpy before the reader exists"))
    for mode in ("recordings", "segments"):
        p = doc.get("pack", {}).get(mode)
        if p:
            add(f"pack ({mode}) ≥ 90 % of the pure decode + resample rate", p.get("rate_vs_decode"), 0.90,
                "{:.0%}", detail=f"{p['hours_per_min']:.2f} vs {doc['pack']['decode_floor']['hours_per_min']:.2f} "
                                 "audio h/min")
            add(f"tar + index overhead ({mode}) ≤ 1.5 % over raw PCM bytes", p["tar_index_overhead"], 0.015,
                "{:.2%}", higher=False, detail=f"tar alone {p['tar_overhead']:.2%}")
    return rows


def reader_time(doc: dict) -> list[str]:
    """Where the in-process shardkit reader's time goes (CPU accounting of the timed runs + cProfile)."""
    res = doc["results"]
    cat = _find(res, "cat", 0)
    lines = []
    for name in ("shardkit-segments", "shardkit-recordings"):
        r = _find(res, name, 0)
        if r is None or not r["sys_share"]:
            continue
        in_kernel = r["mb_per_s"] / r["sys_share"] / 1000
        prof = doc.get("profile", {}).get(name, {})
        pread = next((f for f in prof.get("top", []) if "preadv" in f["function"]), None)
        lines.append(
            f"`{name}` (1 process, {r['clips_per_s']:,.0f} clips/s): {r['sys_share']:.0%} of the wall time is system "
            f"time — the kernel copying page-cache pages into the batch inside `os.preadv`, at ≈{in_kernel:.1f} GB/s "
            f"while it does — and {r['user_share']:.0%} user time (Python and numpy per batch: order and crop "
            f"offsets, sorting the reads, one `preadv` call per clip, labels, keys)"
            + (f"; cProfile puts {pread['share']:.0%} of the profiled time in `preadv`" if pread else "") + ".")
    seg = _find(res, "shardkit-segments", 0)
    if cat and seg and seg["sys_share"]:
        batch = doc["config"]["batch"]
        text = (f"`cat` moves {cat['mb_per_s'] / 1000:.1f} GB/s: large sequential reads into one 8 MiB buffer that "
                f"stays in the CPU cache, with no per-clip work. A reader fills a new batch ({batch} × 320 KB = "
                f"{batch * doc['config']['clip_bytes'] / 1e6:.1f} MB) from scattered offsets, one system call per "
                "clip. ")
        if seg["sys_share"] >= 0.6:
            text += (f"Here the kernel's copy dominates ({seg['sys_share']:.0%} of the reader's time): even with no "
                     f"Python at all the reader would reach ≈{seg['mb_per_s'] / seg['sys_share'] / 1000:.1f} GB/s = "
                     f"{seg['mb_per_s'] / seg['sys_share'] / cat['mb_per_s']:.0%} of `cat`; that copy is the bound.")
        else:
            text += (f"Here the per-batch Python/numpy work dominates ({seg['user_share']:.0%} user time): small "
                     "batches or a small corpus make the fixed per-batch and per-epoch costs count.")
        lines.append(text)
    return lines


def bounds(doc: dict) -> list[str]:
    """For every missed target: what bounds it, from this run's own figures."""
    res, rat, out = doc["results"], doc["ratios"], []
    missed = [t["target"] for t in doc["targets"] if t["met"] is False]
    for target in missed:
        if target.startswith("reader ≥ 60 %"):
            seg, cat = _find(res, "shardkit-segments", 0), _find(res, "cat", 0)
            text = f"{target}: " + (f"{seg['mb_per_s']:,.0f} of {cat['mb_per_s']:,.0f} MB/s. " if seg and cat else "")
            if seg and seg["sys_share"]:
                text += (f"{seg['sys_share']:.0%} of the reader's time is the kernel's page-cache copy into the batch "
                         f"(≈{seg['mb_per_s'] / seg['sys_share'] / 1000:.1f} GB/s inside preadv); the "
                         f"{seg['user_share']:.0%} user time is the most Python-side work could win back.")
            text += (" Tried on this machine and not adopted: mmap of the shards + a numpy copy runs at ~1.4× "
                     "preadv (past cat) but only while every page stays mapped, so the reader's RSS grows to the "
                     "whole shard set and a shard truncated under a running reader kills the process with SIGBUS "
                     "instead of raising an error; with the mappings dropped every epoch it is no faster than "
                     "preadv. Reusing batch memory instead of fresh pages, and transparent huge pages for it, "
                     "gained nothing measurable.")
            out.append(text)
        elif target.startswith("reader ≥ 4× webdataset"):
            out.append(f"{target}: measured {rat.get('segments/webdataset_1proc')}×; see the profile below.")
        elif target.startswith("reader ≥ 100×"):
            out.append(f"{target}: measured {rat.get('segments/best-baseline_1proc')}× over "
                       f"{rat.get('best-baseline_1proc')}.")
        elif target.startswith("recordings mode"):
            rec = _find(res, "shardkit-recordings", 0)
            out.append(f"{target}: {rat.get('recordings/segments_1proc')}; recordings mode reads the same bytes "
                       "per clip, so the difference is per-epoch set-up (plan, order, crop offsets) over an epoch of "
                       f"only {doc['pack']['recordings']['samples']} recordings"
                       + (f" ({rec['clips_per_s']:,.0f} clips/s)" if rec else "") + ".")
        elif target.startswith("peak RSS"):
            out.append(f"{target}: see the memory table.")
        elif target.startswith("pack ("):
            mode = target.split("(")[1].split(")")[0]
            p, fl = doc["pack"][mode], doc["pack"]["decode_floor"]
            cores = doc["machine"]["cpus_usable"]
            extra_workers = p["workers_cpu_s"] - fl["workers_cpu_s"]
            out.append(
                f"{target}: {p['elapsed_s']:.1f} s against the floor's {fl['elapsed_s']:.1f} s. The decode workers "
                f"used {p['workers_cpu_s']:.1f} CPU s (the floor's {fl['workers_cpu_s']:.1f} s: "
                f"{extra_workers:+.1f} s: spawned workers importing numpy, soundfile, soxr and shardkit, the "
                f"truncation check, WAV and msgpack encoding, CRC-32 of every member, and handing the PCM over in "
                f"spill files) and the main process {p['main_cpu_s']:.1f} CPU s (tar headers, writing and "
                f"sha256 of every shard in a writer thread, fsync). On "
                f"{cores} cores all of it shares the CPUs the floor had to itself: "
                f"({p['workers_cpu_s']:.1f} + {p['main_cpu_s']:.1f}) / {cores} = "
                f"{(p['workers_cpu_s'] + p['main_cpu_s']) / cores:.1f} s is the least wall time this pack can take. "
                "The part no packer can skip (writing the shards, their sha256, a CRC per member) is ~1.3 CPU s "
                "per 3.3 h of audio here, ~10 % of the floor's CPU: with 2 workers on 2 cores that alone caps "
                "pack near 0.9× the floor. With 1 worker (the main process writes on the other core) pack "
                "measured 0.92–0.97× the 1-process floor.")
        elif target.startswith("tar + index overhead"):
            mode = target.split("(")[1].split(")")[0]
            p = doc["pack"][mode]
            per = (p["shard_bytes"] + p["index_bytes"] - p["pcm_bytes"]) / max(1, p["samples"])
            out.append(f"{target}: {per:,.0f} bytes per sample (tar headers, 512-byte padding, WAV header, msgpack "
                       "member, index row) against the sample's PCM.")
    return out


# -------------------------------------------------------------------------------------------- table


def _fmt(x: float | None, spec: str = "{:.2f}") -> str:
    return "–" if x is None else spec.format(x)


def table_rows(doc: dict) -> list[list[str]]:
    res = doc["results"]
    cat = _find(res, "cat", 0)
    rows = []
    for r in res:
        if r["status"] != "ok":
            rows.append([r["method"], f"DL×{r['workers']}" if r["workers"] else "1 proc", r["status"], "", "", "",
                         r["reason"]])
            continue
        same_w_wds = _find(res, "webdataset", r["workers"])
        rows.append([
            r["method"], f"DL×{r['workers']}" if r["workers"] else "1 proc",
            f"{r['clips_per_s']:,.1f}", f"{r['mb_per_s']:,.1f}",
            _fmt(r["mb_per_s"] / cat["mb_per_s"] if cat and cat["mb_per_s"] else None, "{:.3f}"),
            _fmt(r["clips_per_s"] / same_w_wds["clips_per_s"] if same_w_wds and same_w_wds["clips_per_s"] else None,
                 "{:.2f}"),
            r["label"] + (f" — {r['note']}" if r["note"] else ""),
        ])
    return rows


HEADER = ["method", "procs", "clips/s", "MB/s", "× cat", "× webdataset", "what"]


def text_table(doc: dict) -> str:
    rows = [HEADER, *table_rows(doc)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[i].rjust(widths[i]) if i >= 2 else r[i].ljust(widths[i]) for i in range(len(HEADER) - 1)]
        lines.append("  ".join(cells) + "  " + r[-1][:90])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 20)
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------- markdown


def markdown(doc: dict, json_name: str, plot_name: str | None) -> str:
    m, c, cfg = doc["machine"], doc["corpus"], doc["config"]
    v = m["versions"]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Rendered by `python -m benchmarks.run`; do not edit by hand (re-run it). -->",
        "",
        "One command packs a corpus of real encoded audio and measures, in the same run and on the same data, "
        "every way of getting 5 s training clips at 32 kHz out of it:",
        "",
        "```",
        "python -m benchmarks.run                    # default corpus (synthesised once, cached in bench-out/)",
        "python -m benchmarks.run --source DIR       # your own audio folder (ogg/flac/mp3/wav/opus)",
        "python -m benchmarks.run --quick --out DIR  # tiny smoke run (CI; no speed is asserted anywhere)",
        "```",
        "",
        f"## This run{' (quick mode: tiny corpus, figures are not meaningful)' if cfg['quick'] else ''}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpus_usable']} usable cores ({m['cpu_count']} online), "
        f"{m['mem_total_gib']} GiB RAM, {m['os']}.",
        f"- Software: Python {m['python']}, torch {v.get('torch')}, numpy {v.get('numpy')}, "
        f"soundfile {v.get('soundfile')} (libsndfile {v.get('libsndfile', '?')}), soxr {v.get('soxr')}, "
        f"webdataset {v.get('webdataset')}, torchaudio {v.get('torchaudio')}, torchcodec {v.get('torchcodec')}, "
        f"shardkit {v.get('shardkit')}.",
        f"- Load average (1 min) at start / end: {doc['load']['start']} / {doc['load']['end']} "
        f"(other processes share these cores; every figure is the best of {cfg['repeats']} runs of "
        f"≤ {cfg['seconds']} s).",
        f"- Corpus: {c['description']}: {c['files']} files, {c['hours']:.2f} h of audio, "
        f"{c['encoded_bytes'] / 1e6:.0f} MB encoded; durations {c['seconds_min']:.0f}–{c['seconds_max']:.0f} s "
        f"(median {c['seconds_median']:.0f} s); formats {c['formats']}; rates {c['sample_rates']}; "
        f"{c['stereo_files']} stereo.",
        f"- Clips: 5 s, 32 kHz, mono int16 = 320,000 bytes; MB = 10⁶ bytes of PCM delivered. Batches of "
        f"{cfg['batch']} (per-file baselines {cfg['baseline_batch']}). Warm page cache: right before every run the "
        "method's files are read once (this VM's kernel reclaims idle page cache on its own, so warming once at the "
        "start is not enough). `DL×K` = `torch.utils.data.DataLoader(num_workers=K)`; 1 proc = in the measuring "
        "process. Methods run round-robin, best run reported.",
        "",
        "### Read throughput",
        "",
        _md_table(HEADER, table_rows(doc)),
        "",
        "Ratios (shardkit segments mode unless named):",
        "",
        _md_table(["ratio", "value"], [[k, "–" if val is None else (f"{val:.3f}" if isinstance(val, float)
                                                                   else str(val))]
                                       for k, val in doc["ratios"].items()]),
        "",
    ]
    if plot_name:
        lines += [f"![clips/s by method]({plot_name})", ""]
    else:
        lines += [f"(No plot: {doc.get('plot_note', 'matplotlib is not installed')}.)", ""]
    p = doc["pack"]
    fl = p["decode_floor"]
    lines += [
        "### Pack",
        "",
        f"Decode floor (libsndfile decode + shardkit's mean downmix, soxr HQ to 32 kHz and int16, {fl['workers']} "
        f"forked processes, same files and order): {fl['hours_per_min']:.3f} audio h/min ({fl['elapsed_s']:.1f} s; "
        f"{fl['workers_cpu_s']:.1f} CPU s). Best of {cfg['pack_repeats']} interleaved rounds (floor, recordings, "
        "segments), each from a warm page cache.",
        "",
        _md_table(["mode", "audio h/min", "× decode floor", "wall s", "CPU s (main + workers)", "samples", "shards",
                   "tar bytes", "index bytes", "raw PCM bytes", "tar overhead", "tar+index overhead"],
                  [[mode, f"{p[mode]['hours_per_min']:.3f}", f"{p[mode]['rate_vs_decode']:.2f}",
                    f"{p[mode]['elapsed_s']:.1f}", f"{p[mode]['main_cpu_s']:.1f} + {p[mode]['workers_cpu_s']:.1f}",
                    str(p[mode]["samples"]), str(p[mode]["shards"]),
                    f"{p[mode]['shard_bytes']:,}", f"{p[mode]['index_bytes']:,}", f"{p[mode]['pcm_bytes']:,}",
                    f"{p[mode]['tar_overhead']:.3%}", f"{p[mode]['tar_index_overhead']:.3%}"]
                   for mode in ("recordings", "segments") if mode in p]),
        "",
    ]
    if "padding_bytes" in p:
        lines += [f"Segments mode also stores {p['padding_bytes']:,} bytes of zero padding (the last, partial "
                  "5 s window of every recording, `tail=pad`), counted above as PCM, not as overhead.", ""]
    lines += ["### Memory", "", _md_table(
        ["reader", "process peak MB", "after imports MB", "reader's own MB", "clips streamed"],
        [[k, f"{r['peak_kb'] / 1024:.0f}", f"{r['rss_imports_kb'] / 1024:.0f}", f"{r['reader_kb'] / 1024:.0f}",
          f"{r['clips']:.0f}"] if "peak_kb" in r else [k, "error", "", "", r.get("error", "")[:80]]
         for k, r in doc["rss"].items()]),
        "",
        "Peak RSS is VmHWM of a fresh process that streams for a few seconds, reset after the imports "
        "(`/proc/self/clear_refs`); \"after imports\" is the interpreter with torch, numpy, shardkit and "
        "webdataset loaded, which every torch input pipeline pays before reading anything.",
        "",
        "## Issue-5 targets",
        "",
        _md_table(["target", "measured", "met", "detail"],
                  [[t["target"], t["shown"], {True: "met", False: "**missed**", None: "n/a"}[t["met"]], t["detail"]]
                   for t in doc["targets"]]),
        "",
    ]
    if doc.get("bounds"):
        lines += ["### What bounds the missed targets", ""]
        lines += [f"- {b}" for b in doc["bounds"]]
        lines += [""]
    if doc.get("reader_time"):
        lines += ["### Where the reader's time goes", ""]
        lines += [f"- {b}" for b in doc["reader_time"]]
        lines += [""]
    if doc.get("profile"):
        lines += ["### Profile of the shardkit reader (cProfile, 1 process, top functions by own time)", ""]
        for name, prof in doc["profile"].items():
            lines += [f"`{name}`: {prof['clips_per_s']:.0f} clips/s under the profiler, "
                      f"{prof['batches']} batches.", "",
                      _md_table(["function", "calls", "own s", "own %", "cumulative s"],
                                [[f["function"], str(f["calls"]), f"{f['tottime']:.3f}", f"{f['share']:.1%}",
                                  f"{f['cumtime']:.3f}"] for f in prof["top"][:12]]), ""]
    skipped = [r for r in doc["results"] if r["status"] == "skipped"]
    if skipped:
        lines += ["## Not measured here", ""]
        lines += [f"- `{r['method']}`: {r['reason']}" for r in skipped if r["workers"] == 0]
        lines += ["", "Install the package and re-run: the benchmark picks it up (LitData and MosaicML streaming are "
                  "kept out of shardkit's dependencies because they pull their own torch).", ""]
    lines += [f"Raw results of this run: `{json_name}` in its `--out` folder (default `bench-out/`), with "
              "`benchmarks.md`, the plot and the cProfile listings.", ""]
    lines += device_section(load_device_results())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- plot


def plot(doc: dict, path: Path) -> str | None:
    """Write a PNG bar plot of clips/s by method; returns None, or why there is no plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib, then re-run)"
    try:
        _draw(plt, doc, path)
    except Exception as exc:  # a plotting problem must not lose the run's results
        return f"plotting failed: {type(exc).__name__}: {exc}"
    return None


def _draw(plt: Any, doc: dict, path: Path) -> None:
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    names = [f"{r['method']} ({'1 proc' if r['workers'] == 0 else 'DL×' + str(r['workers'])})" for r in ok]
    values = [r["clips_per_s"] for r in ok]
    colors = {"ceiling": "#888888", "shardkit": "#1f77b4", "peer": "#ff7f0e", "baseline": "#d62728"}
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(ok) + 1.5))
    ax.barh(names, values, color=[colors.get(r["group"], "#333333") for r in ok])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("clips/s (5 s, 32 kHz int16; log scale)")
    ax.set_title(f"{doc['machine']['cpu_model']}, {doc['machine']['cpus_usable']} cores")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------- device stage


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


def _dev_find(doc: dict, method: str, workers: int = 0) -> dict | None:
    return best_device_result(doc["results"], method, workers)


def _dev_procs(workers: int) -> str:
    return "1 proc" if workers == 0 else f"DL×{workers}"


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
            rows.append([r["method"], _dev_procs(r["workers"]), _threads(r), "error", "", "", "", r.get("error", "")])
            continue
        rows.append([r["method"], _dev_procs(r["workers"]), _threads(r), f"{r['clips_per_s']:,.1f}",
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
