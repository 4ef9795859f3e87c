"""``ShardSetWriter``: samples in, a finished shard set out — shards rolled at ``shard_size``, an index
sidecar per shard, a disk budget, crash-safe state after every shard, and the manifest last.

It is the class :func:`shardkit.pack` drives, and the way in for audio that is already in Python
(in-memory arrays, another dataset library, your own decoder)::

    with ShardSetWriter("shards/", sample_rate=32000, vocabulary=["amecro", "barswa"]) as w:
        for clip, label in my_clips:                    # int16 (frames,) or (frames, channels)
            w.write(clip, key=f"clip-{n:06d}", primary_label=label)

The same samples written in the same order give the same bytes as :func:`shardkit.pack`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.encode.base import Codec
from shardkit.encode.mel_config import MelConfig
from shardkit.encode.registry import DEFAULT_CODEC, codec_class
from shardkit.errors import OutputConflictError, UsageError
from shardkit.files import make_folder
from shardkit.format import KEY_RE, MAX_KEY_LEN, Manifest, ShardEntry
from shardkit.units import parse_size
from shardkit.write.shards import EncodedSample, ShardWriter, encode_sample
from shardkit.write.state import PackState, open_state
from shardkit.write.tar import END_OF_ARCHIVE

log = logging.getLogger(__name__)

#: budget reserve for a shard's index, per sample (+ 4 KiB)
INDEX_BYTES_PER_SAMPLE = 160
_INDEX_RESERVE = 4096


class ShardSetWriter:
    """Write a shard set into the folder ``out`` (see the module docstring).

    - ``sample_rate`` (Hz), ``channels``, ``codec`` (an id of :func:`shardkit.encode.codec_ids`) and
      ``mel`` (:class:`MelConfig` for codecs that store spectrograms) describe the stored data.
    - ``shard_size``: a shard rolls before a sample would take it past this many bytes ("1GB").
    - ``budget``: cap on shard + index bytes; :meth:`write` returns False (and writes nothing more)
      once the next sample would pass it.
    - ``vocabulary``: the class names labels may take; indexes store label numbers into it.
    - ``layout``: the manifest's ``layout`` (default ``{"mode": "segments"}``: fixed clips; use
      ``{"mode": "recordings"}`` for long recordings that readers crop at random).
    - ``overwrite``: delete a shard set already in ``out`` first (only shardkit's own files).
    - ``device``: where a spectrogram codec computes (``"cpu"``, ``"cuda"``).
    - ``on_shard``: called with the manifest record of each finished shard (name, sizes, sha256s), once
      it is whole in ``out`` and recorded in the state (a pack into object storage uploads it there).
    - ``first_shard``: number of the first shard written (``shardkit update`` numbers a new version's
      shards after its parent's, so that names stay unique along a chain of versions).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        sample_rate: int = 32000,
        channels: int = 1,
        codec: str | Codec = DEFAULT_CODEC,
        mel: MelConfig | None = None,
        shard_size: int | str = "1GB",
        budget: int | str | None = None,
        vocabulary: Sequence[str] = (),
        layout: dict[str, Any] | None = None,
        overwrite: bool = False,
        device: str = "cpu",
        state: PackState | None = None,
        on_shard: Callable[[dict[str, Any]], None] | None = None,
        first_shard: int = 0,
    ) -> None:
        self.out = Path(out)
        self.codec = codec if isinstance(codec, Codec) else _make_codec(codec, sample_rate, channels, mel)
        self.codec.check_device(str(device))
        self.device = str(device)
        self.shard_size = parse_size(shard_size, name="shard_size")
        self.budget = parse_size(budget, name="budget") if budget is not None else None
        self.vocabulary = [str(v) for v in vocabulary]
        self._label_of = {name: i for i, name in enumerate(self.vocabulary)}
        if len(self._label_of) != len(self.vocabulary):
            raise UsageError("vocabulary has duplicate class names")
        self.layout = dict(layout) if layout is not None else {"mode": "segments"}
        self._save_state = state is not None
        self.on_shard = on_shard
        self.first_shard = int(first_shard)
        self.state = state if state is not None else self._fresh_state(overwrite)
        self._shard: ShardWriter | None = None
        self._keys: set[str] = set()
        self.stopped = False  #: True once the budget refused a sample
        #: the metadata columns' types and the coerced ones: with rejects or a coerced column the manifest is
        #: written as version 4 (format §5.4), else as before
        self.columns: tuple[dict[str, str], tuple[str, ...]] = ({}, ())
        make_folder(self.out, "shard set folder")

    def _fresh_state(self, overwrite: bool) -> PackState:
        if open_state(self.out, "", overwrite=overwrite, resume=None) is not None:  # refuses a foreign OUT
            raise OutputConflictError(f"{self.out}: holds a shard set; pass overwrite=True to replace it")
        return PackState(source_fingerprint="", pack={})

    # -- writing ------------------------------------------------------------------------------------

    def write(self, audio: np.ndarray, *, key: str, primary_label: str | None = None,
              secondary_labels: Sequence[str] = (), source: str = "", start: int = 0,
              extra: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> bool:
        """Encode and add one sample; False when the budget is full (nothing was written).

        ``audio``: int16 ``(frames,)`` or ``(frames, channels)`` at :attr:`sample_rate`. ``key``: the
        sample's name in the tar (letters, digits, ``-``, ``_``, ``/``; unique in the set). Labels are
        names of :attr:`vocabulary`. ``source``/``start``: where the clip comes from (file, first frame).
        ``extra``: your own columns (kept under the metadata's ``extra``); ``meta``: more top-level keys
        of the ``.mp`` member (pack adds the source file's properties there).
        """
        pcm = _as_frames(audio, self.codec.channels, key)
        self._check_key(key)
        label = self._label(primary_label, key) if primary_label else -1
        secondary = tuple(self._label(s, key) for s in secondary_labels)
        doc = {"key": key, "source": source, "primary_label": primary_label,
               "secondary_labels": list(secondary_labels), "sample_rate": self.codec.sample_rate,
               "channels": int(pcm.shape[1]), "frames": int(pcm.shape[0]), "start_frame": int(start),
               "extra": extra or {}, **(meta or {})}
        sample = encode_sample(self.codec, pcm, key=key, label=label, secondary=secondary, meta=doc,
                               source=source, start=int(start), device=self.device)
        return self.add(sample)

    def add(self, sample: EncodedSample, *, next_item: int = 0, next_piece: int = 0) -> bool:
        """Add an encoded sample, rolling to a new shard first if it would pass ``shard_size``; False
        (and the current shard finished) when it would pass the budget. ``next_item``/``next_piece``:
        where a resumed pack restarts if the shard closes before this sample (pack's bookkeeping)."""
        if self.stopped:
            return False
        if self._shard is not None and len(self._shard) and self._shard.projected(sample) > self.shard_size:
            self.close_shard(next_item, next_piece)
        if self.budget is not None and self._over_budget(sample):
            if self._shard is not None and len(self._shard):
                self.close_shard(next_item, next_piece)
            self.stopped = True
            return False
        if self._shard is None:
            number = self.first_shard + len(self.state.shards)
            self._shard = ShardWriter(self.out, number, self.codec.config(), self.vocabulary)
        self._shard.add(sample)
        if sample.label >= 0:
            name = self.vocabulary[sample.label]
            self.state.label_counts[name] = self.state.label_counts.get(name, 0) + 1
        return True

    def _over_budget(self, sample: EncodedSample) -> bool:
        shard = self._shard
        reserve = _INDEX_RESERVE + INDEX_BYTES_PER_SAMPLE * ((len(shard) if shard else 0) + 1)
        open_bytes = shard.projected(sample) if shard else sample.tar_bytes + len(END_OF_ARCHIVE)
        return self.state.committed_bytes + open_bytes + reserve > self.budget  # type: ignore[operator]

    def close_shard(self, next_item: int = 0, next_piece: int = 0) -> None:
        """Finish the open shard (fsync, rename, index) and record it; the state says a re-run starts
        at source ``next_item``, piece ``next_piece``."""
        if self._shard is None:
            return
        record = self._shard.finish()
        self._shard = None
        self.state.shards.append(record)
        self.state.next_item, self.state.next_piece = next_item, next_piece
        if self._save_state:
            self.state.save(self.out)
        if self.on_shard is not None:
            self.on_shard(record)

    @property
    def bytes_written(self) -> int:
        """Shard + index bytes in OUT, the open shard's bytes so far included."""
        return self.state.committed_bytes + (self._shard.bytes if self._shard else 0)

    @property
    def samples(self) -> int:
        return self.state.samples + (len(self._shard) if self._shard else 0)

    @property
    def shards(self) -> int:
        """Finished shards."""
        return len(self.state.shards)

    # -- finishing ----------------------------------------------------------------------------------

    def finish(self, *, sources: int | None = None, budget_doc: dict[str, Any] | None = None) -> Manifest:
        """Close the open shard and write the manifest (last); returns it. ``complete`` is False when
        the budget stopped the writer."""
        self.close_shard(self.state.next_item, self.state.next_piece)
        complete = not self.stopped
        self.state.complete = complete
        manifest = Manifest.build(
            codec=self.codec, layout=self.layout, vocabulary=self.vocabulary,
            label_counts=self.state.label_counts, shards=[ShardEntry.from_dict(s) for s in self.state.shards],
            pack=self.state.pack, rejects=self.state.rejects,
            sources=self.samples if sources is None else sources,
            sources_packed=self.state.sources_packed if sources is not None else self.samples, complete=complete,
            budget=budget_doc or {"limit_bytes": self.budget, "exhausted": not complete, "more_bytes_needed": 0},
        ).with_columns(*self.columns)
        manifest.save(self.out)
        return manifest

    def abort(self) -> None:
        """Drop the open shard (its temp file); finished shards stay."""
        if self._shard is not None:
            self._shard.abort()
            self._shard = None

    def __enter__(self) -> ShardSetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    # -- checks -------------------------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not KEY_RE.match(key) or len(key) > MAX_KEY_LEN:
            raise UsageError(f"sample key {key!r}: use at most {MAX_KEY_LEN} letters, digits, '-', '_' or '/' "
                             "(no dots: readers split the extension at the first dot)")
        if key in self._keys:
            raise UsageError(f"sample key {key!r} is written twice; keys must be unique in a shard set")
        self._keys.add(key)

    def _label(self, name: str, key: str) -> int:
        try:
            return self._label_of[name]
        except KeyError:
            raise UsageError(f"sample {key!r}: label {name!r} is not in the vocabulary "
                             f"({len(self.vocabulary)} classes); pass it in vocabulary=[...]") from None


def _make_codec(codec_id: str, sample_rate: int, channels: int, mel: MelConfig | None) -> Codec:
    from shardkit.errors import UnknownCodecError

    try:
        return codec_class(codec_id).for_pack(int(sample_rate), int(channels), mel)
    except UnknownCodecError as exc:
        raise UsageError(str(exc)) from None


def _as_frames(audio: np.ndarray, channels: int, key: str) -> np.ndarray:
    """int16 ``(frames,)`` / ``(frames, channels)`` → int16 ``(frames, channels)``."""
    pcm = np.asarray(audio)
    if pcm.dtype != np.int16:
        raise UsageError(f"sample {key!r}: audio must be int16 PCM, got {pcm.dtype} "
                         "(scale float audio by 32767 and round: shardkit.ingest.decode.to_int16)")
    pcm = pcm[:, None] if pcm.ndim == 1 else pcm
    if pcm.ndim != 2 or pcm.shape[1] != channels or pcm.shape[0] == 0:
        raise UsageError(f"sample {key!r}: audio must be (frames,) or (frames, {channels}) with frames > 0, "
                         f"got shape {np.asarray(audio).shape}")
    return pcm
