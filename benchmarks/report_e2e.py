"""The end-to-end report, a function of the results JSON only: device-busy fractions, targets, the terminal
table, docs/benchmarks-e2e.md (between its ``generated`` markers; the hand-written text around them stays)
and the plot (docs/e2e.png), re-rendered from every ``benchmarks/results/e2e-*.json``."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import ROOT, _fmt, _md_table

DOCS_PAGE = ROOT / "docs" / "benchmarks-e2e.md"
DOCS_PLOT = ROOT / "docs" / "e2e.png"
BEGIN, END = "<!-- generated: begin (python -m benchmarks.e2e --render) -->", "<!-- generated: end -->"
TARGET = 0.95
SHARDKIT = ("shardkit-wav16", "shardkit-mel-u8")
CASE_TITLES = {"whole": "whole model trains", "frozen": "frozen backbone (only the head trains)"}


def _rows(doc: dict, case: str) -> list[dict]:
    return [r for r in doc["results"] if r["case"] == case]


def busy(doc: dict, case: str, pipeline: str) -> float | None:
    """Ceiling step time / this pipeline's step time in ``case`` (1.0 = the device never waits); None if either
    is missing."""
    by = {r["pipeline"]: r for r in _rows(doc, case) if "ms_per_step" in r}
    if "ceiling" not in by or pipeline not in by:
        return None
    return round(by["ceiling"]["ms_per_step"] / by[pipeline]["ms_per_step"], 4)


def targets(doc: dict) -> list[dict]:
    """Each shardkit pipeline in each case against the target (busy ≥ 0.95): met, missed or not measured."""
    out = []
    for case in doc["config"]["cases"]:
        for p in SHARDKIT:
            b = busy(doc, case, p)
            verdict = "not measured" if b is None else ("met" if b >= TARGET else "missed")
            out.append({"case": case, "pipeline": p, "busy": b, "target": TARGET, "verdict": verdict,
                        "on_gpu": doc["config"]["device"] == "cuda"})
    return out


def _title(doc: dict) -> str:
    d, c, pin = doc["device"], doc["config"], doc["pinning"]
    where = (f"GPU: {d['name']} (CUDA {d.get('cuda')}, {d.get('memory_gib')} GiB)" if d["type"] == "cuda"
             else f"CPU only: {d['name']} (no GPU: the model trains on the same 2 cores as the pipelines)")
    mode = "quick smoke run" if c["quick"] else "full run"
    return (f"{where}; {mode}; pinned to {len(pin['pinned_to'])} of {pin['machine_cores']} cores; "
            f"batch {c['batch']} × {c['clip_seconds']:g} s, {c['n_mels']} mels; {doc['created']}")


def _table(doc: dict, case: str) -> str:
    header = ["pipeline", "steps/s", "clips/s", "device busy", "waiting for data", "first batch s",
              "peak host PSS / RSS MB", "peak device MB", "clips/epoch", "timed steps"]
    rows = []
    for r in _rows(doc, case):
        if "error" in r:
            rows.append([r["pipeline"], "error: " + r["error"][:80]] + ["–"] * (len(header) - 2))
            continue
        b = busy(doc, case, r["pipeline"])
        rows.append([r["pipeline"], f"{r['steps_per_s']:.3f}", f"{r['clips_per_s']:,.1f}", _fmt(b, "{:.2f}"),
                     f"{100 * r['wait_share']:.1f} %", f"{r['first_batch_s']:.2f}",
                     f"{r['peak_host_pss_mb']:,.0f} / {r['peak_host_rss_mb']:,.0f}",
                     _fmt(r.get("peak_device_mb"), "{:,.0f}"),
                     str(r["epoch_clips_counted"] or r["clips_per_epoch"]), str(r["steps"])])
    return _md_table(header, rows)


def _targets_table(doc: dict) -> str:
    rows = [[t["pipeline"], CASE_TITLES.get(t["case"], t["case"]), _fmt(t["busy"], "{:.2f}"),
             t["verdict"] + ("" if t["on_gpu"] else " (CPU run: not the target's setting)")]
            for t in doc.get("targets") or targets(doc)]
    return _md_table(["pipeline", "case", "device busy", f"≥ {TARGET}"], rows)


def _data(doc: dict) -> str:
    d, c = doc["data"], doc["data"]["corpus"]
    s = d["sets"]
    mb = lambda b: f"{b / 1e6:,.1f} MB"  # noqa: E731
    return (f"Corpus: {c['files']} Ogg Vorbis files, {c['hours']:.2f} h ({c['seconds_min']:g}–{c['seconds_max']:g} s, "
            f"median {c['seconds_median']:g} s; rates {', '.join(c['sample_rates'])} Hz; {c['stereo_files']} stereo), "
            f"{mb(s['ogg']['bytes'])}; {c['description']}. Presplit: {s['presplit']['files']} WAV pieces of "
            f"{d['clip_seconds']:g} s, {mb(s['presplit']['bytes'])}. wav16 set: {s['wav16']['samples']} recordings, "
            f"{mb(s['wav16']['bytes'])}; mel-u8 set: {mb(s['mel-u8']['bytes'])}. An epoch is {d['epoch_items']} clips "
            f"({d['recordings']} recordings × {d['crops']} random crops; the seed's datasets draw as many).")


def _section(doc: dict, plot_name: str | None) -> list[str]:
    c = doc["config"]
    prec = next((r["precision"] for r in doc["results"] if "precision" in r), "–")
    out = [f"### {_title(doc)}", "", f"`{doc['command']}` — torch {doc['machine']['versions'].get('torch')}, "
           f"torchvision {doc['machine']['versions'].get('torchvision')}; {c['model']}, {c['optimizer']}, "
           f"{prec}; ≥ {c['seconds']:g} s and ≥ {c['min_steps']} timed steps per run after "
           f"{c['warmup']} warm-up steps{' and the prefetched batches' if c['drain_prefetch'] else ''}; load "
           f"{doc['load']['start']} → {doc['load']['end']}.", "", _data(doc), ""]
    if plot_name:
        out += [f"![steps/s and device-busy fraction per pipeline]({plot_name})", ""]
    for case in c["cases"]:
        out += [f"**{CASE_TITLES.get(case, case)}**", "", _table(doc, case), ""]
    out += ["Targets (shardkit pipelines ≥ 0.95 of the ceiling):", "", _targets_table(doc), ""]
    return out


def e2e_markdown(docs: list[dict], plot_name: str | None = None) -> str:
    """The generated part of the page: one section per results document, GPU runs first."""
    out = []
    for i, doc in enumerate(sorted(docs, key=lambda d: d["config"]["device"] != "cuda")):
        out += _section(doc, plot_name if i == 0 else None)
    return "\n".join(out)


def e2e_text(doc: dict) -> str:
    """The terminal summary: one table per case and the targets."""
    out = [_title(doc), ""]
    for case in doc["config"]["cases"]:
        out += [CASE_TITLES.get(case, case), _table(doc, case), ""]
    return "\n".join([*out, _targets_table(doc)])


def plot(doc: dict, path: Path) -> Path:
    """Two panels: training steps/s and the device-busy fraction per pipeline, one bar per case."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cases = doc["config"]["cases"]
    names = list(dict.fromkeys(r["pipeline"] for r in doc["results"]))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rate, ax_busy = fig.subplots(1, 2)
    width = 0.8 / max(1, len(cases))
    top = 1.05
    for k, case in enumerate(cases):
        by = {r["pipeline"]: r for r in _rows(doc, case) if "steps_per_s" in r}
        ys = [i + (k - (len(cases) - 1) / 2) * width for i in range(len(names))]
        ax_rate.barh(ys, [by[n]["steps_per_s"] if n in by else 0 for n in names], height=width,
                     label=CASE_TITLES.get(case, case))
        fractions = [busy(doc, case, n) or 0 for n in names]
        top = max(top, *(f + 0.05 for f in fractions))
        ax_busy.barh(ys, fractions, height=width, label=CASE_TITLES.get(case, case))
    for ax in (ax_rate, ax_busy):
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
    ax_rate.set_xlabel("training steps/s")
    ax_busy.set_xlabel("device busy = ceiling step time / step time")
    ax_busy.axvline(TARGET, color="k", linestyle="--", linewidth=1)
    ax_busy.set_xlim(0, top)
    ax_rate.legend(loc="best", fontsize=8)
    dev = doc["device"]
    where = f"GPU {dev['name']}" if dev["type"] == "cuda" else "CPU only (no GPU)"
    fig.suptitle(f"EfficientNet-B0 training fed on {len(doc['pinning']['pinned_to'])} CPU cores — {where}"
                 + (" — quick run" if doc["config"]["quick"] else ""), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def load_results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("e2e-*.json"))]


def render_docs(folder: Path, page: Path = DOCS_PAGE, png: Path = DOCS_PLOT) -> list[Path]:
    """Re-render the generated part of ``page`` and the plot ``png`` (from the GPU result if there is one)."""
    docs = sorted(load_results(folder), key=lambda d: (d["config"]["device"] != "cuda", d["config"]["quick"]))
    if not docs:
        return []
    plot(docs[0], png)
    body = e2e_markdown(docs, plot_name=png.name)
    text = page.read_text() if page.exists() else f"# End-to-end training benchmark\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    return [page, png]
