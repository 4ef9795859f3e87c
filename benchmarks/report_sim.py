"""The simulated-accelerator report, a function of the results JSON only: ranges over runs per (pipeline,
step time), the targets, the terminal table, its section of docs/benchmarks-e2e.md (between its own
``sim`` markers) and the plot of busy fraction against step time (docs/e2e-sim.png)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import ROOT, _md_table
from benchmarks.e2e_sim import field_range

DOCS_PAGE = ROOT / "docs" / "benchmarks-e2e.md"
DOCS_PLOT = ROOT / "docs" / "e2e-sim.png"
BEGIN, END = "<!-- sim: begin (python -m benchmarks.e2e --render) -->", "<!-- sim: end -->"
TARGET = 0.95
MIN_STEP_MS = 10.0
SHARDKIT = ("shardkit-wav16", "shardkit-mel-u8")


def _pipelines(doc: dict) -> list[str]:
    return list(dict.fromkeys(r["pipeline"] for run in doc["runs"] for r in run["results"]))


def _rng(x: tuple[float, float] | None, spec: str, scale: float = 1.0) -> str:
    if x is None:
        return "–"
    lo, hi = (spec.format(v * scale) for v in x)
    return lo if lo == hi else f"{lo}–{hi}"


def vs_ceiling(doc: dict, pipeline: str, step_ms: float) -> tuple[float, float] | None:
    """(min, max) over the runs of ``pipeline``'s busy ÷ the ceiling's busy in the same run and step time:
    what the input costs beyond what the loaded machine costs the simulator itself."""
    vals = []
    for run in doc["runs"]:
        by = {r["pipeline"]: r for r in run["results"] if r.get("step_ms") == step_ms and "busy" in r}
        if pipeline in by and "ceiling" in by:
            vals.append(by[pipeline]["busy"] / by["ceiling"]["busy"])
    return (min(vals), max(vals)) if vals else None


def _pct(x: tuple[float, float] | None) -> str:
    return "–" if x is None else _rng(x, "{:.1f}", 100) + " %"


def sim_targets(doc: dict) -> list[dict]:
    """Each shardkit pipeline at each step time ≥ 10 ms: its lowest busy over the runs against 0.95."""
    out = []
    for p in SHARDKIT:
        if p not in doc["config"]["pipelines"]:
            continue
        for ms in doc["config"]["step_ms"]:
            if ms < MIN_STEP_MS:
                continue
            b = field_range(doc, p, ms, "busy")
            verdict = "not measured" if b is None else ("met" if b[0] >= TARGET else "missed")
            out.append({"pipeline": p, "step_ms": ms, "busy": b, "target": TARGET, "verdict": verdict})
    return out


def _table(doc: dict) -> str:
    header = ["pipeline", "step ms", "steps/s", "busy", "busy ÷ ceiling's", "waiting for data",
              "launches over their CPU time", "sleep overshoot", "first batch s", "stage host ms"]
    rows = []
    for p in _pipelines(doc):
        errors = [r["error"] for run in doc["runs"] for r in run["results"] if r["pipeline"] == p and "error" in r]
        if errors:
            rows.append([p, "error: " + errors[0][:80]] + ["–"] * (len(header) - 2))
        for ms in doc["config"]["step_ms"]:
            if field_range(doc, p, ms, "busy") is None:
                continue
            rows.append([p, f"{ms:g}", _rng(field_range(doc, p, ms, "steps_per_s"), "{:.2f}"),
                         _rng(field_range(doc, p, ms, "busy"), "{:.3f}"), _rng(vs_ceiling(doc, p, ms), "{:.2f}"),
                         _pct(field_range(doc, p, ms, "wait_share")),
                         _pct(field_range(doc, p, ms, "launch_excess_share")),
                         _pct(field_range(doc, p, ms, "sleep_excess_share")),
                         _rng(field_range(doc, p, None, "first_batch_s"), "{:.2f}"),
                         _rng(field_range(doc, p, None, "stage_host_ms"), "{:.2f}")])
    return _md_table(header, rows)


def _targets_table(doc: dict) -> str:
    rows = [[t["pipeline"], f"{t['step_ms']:g}", _rng(t["busy"], "{:.3f}"),
             _rng(vs_ceiling(doc, t["pipeline"], t["step_ms"]), "{:.2f}"),
             _pct(field_range(doc, t["pipeline"], t["step_ms"], "wait_share")), t["verdict"]]
            for t in doc.get("targets") or sim_targets(doc)]
    return _md_table(["pipeline", "step ms", "busy (range)", "÷ ceiling's", "waiting for data", f"≥ {TARGET}"],
                     rows)


def _title(doc: dict) -> str:
    c, pin = doc["config"], doc["pinning"]
    mode = "quick smoke run" if c["quick"] else "full run"
    return (f"Simulated accelerator on {doc['device']['name']}; {mode}; pinned to {len(pin['pinned_to'])} of "
            f"{pin['machine_cores']} cores; batch {c['batch']} × {c['clip_seconds']:g} s; host {c['host_ms']:g} ms "
            f"per step + {c['launch_us']:g} µs per device-stage op; {c['runs']} runs; {doc['created']}")


def sim_markdown(doc: dict, plot_name: str | None) -> str:
    c, d = doc["config"], doc["data"]
    loads = [run["load_start"] for run in doc["runs"]]
    out = [f"### {_title(doc)}", "",
           f"`{doc['command']}` — torch {doc['machine']['versions'].get('torch')}; ≥ {c['seconds']:g} s and ≥ "
           f"{c['min_steps']} timed steps per (pipeline, step time), step times shortest first, after "
           f"{c['warmup']} warm-up steps and the prefetched batches (once per pipeline and run); 1-min load average "
           f"at the start of each run {', '.join(map(str, loads))}, "
           f"{doc['load']['end']} at the end (other work shared the 2 cores). Ranges are min–max over the runs.",
           "", f"Data: {d['recordings']} recordings, an epoch of {d['epoch_items']} clips "
           f"({d['recordings']} × {d['crops']} random crops; the seed's datasets draw as many).", ""]
    if plot_name:
        out += [f"![device busy against step time, per pipeline]({plot_name})", ""]
    out += [_table(doc), "", f"Targets (shardkit pipelines ≥ {TARGET} busy at every step time ≥ "
            f"{MIN_STEP_MS:g} ms, lowest run):", "", _targets_table(doc), ""]
    return "\n".join(out)


def sim_text(doc: dict) -> str:
    return "\n".join([_title(doc), "", _table(doc), "", _targets_table(doc)])


def plot_sim(doc: dict, path: Path) -> Path:
    """Busy fraction against step time, one line per pipeline (median of the runs; band = min–max)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    steps = doc["config"]["step_ms"]
    for p in _pipelines(doc):
        lo, mid, hi, xs = [], [], [], []
        for ms in steps:
            vals = sorted(r["busy"] for run in doc["runs"] for r in run["results"]
                          if r["pipeline"] == p and r.get("step_ms") == ms and "busy" in r)
            if vals:
                xs.append(ms)
                lo.append(vals[0])
                mid.append(vals[len(vals) // 2])
                hi.append(vals[-1])
        if xs:
            (line,) = ax.plot(xs, mid, marker="o", label=p)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    ax.axhline(TARGET, color="k", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xticks(steps, [f"{s:g}" for s in steps])
    ax.set_xlabel("accelerator time per step, ms (simulated)")
    ax.set_ylabel("busy = ideal step / measured step")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=8)
    c = doc["config"]
    fig.suptitle(f"Simulated accelerator fed on {len(doc['pinning']['pinned_to'])} CPU cores: batch "
                 f"{c['batch']} × {c['clip_seconds']:g} s, host {c['host_ms']:g} ms/step"
                 + (" — quick run" if c["quick"] else ""), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def render_sim_docs(folder: Path, page: Path = DOCS_PAGE, png: Path = DOCS_PLOT) -> list[Path]:
    """Re-render the sim section of ``page`` and ``png`` from ``folder/sim-e2e*.json`` (full run first)."""
    docs = sorted((json.loads(p.read_text()) for p in sorted(folder.glob("sim-e2e*.json"))),
                  key=lambda d: d["config"]["quick"])
    if not docs:
        return []
    plot_sim(docs[0], png)
    body = "\n".join(sim_markdown(d, png.name if i == 0 else None) for i, d in enumerate(docs))
    text = page.read_text()
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    page.write_text(f"{head}{BEGIN}\n{body}\n{END}{rest.split(END, 1)[1]}")
    return [page, png]
