"""The ways of reading 5 s training clips that the benchmark compares, all over the same data.

Every method is a :class:`Method` whose ``make()`` returns an *endless* iterator; each step reads
some clips and yields how many it delivered (a float, so the raw byte reader can yield fractions
of a clip). :mod:`benchmarks.harness` times these iterators. A clip is 5 s of mono int16 at
32 kHz: :data:`CLIP_BYTES` = 320,000 bytes of PCM; "MB/s" everywhere is clips/s × that / 10⁶.

Methods that need a package which is not installed (torchcodec, LitData, MosaicML streaming) or
that cannot run here (torchaudio ≥ 2.9 without torchcodec) come back with ``skip`` set and the
reason; install the package and they run, with no other change (see :data:`OPTIONAL_PEERS`).
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from benchmarks.corpus import AudioFile

SAMPLE_RATE = 32000
CLIP_SECONDS = 5.0
CLIP_FRAMES = int(CLIP_SECONDS * SAMPLE_RATE)
CLIP_BYTES = 2 * CLIP_FRAMES
BATCH = 64
#: The per-file baselines are ~1000× slower: smaller batches so a time-bounded run sees several.
BASELINE_BATCH = 8
RAW_BUFFER = 8 << 20


@dataclass
class Method:
    name: str                      #: stable id (the JSON key), e.g. "shardkit-segments"
    label: str                     #: what is measured, for the table
    workers: int                   #: 0 = in the measuring process; K = DataLoader with K workers
    group: str                     #: "ceiling" | "shardkit" | "peer" | "baseline"
    make: Callable[[], Iterator[float]] | None = None
    skip: str | None = None        #: why the method does not run here
    note: str = ""
    files: Sequence[str] = ()      #: what it reads: warmed into the page cache before each run
    #: run in a forked child of the measuring process (object storage: the measuring process never starts
    #: obstore's runtime, so DataLoader workers it forks later may still use it; docs/reading.md)
    fork: bool = False


# ----------------------------------------------------------------------------------------- helpers


def _loader(dataset: Any, workers: int, *, peer: bool = False, **kw: Any) -> Any:
    if peer and workers and _threaded_peers_loaded():
        # LitData and MosaicML streaming start threads when imported; a DataLoader worker forked after
        # that can abort in C++ ("terminate called without an active exception"). Fresh workers from a
        # forkserver only change the start-up time, which is reported apart from the throughput.
        kw.setdefault("multiprocessing_context", "forkserver")
    return DataLoader(dataset, batch_size=None, num_workers=workers, **kw)


def _threaded_peers_loaded() -> bool:
    import sys

    return any(name in sys.modules for name in ("litdata", "streaming"))


def _shutdown(it: Any) -> None:
    """Stop a DataLoader iterator's worker processes now (not whenever it is collected)."""
    stop = getattr(it, "_shutdown_workers", None)
    if stop is not None:
        stop()


def _epochs(loader: Any, set_epoch: Callable[[int], None] | None, count: Callable[[Any], float]
            ) -> Iterator[float]:
    """Endless: epoch after epoch of ``loader`` (a DataLoader or any iterable), yielding ``count(batch)``."""
    epoch = 0
    it = None
    try:
        while True:
            if set_epoch is not None:
                set_epoch(epoch)
            it = iter(loader)
            n = 0
            for batch in it:
                n += 1
                yield count(batch)
            if n == 0:
                raise RuntimeError("an epoch yielded no batch")
            epoch += 1
    finally:
        if it is not None:
            _shutdown(it)


# ------------------------------------------------------------------------------------ raw ceiling


def raw_read(paths: Sequence[str | os.PathLike[str]], bufsize: int = RAW_BUFFER) -> Iterator[float]:
    """``cat``: read the files front to back with ``readinto`` a preallocated buffer, forever."""
    buf = memoryview(bytearray(bufsize))
    while True:
        for p in paths:
            with open(p, "rb", buffering=0) as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    yield n / CLIP_BYTES


# ------------------------------------------------------------------------------------------ shardkit


def shardkit_stream(path: str | os.PathLike[str], workers: int, *, batch: int = BATCH, window: str = "256MB",
                    partial: str | None = None, crops_per_recording: int = 1,
                    storage_options: dict[str, Any] | None = None, targets: str | None = None) -> Iterator[float]:
    """``ShardDataset`` (5 s crops, shuffled, a new epoch each pass): valid clips per batch. ``path`` may be an
    object-store URL (``storage_options``: its endpoint and credentials); ``targets``: a label layer to read."""
    from shardkit import ShardDataset

    ds = ShardDataset(path, batch_size=batch, crop_seconds=CLIP_SECONDS, shuffle=True, seed=0,
                      shuffle_window=window, partial=partial, crops_per_recording=crops_per_recording,
                      storage_options=storage_options, targets=targets)
    source = ds if workers == 0 else _loader(ds, workers, persistent_workers=True)
    try:
        yield from _epochs(source, ds.set_epoch, lambda b: float(b["valid"].sum()))
    finally:
        ds.close()


# ----------------------------------------------------------------------------------------- webdataset


def _wav_soundfile(data: bytes) -> Any:
    import soundfile as sf

    audio, _ = sf.read(io.BytesIO(data), dtype="int16")
    return torch.from_numpy(audio)


def _wav_frombuffer(data: bytes) -> Any:
    return np.frombuffer(data, dtype="<i2", offset=44)


def _as_tensor(batch: tuple) -> tuple:
    audio, meta = batch
    return (torch.from_numpy(audio) if isinstance(audio, np.ndarray) else audio), meta


def webdataset_pipeline(urls: Sequence[str], decode: str = "soundfile", shuffle: int = 1000,
                        batch: int = BATCH) -> Any:
    """The standard webdataset recipe over shardkit's segment shards: shard shuffle, sample shuffle
    buffer, ``.decode()`` (msgpack for ``.mp``; the ``.wav`` to a tensor by ``decode``), ``.batched``."""
    import webdataset as wds

    handler = _wav_soundfile if decode == "soundfile" else _wav_frombuffer
    return (wds.WebDataset(list(urls), shardshuffle=len(urls), repeat=True, seed=0, empty_check=False)
            .shuffle(shuffle)
            .decode(wds.handle_extension("wav", handler))
            .to_tuple("wav", "mp")
            .batched(batch)
            .map(_as_tensor))


def webdataset_stream(urls: Sequence[str], workers: int, decode: str = "soundfile", *, shuffle: int = 1000,
                      batch: int = BATCH) -> Iterator[float]:
    pipe = webdataset_pipeline(urls, decode, shuffle, batch)
    source = pipe if workers == 0 else _loader(pipe, workers, peer=True)
    yield from _epochs(source, None, lambda b: float(b[0].shape[0]))


# ------------------------------------------------------------------------------ per-file baselines


def _to_clip(x: np.ndarray, sr: int) -> np.ndarray:
    """float32 (frames, channels) at ``sr`` → int16 (CLIP_FRAMES,) at 32 kHz: mean downmix, soxr HQ,
    round and clip, zero-padded or trimmed to exactly 5 s."""
    import soxr

    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    if sr != SAMPLE_RATE and x.size:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    y = np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)
    if y.size >= CLIP_FRAMES:
        return y[:CLIP_FRAMES]
    return np.concatenate([y, np.zeros(CLIP_FRAMES - y.size, np.int16)])


def _sf_whole(f: AudioFile, rng: np.random.Generator) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(f.path, dtype="float32", always_2d=True)
    n = round(CLIP_SECONDS * sr)
    off = int(rng.integers(0, max(1, x.shape[0] - n + 1)))
    return _to_clip(x[off:off + n], sr)


def _sf_seek(f: AudioFile, rng: np.random.Generator) -> np.ndarray:
    import soundfile as sf

    n = round(CLIP_SECONDS * f.sample_rate)
    off = int(rng.integers(0, max(1, f.frames - n + 1)))
    with sf.SoundFile(f.path) as s:
        s.seek(off)
        x = s.read(n, dtype="float32", always_2d=True)
    return _to_clip(x, f.sample_rate)


def _ta_whole(f: AudioFile, rng: np.random.Generator) -> np.ndarray:
    import torchaudio

    x, sr = torchaudio.load(f.path)
    x = x.numpy().T
    n = round(CLIP_SECONDS * sr)
    off = int(rng.integers(0, max(1, x.shape[0] - n + 1)))
    return _to_clip(np.ascontiguousarray(x[off:off + n]), sr)


def _ta_seek(f: AudioFile, rng: np.random.Generator) -> np.ndarray:
    import torchaudio

    n = round(CLIP_SECONDS * f.sample_rate)
    off = int(rng.integers(0, max(1, f.frames - n + 1)))
    x, sr = torchaudio.load(f.path, frame_offset=off, num_frames=n)
    return _to_clip(np.ascontiguousarray(x.numpy().T), sr)


def _tc_whole(f: AudioFile, rng: np.random.Generator) -> np.ndarray:
    from torchcodec.decoders import AudioDecoder

    s = AudioDecoder(f.path).get_all_samples()
    x = s.data.numpy().T
    sr = int(s.sample_rate)
    n = round(CLIP_SECONDS * sr)
    off = int(rng.integers(0, max(1, x.shape[0] - n + 1)))
    return _to_clip(np.ascontiguousarray(x[off:off + n]), sr)


def _tc_seek(f: AudioFile, rng: np.random.Generator) -> np.ndarray:
    from torchcodec.decoders import AudioDecoder

    start = float(rng.uniform(0.0, max(0.0, f.seconds - CLIP_SECONDS)))
    s = AudioDecoder(f.path).get_samples_played_in_range(start, start + CLIP_SECONDS)
    return _to_clip(np.ascontiguousarray(s.data.numpy().T), int(s.sample_rate))


#: (decoder, path) → function(file, rng) → int16 clip
CLIP_READERS: dict[tuple[str, str], Callable[[AudioFile, np.random.Generator], np.ndarray]] = {
    ("soundfile", "whole"): _sf_whole, ("soundfile", "seek"): _sf_seek,
    ("torchaudio", "whole"): _ta_whole, ("torchaudio", "seek"): _ta_seek,
    ("torchcodec", "whole"): _tc_whole, ("torchcodec", "seek"): _tc_seek,
}


class PerFileClips(IterableDataset):
    """The seed's per-file dataset: each clip picks a file uniformly at random, decodes it (whole,
    or a seek + partial read), takes a random 5 s crop and resamples it to 32 kHz. An endless
    IterableDataset of int16 (BASELINE_BATCH, CLIP_FRAMES) tensors; each DataLoader worker has its own seed."""

    def __init__(self, files: Sequence[AudioFile], decoder: str, path: str, seed: int = 0) -> None:
        self.files = list(files)
        self.read = CLIP_READERS[(decoder, path)]
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            clips = [self.read(self.files[int(rng.integers(len(self.files)))], rng)
                     for _ in range(BASELINE_BATCH)]
            yield torch.from_numpy(np.stack(clips))


def per_file_stream(files: Sequence[AudioFile], decoder: str, path: str, workers: int) -> Iterator[float]:
    ds = PerFileClips(files, decoder, path)
    source = ds if workers == 0 else _loader(ds, workers, peer=True)
    yield from _epochs(source, None, lambda b: float(b.shape[0]))


def probe_decoder(decoder: str, sample: AudioFile) -> str | None:
    """None when ``decoder`` decodes ``sample`` here, else why not (shown as the skip reason)."""
    if decoder == "soundfile":
        return None
    if importlib.util.find_spec(decoder) is None:
        return f"{decoder} is not installed"
    try:
        CLIP_READERS[(decoder, "seek")](sample, np.random.default_rng(0))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{decoder} is installed but cannot decode here: {type(exc).__name__}: {first[:160]}"
    return None


# ----------------------------------------------------------------------- optional peers (plug-ins)


def _segment_clips(segments: str | os.PathLike[str]) -> Iterator[tuple[np.ndarray, int]]:
    """Every 5 s segment of the shardkit segment set, in shard order: (int16 (CLIP_FRAMES,), label)."""
    from shardkit import ShardSet

    ss = ShardSet.open(segments)
    try:
        for i in range(len(ss)):
            pcm = np.zeros(CLIP_FRAMES, np.int16)
            frames = ss.read_frames(i, 0, CLIP_FRAMES)
            pcm[:len(frames)] = frames
            yield pcm, int(ss.label[i])
    finally:
        ss.close()


def _stack_pcm(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Collate raw-PCM samples into an int16 (B, T) batch with np.frombuffer (module level: picklable for
    DataLoader workers); the fastest decoding of the peers' formats we found (an int16 ndarray column
    made LitData ~8× and MosaicML ~1.5× slower here)."""
    audio = np.stack([np.frombuffer(x["audio"], dtype="<i2") for x in samples])
    return {"audio": torch.from_numpy(audio), "label": torch.tensor([int(x["label"]) for x in samples])}


def _litdata_item(clip: tuple[np.ndarray, int]) -> dict[str, Any]:
    """One LitData sample (module level: litdata pickles ``fn`` for its worker processes)."""
    return {"audio": clip[0].tobytes(), "label": clip[1]}


def _litdata_prepare(segments: Path, workdir: Path) -> Path:
    import litdata

    out = workdir / "litdata-pcm-bytes"
    if not (out / "index.json").exists():
        litdata.optimize(fn=_litdata_item, inputs=list(_segment_clips(segments)), output_dir=str(out),
                         chunk_bytes="64MB", num_workers=1)
    return out


def _litdata_stream(data: Path, workers: int, batch: int = BATCH) -> Iterator[float]:
    import litdata

    ds = litdata.StreamingDataset(str(data), shuffle=True, seed=0)
    loader = litdata.StreamingDataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=_stack_pcm)
    yield from _epochs(loader, getattr(ds, "set_epoch", None), lambda b: float(len(b["label"])))


def _mosaic_prepare(segments: Path, workdir: Path) -> Path:
    from streaming import MDSWriter

    out = workdir / "mds-pcm-bytes"
    if not (out / "index.json").exists():
        with MDSWriter(out=str(out), columns={"audio": "bytes", "label": "int"}, size_limit="64mb") as w:
            for pcm, label in _segment_clips(segments):
                w.write({"audio": pcm.tobytes(), "label": label})
    return out


def _mosaic_stream(data: Path, workers: int, batch: int = BATCH) -> Iterator[float]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(data), shuffle=True, shuffle_seed=0, batch_size=batch)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=_stack_pcm)
    yield from _epochs(loader, None, lambda b: float(len(b["label"])))


@dataclass(frozen=True)
class OptionalPeer:
    name: str
    package: str               #: the import name that decides whether it runs
    pip: str                   #: what to install
    prepare: Callable[[Path, Path], Path]   #: (segment shard set, work dir) → its own copy of the clips
    stream: Callable[[Path, int, int], Iterator[float]]   #: (its data, workers, batch) → clips per step
    layout: str = ""           #: how the clips are stored and read, for the report


#: Peers kept out of shardkit's dependencies (both pull a different torch); they run when installed.
OPTIONAL_PEERS = (
    OptionalPeer("litdata", "litdata", "litdata", _litdata_prepare, _litdata_stream,
                 "litdata.optimize of {audio: raw PCM bytes, label: int}, 64MB chunks; StreamingDataset(shuffle) + "
                 "StreamingDataLoader(batch 64), np.frombuffer collate"),
    OptionalPeer("mosaicml-streaming", "streaming", "mosaicml-streaming", _mosaic_prepare, _mosaic_stream,
                 "MDSWriter bytes (raw PCM) + int, 64mb shards; StreamingDataset(shuffle) + DataLoader(batch 64), "
                 "np.frombuffer collate"),
)
