"""The peers a 2026 user would pick instead: Lance and Hugging Face ``datasets``, over the same 5 s clips.

    python -m benchmarks.peers [--segments DIR] [--out DIR] [--seconds S] [--repeats N] [--workers K]

Each converts the segments set's clips once (:func:`_segment_clips`: int16 PCM, the label) into its own
format, then reads shuffled batches of 64 (clips/s, ranges over ``--repeats`` rounds, every method once
per round, warm page cache), in this process and with a DataLoader of ``--workers`` workers, against
``ShardDataset`` over the segments set and ``cat`` of its shard in the same rounds:

* ``lance-take``: a Lance dataset (``pylance``) with the clips in a binary column; each batch is
  ``take`` of 64 shuffled row indices, sorted (the random-access path Lance is built for);
* ``lance-scan``: the same dataset read in order by ``to_batches(batch_size=64)`` (no shuffle: a ceiling);
* ``hf-arrow``: ``datasets.Dataset`` (Arrow, the clips as a fixed-length int16 sequence) saved to disk,
  ``with_format("torch")``, ``DataLoader(batch_size=64, shuffle=True)``;
* ``hf-webdataset``: our segment shards through ``load_dataset("webdataset", streaming=True)`` (features
  given as bytes: its ``Audio`` feature needs torchcodec), ``shuffle(buffer_size=1000)``, ``.wav`` parsed
  with ``np.frombuffer``, batches of 64.

:data:`PEERS` plugs them into ``python -m benchmarks.run`` as optional peers (they run when installed).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from benchmarks.common import _log, _version
from benchmarks.methods import (
    BATCH,
    CLIP_FRAMES,
    Method,
    OptionalPeer,
    _epochs,
    _segment_clips,
    _wav_frombuffer,
    raw_read,
    shardkit_stream,
)

# ------------------------------------------------------------------------------------------ Lance


def _lance_prepare(segments: Path, workdir: Path) -> Path:
    import lance
    import pyarrow as pa

    out = workdir / "lance-pcm-bytes.lance"
    if not (out / "_versions").exists():
        schema = pa.schema([("audio", pa.large_binary()), ("label", pa.int32())])

        def batches() -> Iterator[pa.RecordBatch]:
            rows: list[tuple[bytes, int]] = []
            for pcm, label in _segment_clips(segments):
                rows.append((pcm.tobytes(), label))
                if len(rows) == 256:
                    yield pa.record_batch([[r[0] for r in rows], [r[1] for r in rows]], schema=schema)
                    rows = []
            if rows:
                yield pa.record_batch([[r[0] for r in rows], [r[1] for r in rows]], schema=schema)

        lance.write_dataset(pa.RecordBatchReader.from_batches(schema, batches()), str(out))
    return out


def _pcm_batch(audio: Any, labels: Any) -> dict[str, torch.Tensor]:
    """An Arrow binary column of raw PCM clips and a label column → int16 (B, T) and int64 (B,)."""
    pcm = np.stack([np.frombuffer(b, dtype="<i2") for b in audio.to_pylist()])
    return {"audio": torch.from_numpy(pcm), "label": torch.as_tensor(labels.to_numpy())}


class LanceBatches(IterableDataset):
    """Shuffled batches of a Lance dataset by ``take`` (``mode="take"``) or in order (``"scan"``); DataLoader
    workers take every K-th batch."""

    def __init__(self, path: Path, batch: int, mode: str) -> None:
        self.path, self.batch, self.mode, self.epoch = str(path), batch, mode, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        import lance

        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        ds = lance.dataset(self.path)
        if self.mode == "scan":
            for j, rb in enumerate(ds.to_batches(batch_size=self.batch, columns=["audio", "label"])):
                if j % n == k and rb.num_rows == self.batch:
                    yield _pcm_batch(rb.column("audio"), rb.column("label"))
            return
        order = np.random.default_rng(self.epoch).permutation(ds.count_rows())
        for j, start in enumerate(range(0, len(order) - self.batch + 1, self.batch)):
            if j % n == k:
                t = ds.take(np.sort(order[start:start + self.batch]).tolist(), columns=["audio", "label"])
                yield _pcm_batch(t.column("audio").combine_chunks(), t.column("label").combine_chunks())


def _lance_stream(mode: str, data: Path, workers: int, batch: int = BATCH) -> Iterator[float]:
    ds = LanceBatches(data, batch, mode)
    # Lance's runtime threads start in this process when it opens the dataset: a DataLoader worker forked
    # after that can hang for ever (seen: a quick benchmark run stuck in a worker), so workers start from a
    # forkserver, as for the other threaded peers
    loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="forkserver") \
        if workers else ds
    yield from _epochs(loader, ds.set_epoch, lambda b: float(len(b["label"])))


# ------------------------------------------------------------------------------------------ Hugging Face


def _hf_prepare(segments: Path, workdir: Path) -> Path:
    import datasets

    datasets.disable_progress_bars()
    out = workdir / "hf-arrow-int16"
    if not (out / "dataset_info.json").exists():
        feats = datasets.Features({"audio": datasets.Sequence(datasets.Value("int16"), length=CLIP_FRAMES),
                                   "label": datasets.Value("int32")})
        gen = functools.partial(_hf_rows, str(segments))
        ds = datasets.Dataset.from_generator(gen, features=feats, cache_dir=str(workdir / "hf-cache"))
        ds.save_to_disk(str(out))
    return out


def _hf_rows(segments: str) -> Iterator[dict[str, Any]]:
    for pcm, label in _segment_clips(segments):
        yield {"audio": pcm, "label": label}


def _hf_arrow_stream(data: Path, workers: int, batch: int = BATCH) -> Iterator[float]:
    import datasets

    ds = datasets.load_from_disk(str(data)).with_format("torch")
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(0),
                        multiprocessing_context="forkserver" if workers else None)
    yield from _epochs(loader, None, lambda b: float(len(b["label"])))


def _hf_wds_prepare(segments: Path, workdir: Path) -> Path:
    return segments


def _hf_wds_batches(shards: list[str], batch: int, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
    import datasets

    feats = datasets.Features({"__key__": datasets.Value("string"), "__url__": datasets.Value("string"),
                               "wav": datasets.Value("binary"), "mp": datasets.Value("binary")})
    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", streaming=True,
                               features=feats).shuffle(buffer_size=1000, seed=epoch)
    clips: list[np.ndarray] = []
    for row in ds:
        clips.append(_wav_frombuffer(row["wav"])[:CLIP_FRAMES])
        if len(clips) == batch:
            yield {"audio": torch.from_numpy(np.stack(clips)), "label": torch.zeros(batch, dtype=torch.int64)}
            clips = []


class HfWebDataset(IterableDataset):
    def __init__(self, shards: list[str], batch: int) -> None:
        self.shards, self.batch, self.epoch = shards, batch, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return _hf_wds_batches(self.shards, self.batch, self.epoch)


def _hf_wds_stream(data: Path, workers: int, batch: int = BATCH) -> Iterator[float]:
    ds = HfWebDataset(sorted(str(p) for p in Path(data).glob("*.tar")), batch)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="forkserver") \
        if workers else ds
    yield from _epochs(loader, ds.set_epoch, lambda b: float(len(b["label"])))


#: Lance and Hugging Face as optional peers of ``python -m benchmarks.run`` (the ``bench`` extra has both).
PEERS = (
    OptionalPeer("lance-take", "lance", "pylance", _lance_prepare, functools.partial(_lance_stream, "take"),
                 "Lance dataset {audio: large_binary raw PCM, label: int32}; take(sorted shuffled indices) per "
                 "batch of 64"),
    OptionalPeer("lance-scan", "lance", "pylance", _lance_prepare, functools.partial(_lance_stream, "scan"),
                 "the same Lance dataset, to_batches(64) in order (not shuffled)"),
    OptionalPeer("hf-arrow", "datasets", "datasets", _hf_prepare, _hf_arrow_stream,
                 "datasets.Dataset (Arrow, int16 sequence of 160,000) save_to_disk; with_format('torch'), "
                 "DataLoader(batch 64, shuffle=True)"),
    OptionalPeer("hf-webdataset", "datasets", "datasets", _hf_wds_prepare, _hf_wds_stream,
                 "our segment shards via load_dataset('webdataset', streaming=True), shuffle(buffer_size=1000), "
                 ".wav by np.frombuffer, batches of 64"),
)


# ------------------------------------------------------------------------------------------ the run


def peer_methods(segments: Path, data: dict[str, Path | str], workers: int, batch: int) -> list[Method]:
    """``cat``, ``ShardDataset`` over the segments and every prepared peer, in this process and DL×workers."""
    shards = sorted(str(p) for p in segments.glob("*.tar"))
    out = [Method("cat", "readinto() an 8 MiB buffer over the segment shards (the ceiling)", 0, "ceiling",
                  make=functools.partial(raw_read, shards), files=shards)]
    for w in sorted({0, workers}):
        out.append(Method("shardkit-segments", "ShardDataset over the segments set, shuffled", w, "shardkit",
                          make=functools.partial(shardkit_stream, segments, w, batch=batch), files=shards))
        for peer in PEERS:
            d = data.get(peer.name)
            if isinstance(d, Path):
                files = [str(p) for p in d.rglob("*") if p.is_file()] if d.is_dir() else []
                out.append(Method(peer.name, peer.layout, w, "peer", make=functools.partial(peer.stream, d, w, batch),
                                  files=files or shards))
            elif w == 0:
                out.append(Method(peer.name, peer.layout, w, "peer", skip=str(d)))
    return out


def _ranges(results: list[Any]) -> list[dict[str, Any]]:
    """Per method: clips/s range and its ratio to ShardDataset with the same workers, round by round."""
    ref = {r.workers: r.runs for r in results if r.method == "shardkit-segments" and r.status == "ok"}
    rows = []
    for r in results:
        row = {"method": r.method, "workers": r.workers, "status": r.status, "reason": r.reason, "label": r.label,
               "runs": [round(x, 1) for x in r.runs]}
        if r.status == "ok" and r.runs:
            base = ref.get(r.workers, [])
            ratios = [a / b for a, b in zip(r.runs, base, strict=False) if b]
            row.update(range=[round(min(r.runs)), round(max(r.runs))],
                       vs_shardkit=[round(min(ratios), 3), round(max(ratios), 3)] if ratios else None)
        rows.append(row)
    return rows


def markdown(doc: dict[str, Any]) -> str:
    v = doc["versions"]
    head = (f"pylance {v['lance']}, datasets {v['datasets']}, pyarrow {v['pyarrow']}, torch {v['torch']}; "
            f"{doc['clips']} clips of 5 s; {doc['repeats']} rounds of ≥ {doc['seconds']:g} s per method, warm "
            f"page cache; 1-min load {doc['load'][0]}–{doc['load'][1]} on 2 shared cores.\n\n")
    lines = ["| method | procs | clips/s (range) | × ShardDataset, same procs (range) |", "|---|---|---|---|"]
    for r in doc["rows"]:
        procs = "1 proc" if r["workers"] == 0 else f"DL×{r['workers']}"
        if r["status"] != "ok":
            lines.append(f"| {r['method']} | {procs} | {r['status']}: {r['reason'][:90]} | – |")
            continue
        vs = "–" if not r.get("vs_shardkit") else "{:.2f}–{:.2f}".format(*r["vs_shardkit"])
        lines.append(f"| {r['method']}: {r['label']} | {procs} | {r['range'][0]:,}–{r['range'][1]:,} | {vs} |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cold import prepare_sets
    from benchmarks.harness import load1, measure_all
    from benchmarks.packbench import warm
    from benchmarks.run import prepare_peers_from

    ap = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=Path, help="a segments set (default: packed under OUT, as benchmarks.cold)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=BATCH)
    args = ap.parse_args(argv)
    seg = args.segments or prepare_sets(args.out, max(1, len(os.sched_getaffinity(0))), ["segments"])[0]
    data = prepare_peers_from(PEERS, seg, args.out / "peers")
    load0 = load1()
    results = measure_all(peer_methods(seg, data, args.workers, args.batch), seconds=args.seconds,
                          max_clips=1e9, repeats=args.repeats, before=lambda m: warm(list(m.files)), log=_log)
    from shardkit.read import ShardSet

    with ShardSet.open(seg) as ss:
        clips = len(ss)
    doc = {"command": "python -m benchmarks.peers " + " ".join(sys.argv[1:] if argv is None else argv),
           "versions": {m: _version(m) for m in ("lance", "datasets", "pyarrow", "torch", "webdataset")},
           "clips": clips, "seconds": args.seconds, "repeats": args.repeats, "load": [load0, load1()],
           "rows": _ranges(results)}
    (args.out / "peers.json").write_text(json.dumps(doc, indent=1) + "\n")
    _log(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
