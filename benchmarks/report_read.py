"""The read benchmark's report (``python -m benchmarks.run``): ratios, the targets, what bounds a missed one, where
the reader's time goes, the results table, docs/benchmarks.md and the plot.

Everything here is computed from the run's own figures. Interpretation that no single run measures (what was
tried and not adopted, what a figure is made of on the machine of the committed run) is hand-written in
docs/benchmarks.md, between the markers of :data:`HAND_WRITTEN_BEGIN` and :data:`HAND_WRITTEN_END`; re-rendering
the page keeps that section as it is (:func:`hand_written`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import _fmt, _md_table
from benchmarks.report_device import device_section, load_device_results

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
        out[f"segments-targets/segments_{tag}"] = ratio(_find(results, "shardkit-segments-targets", w), seg)
        out[f"recordings-targets/recordings_{tag}"] = ratio(_find(results, "shardkit-recordings-targets", w), rec)
    return out


def targets(doc: dict) -> list[dict[str, Any]]:
    """The targets with the figure measured, met or missed (None: not measurable here)."""
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
    for mode in ("segments", "recordings"):
        add(f"targets= costs ≤ 10 % of the shuffled read rate ({mode}, 1 process)",
            rat.get(f"{mode}-targets/{mode}_1proc"), 0.90, "{:.0%}", detail="clips/s with a 206-class label layer "
            "over without (benchmarks/labels.py)")
    rss = doc.get("rss", {}).get("shardkit-segments-256MB")
    if rss and "peak_kb" in rss:
        reader_mb = rss["reader_kb"] / 1024
        add("peak RSS ≤ shuffle window + 150 MB (256 MB window; reader's own memory)",
            round(reader_mb, 1), 256 + 150, "{:.0f} MB", higher=False,
            detail=(f"process peak {rss['peak_kb'] / 1024:.0f} MB, of which {rss['rss_imports_kb'] / 1024:.0f} MB "
                    "is the interpreter + import torch/numpy before the reader exists"))
    cold = doc.get("cold", {}).get("target")
    if cold:
        rows.append({"target": cold["target"], "value": None, "goal": None, "met": cold["met"],
                     "shown": cold["shown"], "detail": "cold page cache, 1 process (see the cold table)"})
    rows += doc.get("remote", {}).get("targets", [])
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
    """For every missed target: the figures of this run that bound it (no interpretation: see the hand-written
    notes in docs/benchmarks.md)."""
    out = []
    for target in (t["target"] for t in doc["targets"] if t["met"] is False):
        text = _bound(doc, target)
        if text:
            out.append(f"{target}: {text}")
    return out


def _bound(doc: dict, target: str) -> str | None:
    """What this run measured that bears on ``target``, one sentence or two; None for an unknown target."""
    res, rat = doc["results"], doc["ratios"]
    if target.startswith("reader ≥ 60 %"):
        seg, cat = _find(res, "shardkit-segments", 0), _find(res, "cat", 0)
        text = f"{seg['mb_per_s']:,.0f} of {cat['mb_per_s']:,.0f} MB/s." if seg and cat else ""
        if seg and seg["sys_share"]:
            text += (f" The reader spent {seg['sys_share']:.0%} of its wall time in system time (≈"
                     f"{seg['mb_per_s'] / seg['sys_share'] / 1000:.1f} GB/s of PCM per system second) and "
                     f"{seg['user_share']:.0%} in user time.")
        return text.strip()
    if target.startswith("reader ≥ 4× webdataset"):
        return f"measured {rat.get('segments/webdataset_1proc')}×; see the profile below."
    if target.startswith("reader ≥ 100×"):
        return f"measured {rat.get('segments/best-baseline_1proc')}× over {rat.get('best-baseline_1proc')}."
    if target.startswith("recordings mode"):
        rec = _find(res, "shardkit-recordings", 0)
        return (f"{rat.get('recordings/segments_1proc')} over an epoch of "
                f"{doc['pack']['recordings']['samples']} recordings"
                + (f" ({rec['clips_per_s']:,.0f} clips/s)" if rec else "") + ".")
    if target.startswith("peak RSS"):
        return "see the memory table."
    if target.startswith(("S3 with", "object storage")):
        from benchmarks.remote import bound as remote_bound

        return remote_bound(doc.get("remote", {}), target)
    if target.startswith("pack ("):
        return _pack_bound(doc, target.split("(")[1].split(")")[0])
    if target.startswith("tar + index overhead"):
        p = doc["pack"][target.split("(")[1].split(")")[0]]
        per = (p["shard_bytes"] + p["index_bytes"] - p["pcm_bytes"]) / max(1, p["samples"])
        return (f"{per:,.0f} bytes per sample (tar headers, 512-byte padding, WAV header, msgpack member, index row) "
                "against the sample's PCM.")
    return None


def _pack_bound(doc: dict, mode: str) -> str:
    """Wall and CPU seconds of the pack in ``mode`` against the decode floor, and the least wall time they allow."""
    p, fl = doc["pack"][mode], doc["pack"]["decode_floor"]
    cores = doc["machine"]["cpus_usable"]
    extra_workers = p["workers_cpu_s"] - fl["workers_cpu_s"]
    return (f"{p['elapsed_s']:.1f} s against the floor's {fl['elapsed_s']:.1f} s. The decode workers used "
            f"{p['workers_cpu_s']:.1f} CPU s (the floor's {fl['workers_cpu_s']:.1f} s: {extra_workers:+.1f} s) and "
            f"the main process {p['main_cpu_s']:.1f} CPU s. On {cores} cores: ({p['workers_cpu_s']:.1f} + "
            f"{p['main_cpu_s']:.1f}) / {cores} = {(p['workers_cpu_s'] + p['main_cpu_s']) / cores:.1f} s is the "
            "least wall time this much CPU time allows.")


# -------------------------------------------------------------------------------------------- table


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


# ----------------------------------------------------------------------------------------- markdown


#: The markers around the hand-written section of docs/benchmarks.md, which re-rendering keeps.
HAND_WRITTEN_BEGIN = "<!-- hand-written: begin (python -m benchmarks.run keeps this section as it is) -->"
HAND_WRITTEN_END = "<!-- hand-written: end -->"


def hand_written(page: str) -> str | None:
    """The hand-written section of a rendered page, markers included; None if the page has none."""
    start = page.find(HAND_WRITTEN_BEGIN)
    end = page.find(HAND_WRITTEN_END, start)
    if start < 0 or end < 0:
        return None
    return page[start : end + len(HAND_WRITTEN_END)]


def markdown(doc: dict, json_name: str, plot_name: str | None, notes: str | None = None) -> str:
    """docs/benchmarks.md (or a run's own ``benchmarks.md``) from a run's results.

    Args:
        doc: the run's results (``results.json``).
        json_name: the file name of the results, for the closing line.
        plot_name: the plot's file name, or None when there is no plot.
        notes: the hand-written section (see :func:`hand_written`), placed after the targets; None: none.
    """
    lines = [*_md_intro(doc), *_md_read(doc, plot_name), *_md_cold(doc), *_md_recipes(doc), *_md_remote(doc),
             *_md_pack(doc), *_md_memory(doc), *_md_targets(doc)]
    if notes:
        lines += [notes, ""]
    lines += [*_md_reader_time(doc), *_md_profile(doc), *_md_skipped(doc)]
    lines += [f"Raw results of this run: `{json_name}` in its `--out` folder (default `bench-out/`), with "
              "`benchmarks.md`, the plot and the cProfile listings.", ""]
    lines += device_section(load_device_results())
    return "\n".join(lines)


def _md_intro(doc: dict) -> list[str]:
    m, c, cfg = doc["machine"], doc["corpus"], doc["config"]
    v = m["versions"]
    return [
        "# Benchmarks",
        "",
        "<!-- Rendered by `python -m benchmarks.run`; do not edit by hand (re-run it), except the section between "
        "the hand-written markers, which re-rendering keeps. -->",
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
    ]


def _md_read(doc: dict, plot_name: str | None) -> list[str]:
    lines = [
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
        return [*lines, f"![clips/s by method]({plot_name})", ""]
    return [*lines, f"(No plot: {doc.get('plot_note', 'matplotlib is not installed')}.)", ""]


def _md_pack(doc: dict) -> list[str]:
    p, cfg = doc["pack"], doc["config"]
    fl = p["decode_floor"]
    lines = [
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
    return lines


def _md_memory(doc: dict) -> list[str]:
    return ["### Memory", "", _md_table(
        ["reader", "process peak MB", "after imports MB", "reader's own MB", "clips streamed"],
        [[k, f"{r['peak_kb'] / 1024:.0f}", f"{r['rss_imports_kb'] / 1024:.0f}", f"{r['reader_kb'] / 1024:.0f}",
          f"{r['clips']:.0f}"] if "peak_kb" in r else [k, "error", "", "", r.get("error", "")[:80]]
         for k, r in doc["rss"].items()]),
        "",
        "Peak RSS is VmHWM of a fresh process that streams for a few seconds, reset after the imports "
        "(`/proc/self/clear_refs`); \"after imports\" is the interpreter with torch, numpy, shardkit and "
        "webdataset loaded, which every torch input pipeline pays before reading anything.",
        "",
    ]


def _md_cold(doc: dict) -> list[str]:
    if not doc.get("cold"):
        return []
    from benchmarks.cold import markdown as cold_markdown

    c = doc["cold"]
    return ["### Cold page cache", "", f"Each file's pages dropped (`os.sync()`, `POSIX_FADV_DONTNEED`) before every "
            f"run; `cat` and shardkit read whole passes / epochs until ≥ {c['seconds']:g} s have passed (the files "
            f"dropped again at each), the others ≤ {c['seconds']:g} s and ≤ {c['max_pass']:.0%} of one pass; "
            f"ranges over {c['repeats']} rounds (`python -m benchmarks.cold`).",
            "", cold_markdown(c), ""]


def _md_recipes(doc: dict) -> list[str]:
    if not doc.get("recipes"):
        return []
    from benchmarks.recipes import markdown as recipes_markdown

    r = doc["recipes"]
    return ["### Training recipes (docs/recipes.md)", "", f"Balanced and mixed epochs against a plain shuffled epoch "
            f"of the segments set, {r['repeats']} rounds of ≤ {r['seconds']:g} s, ratios per round "
            "(`python -m benchmarks.recipes`).", "", recipes_markdown(r), ""]


def _md_remote(doc: dict) -> list[str]:
    if not doc.get("remote"):
        return []
    from benchmarks.remote import markdown as remote_markdown

    return ["### Object storage", "", remote_markdown(doc["remote"]), ""]


def _md_targets(doc: dict) -> list[str]:
    lines = [
        "## Targets",
        "",
        _md_table(["target", "measured", "met", "detail"],
                  [[t["target"], t["shown"], {True: "met", False: "**missed**", None: "n/a"}[t["met"]], t["detail"]]
                   for t in doc["targets"]]),
        "",
    ]
    if doc.get("bounds"):
        lines += ["### What bounds the missed targets", "", *[f"- {b}" for b in doc["bounds"]], ""]
    return lines


def _md_reader_time(doc: dict) -> list[str]:
    if not doc.get("reader_time"):
        return []
    return ["### Where the reader's time goes", "", *[f"- {b}" for b in doc["reader_time"]], ""]


def _md_profile(doc: dict) -> list[str]:
    if not doc.get("profile"):
        return []
    lines = ["### Profile of the shardkit reader (cProfile, 1 process, top functions by own time)", ""]
    for name, prof in doc["profile"].items():
        lines += [f"`{name}`: {prof['clips_per_s']:.0f} clips/s under the profiler, "
                  f"{prof['batches']} batches.", "",
                  _md_table(["function", "calls", "own s", "own %", "cumulative s"],
                            [[f["function"], str(f["calls"]), f"{f['tottime']:.3f}", f"{f['share']:.1%}",
                              f"{f['cumtime']:.3f}"] for f in prof["top"][:12]]), ""]
    return lines


def _md_skipped(doc: dict) -> list[str]:
    skipped = [r for r in doc["results"] if r["status"] == "skipped"]
    if not skipped:
        return []
    return ["## Not measured here", "", *[f"- `{r['method']}`: {r['reason']}" for r in skipped if r["workers"] == 0],
            "", "Install the package and re-run: the benchmark picks it up (LitData and MosaicML streaming are "
            "kept out of shardkit's dependencies because they pull their own torch).", ""]


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
