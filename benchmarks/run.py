"""Compare shardkit with the alternatives in one run, on the same data.

    python -m benchmarks.run [--source DIR] [--quick] [--out DIR]

1. Corpus: real encoded Ogg Vorbis recordings of 5 s to 6 min (synthesised once into OUT/corpus and
   reused), or every audio file under ``--source DIR``.
2. Pack it twice (recordings mode, segments mode of 5 s) and time both against the pure decode +
   resample rate of the same files with the same process count; shard bytes against raw PCM bytes.
3. Clips/s and MB/s of 5 s crops at 32 kHz, in 1 process and through a DataLoader with workers,
   warm page cache: raw ``readinto`` of the shard bytes (the ceiling), shardkit segments mode,
   shardkit recordings mode with random crops, webdataset over the same segment shards, the
   per-file baselines (whole-file decode and seek + partial read; soundfile, and torchaudio /
   torchcodec where they work), LitData and MosaicML streaming when installed.
4. Peak RSS of the reader in a fresh process against its shuffle window.
   Object storage (``benchmarks/remote.py``, skipped with ``--no-remote``): the segments set from moto's S3
   server on loopback, straight and with 50 ms first-byte latency, against the local disk, and the
   server's own ranged-GET ceiling. Training recipes (``benchmarks/recipes.py``, skipped with
   ``--no-recipes``): a class-balanced and a mixed epoch against a plain shuffled one, warm and cold.
5. A table on stdout, OUT/results.json, OUT/benchmarks.md (+ docs/benchmarks.md for full runs),
   and OUT/clips_per_s.png when matplotlib is importable.

Nothing here asserts a speed; the targets are reported as met or missed.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib.util
import json
import pstats
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import cold as cold_mod
from benchmarks import corpus as corpus_mod
from benchmarks import packbench
from benchmarks import recipes as recipes_mod
from benchmarks import remote as remote_mod
from benchmarks.common import ROOT, _log, machine
from benchmarks.harness import load1, measure_all
from benchmarks.methods import (
    BASELINE_BATCH,
    BATCH,
    CLIP_BYTES,
    OPTIONAL_PEERS,
    Method,
    OptionalPeer,
    per_file_stream,
    probe_decoder,
    raw_read,
    shardkit_stream,
    webdataset_stream,
)
from benchmarks.peers import PEERS
from benchmarks.report_read import bounds, hand_written, markdown, plot, ratios, reader_time, targets, text_table

#: every method the JSON lists (skipped ones included, with the reason)
METHOD_NAMES = (
    "cat", "shardkit-segments", "shardkit-recordings", "shardkit-segments-targets", "shardkit-recordings-targets",
    "webdataset", "webdataset-frombuffer",
    "litdata", "mosaicml-streaming", "lance-take", "lance-scan", "hf-arrow", "hf-webdataset",
    "baseline-whole-soundfile", "baseline-seek-soundfile", "baseline-whole-torchaudio",
    "baseline-seek-torchaudio", "baseline-whole-torchcodec", "baseline-seek-torchcodec",
)


# ------------------------------------------------------------------------------------------ methods


def rec_crops(rec_samples: int, batch: int) -> int:
    """Crops per recording per epoch for the recordings-mode reader: 1, unless the set has so few recordings
    that an epoch would hold less than 4 batches (then k fresh random crops of each, enough for 4)."""
    return max(1, -(-4 * batch // max(1, rec_samples)))


def build_methods(*, seg: Path, rec: Path, seg_shards: list[str], rec_shards: list[str], rec_samples: int,
                  files: list, workers: int, batch: int, peer_data: dict[str, Path | str],
                  layered: dict[str, Path] | None = None) -> list[Method]:
    crops = rec_crops(rec_samples, batch)
    rec_note = "partial='drop'" + (f", crops_per_recording={crops} ({rec_samples} recordings)" if crops > 1 else "")
    decoders = {d: probe_decoder(d, files[0]) for d in ("soundfile", "torchaudio", "torchcodec")}
    sources = [f.path for f in files]
    methods = [Method("cat", "readinto() an 8 MiB buffer over the segment shards' bytes (the ceiling)", 0, "ceiling",
                      make=functools.partial(raw_read, seg_shards), files=seg_shards)]
    for w in (0, workers):
        methods += [
            Method("shardkit-segments", "ShardDataset over the segments-mode set (5 s segments)", w, "shardkit",
                   make=functools.partial(shardkit_stream, seg, w, batch=batch), files=seg_shards),
            Method("shardkit-recordings", "ShardDataset over the recordings-mode set, a fresh random 5 s crop "
                   "per recording per epoch", w, "shardkit",
                   make=functools.partial(shardkit_stream, rec, w, batch=batch, partial="drop",
                                          crops_per_recording=crops),
                   note=rec_note, files=rec_shards),
            *_target_methods(layered, w, batch, crops, seg_shards, rec_shards),
            Method("webdataset", "WebDataset over the same segment shards: shard + sample shuffle(1000), "
                   ".decode() with soundfile for .wav → tensor, msgpack for .mp, .batched", w, "peer",
                   make=functools.partial(webdataset_stream, seg_shards, w, "soundfile", batch=batch),
                   files=seg_shards),
            Method("webdataset-frombuffer", "the same, .wav decoded with np.frombuffer (hand-tuned best case)", w,
                   "peer", make=functools.partial(webdataset_stream, seg_shards, w, "frombuffer", batch=batch),
                   files=seg_shards),
        ]
        for peer in OPTIONAL_PEERS + PEERS:
            data = peer_data.get(peer.name)
            if isinstance(data, Path):
                what = f"{peer.name} over the same 5 s clips (converted once: {peer.layout})"
                methods.append(Method(peer.name, what, w, "peer", make=functools.partial(peer.stream, data, w, batch)))
            elif w == 0:
                methods.append(Method(peer.name, peer.name, w, "peer", skip=str(data)))
        for dec in ("soundfile", "torchaudio", "torchcodec"):
            for path in ("whole", "seek"):
                what = ("whole-file decode, random 5 s crop, soxr to 32 kHz" if path == "whole"
                        else "seek to a random frame + read 5 s, soxr to 32 kHz")
                if decoders[dec] is None:
                    methods.append(Method(f"baseline-{path}-{dec}", f"per-file {dec}: {what}", w, "baseline",
                                          make=functools.partial(per_file_stream, files, dec, path, w),
                                          files=sources))
                elif w == 0:
                    methods.append(Method(f"baseline-{path}-{dec}", f"per-file {dec}: {what}", w, "baseline",
                                          skip=decoders[dec]))
    return methods


def _target_methods(layered: dict[str, Path] | None, w: int, batch: int, crops: int, seg_shards: list[str],
                    rec_shards: list[str]) -> list[Method]:
    """The two readers with ``targets=`` (benchmarks/labels.py: label layers of 206 classes on the same sets)."""
    if not layered:
        return []
    from benchmarks.labels import LAYER

    return [
        Method("shardkit-segments-targets", "shardkit-segments + targets= (a samples layer, 206 classes)", w,
               "shardkit", make=functools.partial(shardkit_stream, layered["segments"], w, batch=batch, targets=LAYER),
               files=seg_shards),
        Method("shardkit-recordings-targets", "shardkit-recordings + targets= (5 s windows, overlap-weighted mean, "
               "206 classes)", w, "shardkit", files=rec_shards,
               make=functools.partial(shardkit_stream, layered["recordings"], w, batch=batch, partial="drop",
                                      crops_per_recording=crops, targets=LAYER)),
    ]


def prepare_peers(seg: Path, work: Path) -> dict[str, Path | str]:
    """Convert the clips for each installed optional peer; the value is its data, or why it does not run."""
    return prepare_peers_from(OPTIONAL_PEERS + PEERS, seg, work)


def prepare_peers_from(peers: Sequence[OptionalPeer], seg: Path, work: Path) -> dict[str, Path | str]:
    """:func:`prepare_peers` for ``peers``."""
    out: dict[str, Path | str] = {}
    for peer in peers:
        if importlib.util.find_spec(peer.package) is None:
            out[peer.name] = f"not installed (pip install {peer.pip}; kept out of shardkit's dependencies)"
            continue
        try:
            work.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            out[peer.name] = peer.prepare(seg, work)
            _log(f"  {peer.name}: clips converted in {time.perf_counter() - t0:.1f} s")
        except Exception as exc:
            out[peer.name] = f"installed, but preparing its data failed: {type(exc).__name__}: {exc}"
    return out


# ------------------------------------------------------------------------------------------ rss, profile


def rss_probe(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.rss", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def profile_reader(path: Path, *, batch: int, seconds: float, partial: str | None, crops: int = 1
                   ) -> dict[str, Any]:
    """cProfile of the in-process reader for ``seconds``: the top functions by own time."""
    prof = cProfile.Profile()
    stream = shardkit_stream(path, 0, batch=batch, partial=partial, crops_per_recording=crops)
    next(stream)
    clips, batches = 0.0, 0
    t0 = time.perf_counter()
    prof.enable()
    while time.perf_counter() - t0 < seconds:
        clips += next(stream)
        batches += 1
    prof.disable()
    elapsed = time.perf_counter() - t0
    stream.close()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values()) or 1e-9  # type: ignore[attr-defined]
    top = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in sorted(
            st.stats.items(), key=lambda kv: -kv[1][2])[:25]:  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}({fn})" if file != "~" else fn
        top.append({"function": where, "calls": nc, "tottime": round(tt, 4), "cumtime": round(ct, 4),
                    "share": round(tt / total, 4)})
    return {"clips_per_s": round(clips / elapsed, 1), "batches": batches, "seconds": round(elapsed, 3),
            "profiled_total_s": round(total, 4), "top": top}


# ------------------------------------------------------------------------------------------------ main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, help="a folder of audio files to use instead of the synthetic corpus")
    ap.add_argument("--quick", action="store_true", help="tiny corpus and short timings (CI smoke, < 1 min)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder (default bench-out/)")
    ap.add_argument("--workers", type=int, default=2, help="pack processes and DataLoader workers (default 2)")
    ap.add_argument("--seconds", type=float, help="timed seconds per run of a method (default 3; quick 0.3)")
    ap.add_argument("--repeats", type=int, help="runs per method, the best is reported (default 3; quick 1)")
    ap.add_argument("--docs", type=Path, help="also render the report here (default docs/benchmarks.md for full "
                    "runs with the synthetic corpus; none for --quick)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold page cache table")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile pass over the shardkit reader")
    ap.add_argument("--no-remote", action="store_true", help="skip the object-storage rows (servers on loopback)")
    ap.add_argument("--no-recipes", action="store_true", help="skip the balanced / mixed epoch rows")
    return ap.parse_args(argv)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings, with the full or quick defaults filled in."""
    quick = args.quick
    return {"quick": quick, "seconds": args.seconds if args.seconds is not None else (0.3 if quick else 3.0),
            "repeats": args.repeats if args.repeats is not None else (1 if quick else 3),
            "pack_repeats": 1 if quick else 2, "max_clips": 2_000 if quick else 1_000_000,
            "batch": 8 if quick else BATCH, "baseline_batch": BASELINE_BATCH, "workers": max(1, args.workers),
            "shard_size": "1MB" if quick else "128MB", "clip_bytes": CLIP_BYTES,
            "source": str(args.source) if args.source else None}


def _corpus(args: argparse.Namespace, out: Path, doc: dict[str, Any]) -> corpus_mod.Corpus:
    """Step 1: the synthetic corpus (built once, cached under OUT/corpus) or the files under ``--source``."""
    if args.source:
        corpus = corpus_mod.from_source(args.source, log=_log)
    else:
        corpus = corpus_mod.build(out / "corpus", corpus_mod.QUICK if args.quick else corpus_mod.FULL,
                                  workers=doc["config"]["workers"], log=_log)
    doc["corpus"] = corpus.summary()
    c = doc["corpus"]
    _log(f"corpus: {c['files']} files, {c['hours']:.2f} h, {c['encoded_bytes'] / 1e6:.0f} MB encoded, "
         f"{c['seconds_min']:.0f}–{c['seconds_max']:.0f} s (median {c['seconds_median']:.0f} s)")
    return corpus


def _pack_step(corpus: corpus_mod.Corpus, out: Path, doc: dict[str, Any]) -> dict[str, Path]:
    """Step 2: the decode floor and pack in both modes, interleaved, best of ``pack_repeats``; the two sets."""
    cfg = doc["config"]
    workers, rounds = cfg["workers"], cfg["pack_repeats"]
    order = packbench.pack_order(corpus.src)
    sets = {mode: out / f"shards-{mode}" for mode in ("recordings", "segments")}
    floors: list[dict] = []
    packs: dict[str, list[dict]] = {mode: [] for mode in sets}
    for k in range(rounds):
        _log(f"pack: round {k + 1} of {rounds}: decode floor, then pack in both modes, {workers} processes ...")
        packbench.warm(order)
        floors.append(packbench.decode_floor(order, workers))
        _log(f"  decode + resample   : {floors[-1]['hours_per_min']:.3f} audio h/min ({floors[-1]['elapsed_s']:.1f} s,"
             f" load {load1()})")
        for mode in sets:
            packbench.warm(order)
            packs[mode].append(packbench.run_pack(corpus.src, sets[mode], mode, workers, cfg["shard_size"]))
            p = packs[mode][-1]
            _log(f"  pack {mode:<15}: {floors[-1]['seconds_audio'] / 3600 / (p['elapsed_s'] / 60):.3f} audio h/min "
                 f"({p['elapsed_s']:.1f} s, load {load1()})")
    floor = min(floors, key=lambda f: f["elapsed_s"])
    floor["runs_s"] = [f["elapsed_s"] for f in floors]
    doc["pack"] = {"decode_floor": floor}
    for mode in sets:
        doc["pack"][mode] = _best_pack(packs[mode], floor)
    doc["pack"]["padding_bytes"] = doc["pack"]["segments"]["pcm_bytes"] - doc["pack"]["recordings"]["pcm_bytes"]
    return sets


def _best_pack(runs: list[dict], floor: dict) -> dict:
    """The fastest of one mode's pack runs, with its rate in audio h/min and against the decode floor."""
    p = min(runs, key=lambda q: q["elapsed_s"])
    p["runs_s"] = [q["elapsed_s"] for q in runs]
    p["hours_per_min"] = round(floor["seconds_audio"] / 3600 / (p["elapsed_s"] / 60), 4)
    p["rate_vs_decode"] = round(p["hours_per_min"] / floor["hours_per_min"], 4)
    _log(f"  pack {p['mode']:<10}: best {p['hours_per_min']:.3f} audio h/min = "
         f"{p['rate_vs_decode']:.0%} of the decode floor's best ({floor['hours_per_min']:.3f}); {p['samples']} "
         f"samples in {p['shards']} shards; tar+index overhead {p['tar_index_overhead']:.3%} over "
         f"{p['pcm_bytes'] / 1e6:.0f} MB PCM")
    return p


def _read_step(corpus: corpus_mod.Corpus, sets: dict[str, Path], out: Path, doc: dict[str, Any]) -> None:
    """Step 3: clips/s of every method, round-robin from a warm page cache; the ratios."""
    cfg = doc["config"]
    peer_data = prepare_peers(sets["segments"], out / "peers")
    from benchmarks.labels import add_bench_layers

    layered = add_bench_layers(sets["segments"], sets["recordings"], out)
    methods = build_methods(seg=sets["segments"], rec=sets["recordings"], layered=layered,
                            seg_shards=doc["pack"]["segments"]["shard_files"],
                            rec_shards=doc["pack"]["recordings"]["shard_files"],
                            rec_samples=doc["pack"]["recordings"]["samples"], files=corpus.files,
                            workers=cfg["workers"], batch=cfg["batch"], peer_data=peer_data)
    _log(f"read: {len(methods)} methods, {cfg['repeats']} round(s) of ≤{cfg['seconds']:g} s each, warm page cache ...")
    results = measure_all(methods, seconds=cfg["seconds"], max_clips=cfg["max_clips"], repeats=cfg["repeats"],
                          before=lambda meth: packbench.warm(list(meth.files)), log=_log)
    doc["results"] = [r.to_dict() for r in results]
    doc["ratios"] = ratios(doc["results"])


def _rss_step(sets: dict[str, Path], out: Path, doc: dict[str, Any]) -> None:
    """Step 4: peak RSS of each reader in a fresh process."""
    _log("memory: peak RSS of the reader in a fresh process ...")
    rss_seconds = "1" if doc["config"]["quick"] else "4"
    urls = out / "segment-shards.txt"
    urls.write_text("\n".join(doc["pack"]["segments"]["shard_files"]) + "\n")
    probes = {
        "shardkit-segments-64MB": ["--reader", "shardkit", "--path", str(sets["segments"]), "--window", "64MB"],
        "shardkit-segments-256MB": ["--reader", "shardkit", "--path", str(sets["segments"]), "--window", "256MB"],
        "shardkit-recordings-256MB": ["--reader", "shardkit", "--path", str(sets["recordings"]),
                                      "--window", "256MB"],
        "webdataset-shuffle1000": ["--reader", "webdataset", "--path", str(urls), "--shuffle", "1000"],
    }
    doc["rss"] = {}
    for name, a in probes.items():
        r = rss_probe([*a, "--seconds", rss_seconds, "--batch", str(doc["config"]["batch"])])
        doc["rss"][name] = r
        if "peak_kb" in r:
            _log(f"  {name:<28} peak {r['peak_kb'] / 1024:6.0f} MB, after imports {r['rss_imports_kb'] / 1024:6.0f}"
                 f" MB, reader's own {r['reader_kb'] / 1024:5.0f} MB")
        else:
            _log(f"  {name}: ERROR {r['error']}")


def _cold_step(sets: dict[str, Path], out: Path, doc: dict[str, Any]) -> None:
    """Step 3b: clips/s from a cold page cache, 1 process (benchmarks/cold.py)."""
    cfg = doc["config"]
    _log("cold: clips/s with each file dropped from the page cache before every run ...")
    with cold_mod.throttled(sets["segments"]) as throttle:  # the raw VM disk varies 3x: see benchmarks/cold.py
        doc["cold"] = cold_mod.measure_cold(sets["segments"], sets["recordings"], out, batch=cfg["batch"],
                                            seconds=cfg["seconds"], repeats=cfg["repeats"])
    doc["cold"]["throttle"] = throttle


def _recipes_step(sets: dict[str, Path], doc: dict[str, Any]) -> None:
    """Step 3d: balanced and mixed epochs against a plain shuffled one, warm and cold (benchmarks/recipes.py)."""
    cfg = doc["config"]
    _log("recipes: balanced and mixed epochs against a plain shuffled epoch of the segments set ...")
    doc["recipes"] = recipes_mod.measure(sets["segments"], seconds=cfg["seconds"], repeats=cfg["repeats"],
                                         workers=cfg["workers"], batch=cfg["batch"], cold=not cfg["quick"],
                                         max_clips=cfg["max_clips"])
    for case in doc["recipes"]["cases"]:
        _log(f"  {case['case']}: " + "; ".join(f"{r['method']} {r['min']:.2f}–{r['max']:.2f}× plain"
                                              for r in case["rows"] if r["method"] != "plain"))


def _remote_step(sets: dict[str, Path], doc: dict[str, Any]) -> None:
    """Step 3c: clips/s of the segments set from object servers on loopback (benchmarks/remote.py)."""
    cfg = doc["config"]
    _log("object storage: the segments set from an HTTP range server on loopback, 0, 10 and 50 ms first byte ...")
    seconds = cfg["seconds"] if cfg["quick"] else max(cfg["seconds"], remote_mod.SECONDS)
    doc["remote"] = remote_mod.measure_remote({"segments": sets["segments"]}, seconds=seconds,
                                              repeats=cfg["repeats"], workers=cfg["workers"], batch=cfg["batch"],
                                              max_clips=cfg["max_clips"], raw_seconds=0.3 if cfg["quick"] else 2.0,
                                              warmup=0.0 if cfg["quick"] else remote_mod.WARMUP)


def _profile_step(sets: dict[str, Path], out: Path, doc: dict[str, Any]) -> None:
    """Step 5: cProfile of the in-process shardkit reader in both modes (listings in OUT/profile-*.txt)."""
    _log("profile: cProfile of the in-process shardkit reader ...")
    cfg = doc["config"]
    crops = rec_crops(doc["pack"]["recordings"]["samples"], cfg["batch"])
    for name, path, partial, k in (("shardkit-segments", sets["segments"], None, 1),
                                   ("shardkit-recordings", sets["recordings"], "drop", crops)):
        prof = profile_reader(path, batch=cfg["batch"], seconds=min(cfg["seconds"], 2.0), partial=partial, crops=k)
        doc["profile"][name] = prof
        (out / f"profile-{name}.txt").write_text("\n".join(
            f"{f['share']:7.1%} {f['tottime']:8.3f}s {f['calls']:>8} {f['function']}" for f in prof["top"]) + "\n")
        _log(f"  {name}: " + "; ".join(f"{f['function']} {f['share']:.0%}" for f in prof["top"][:4]))


def _write_report(args: argparse.Namespace, out: Path, doc: dict[str, Any]) -> tuple[Path, Path | None]:
    """Step 6: targets, bounds, the plot, OUT/results.json, OUT/benchmarks.md and the docs page (which keeps its
    hand-written section); (the JSON's path, the docs page or None)."""
    doc["targets"] = targets(doc)
    doc["bounds"] = bounds(doc)
    doc["reader_time"] = reader_time(doc)
    plot_path = out / "clips_per_s.png"
    why_not = plot(doc, plot_path)
    if why_not:
        doc["plot_note"] = why_not
        _log(f"plot: skipped ({why_not})")
    json_path = out / "results.json"
    json_path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    plot_name = None if why_not else plot_path.name
    (out / "benchmarks.md").write_text(markdown(doc, json_path.name, plot_name))
    docs = args.docs if args.docs is not None else (
        ROOT / "docs" / "benchmarks.md" if not args.quick and not args.source else None)
    if docs is not None:
        if not why_not and docs.parent != out:
            shutil.copyfile(plot_path, docs.parent / plot_path.name)
        notes = hand_written(docs.read_text()) if docs.exists() else None
        docs.write_text(markdown(doc, json_path.name, plot_name, notes))
    return json_path, docs


def _print_summary(doc: dict[str, Any], json_path: Path, docs: Path | None, out: Path) -> None:
    _log("")
    _log(text_table(doc))
    _log("")
    for t in doc["targets"]:
        _log(f"  [{ {True: 'met', False: 'MISSED', None: 'n/a'}[t['met']]:>6}] {t['target']}: {t['shown']}"
             + (f" ({t['detail']})" if t["detail"] else ""))
    _log("")
    _log(f"load average (1 min): start {doc['load']['start']}, end {doc['load']['end']}; "
         f"run took {doc['elapsed_s']:.0f} s")
    _log(f"results: {json_path}" + (f"; report: {docs}" if docs else f"; report: {out / 'benchmarks.md'}"))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_run = time.perf_counter()
    doc: dict[str, Any] = {"config": _config(args), "machine": machine(), "load": {"start": load1()}}
    m = doc["machine"]
    _log(f"machine: {m['cpu_model']}, {m['cpus_usable']} cores, {m['mem_total_gib']} GiB; python {m['python']}, "
         f"torch {m['versions']['torch']}; load {doc['load']['start']}")
    corpus = _corpus(args, out, doc)
    sets = _pack_step(corpus, out, doc)
    _read_step(corpus, sets, out, doc)
    if not args.no_cold:
        _cold_step(sets, out, doc)
    if not args.no_recipes:
        _recipes_step(sets, doc)
    if not args.no_remote:
        _remote_step(sets, doc)
    _rss_step(sets, out, doc)
    doc["profile"] = {}
    if not args.no_profile:
        _profile_step(sets, out, doc)
    doc["load"]["end"] = load1()
    doc["elapsed_s"] = round(time.perf_counter() - t_run, 1)
    json_path, docs = _write_report(args, out, doc)
    _print_summary(doc, json_path, docs, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
