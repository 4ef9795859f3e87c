"""``show_sample``: one sample as a picture — waveform and log-mel with its labels, seconds and Hz on
the axes — what a user opens to check a sample before a long training run.

Drawn with matplotlib (the ``plot`` extra: ``pip install 'shardkit[plot]'``) through its object API
and the Agg canvas, so it never touches pyplot's global state or the user's backend.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from shardkit.errors import UsageError
from shardkit.files import atomic_write, check_output
from shardkit.format import manifest_root


def show_sample(path: str | os.PathLike[str], key: str, output: str | os.PathLike[str] | None = None, *,
                force: bool = False, storage_options: dict[str, Any] | None = None) -> Path:
    """Draw sample ``key`` of the shard set at ``path`` into a PNG; returns its path.

    ``output`` defaults to ``<key>.png`` in the current folder (``/`` in keys becomes ``_``). For a
    waveform set: the waveform (amplitude in [-1, 1] against seconds) over the log-mel (dB, mel bands
    labelled in Hz against seconds) that the device stage's default front end computes at the set's rate.
    For a mel-u8 set: the stored spectrogram, dequantised to dB (no waveform is stored).

    Never overwrites by accident, as :func:`extract_sample`: an existing ``output`` needs ``force=True``;
    a path inside the set, or one that is not a regular file, is refused. The PNG appears whole or not at all.
    """
    from shardkit.read.shardset import ShardSet

    figure_cls, canvas_cls = _matplotlib()
    out = Path(output) if output is not None else Path(key.replace("/", "_") + ".png")
    check_output(out, force=force, refuse_inside=None if "://" in str(path) else manifest_root(path))
    with ShardSet.open(path, storage_options=storage_options) as ss:
        i = ss.find(key)
        meta, frames = ss.read_meta(i), ss.read_frames(i)
        waveform, db, mel = _signals(ss, i, frames)
    fig = figure_cls(figsize=(10, 6 if waveform is not None else 3.6), layout="constrained")
    axes = fig.subplots(2 if waveform is not None else 1, 1, squeeze=False)[:, 0]
    if waveform is not None:
        _draw_waveform(axes[0], waveform, ss.sample_rate)
    _draw_mel(fig, axes[-1], db, mel)
    fig.suptitle(_title(key, meta))
    png = io.BytesIO()
    canvas_cls(fig).print_png(png)
    atomic_write(out, png.getvalue())
    return out


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("drawing a sample needs matplotlib: pip install 'shardkit[plot]'") from None
    return Figure, FigureCanvasAgg


def _signals(ss: Any, i: int, frames: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, Any]:
    """(waveform float32 (samples,) or None, log-mel dB float32 (n_mels, frames), its MelConfig)."""
    import torch

    from shardkit.device.frontend import LogMel, dequantize
    from shardkit.encode.mel_config import MelConfig

    mel = ss.codec.mel
    if mel is not None:  # the set stores spectrograms: dequantise what is stored
        q = torch.from_numpy(np.ascontiguousarray(frames))[None]
        rng = torch.from_numpy(np.asarray(ss.q_range[i : i + 1], dtype=np.float32))
        return None, dequantize(q, rng)[0].numpy(), mel
    audio = frames.astype(np.float32) / 32768.0
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    mel = MelConfig.for_rate(ss.sample_rate)
    with torch.inference_mode():
        db = LogMel(mel)(torch.from_numpy(np.ascontiguousarray(mono))[None])[0].numpy()
    return mono, db, mel


def _draw_waveform(ax: Any, waveform: np.ndarray, rate: int) -> None:
    t = np.arange(len(waveform)) / rate
    ax.plot(t, waveform, linewidth=0.4, color="tab:blue")
    ax.set(xlim=(0, max(t[-1], 1 / rate) if len(t) else 1), ylim=(-1, 1), xlabel="time (s)",
           ylabel="amplitude", title=f"waveform, {rate} Hz")


def _draw_mel(fig: Any, ax: Any, db: np.ndarray, mel: Any) -> None:
    n_mels, n_frames = db.shape
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, n_frames * mel.hop_length / mel.sample_rate, 0, n_mels))
    hz = _mel_band_hz(mel)
    ticks = np.linspace(0, n_mels - 1, 6).round().astype(int)
    ax.set_yticks(ticks + 0.5, [f"{hz[t]:,.0f}" for t in ticks])
    ax.set(xlabel="time (s)", ylabel="mel band centre (Hz)",
           title=f"log-mel, {n_mels} bands {mel.f_min:g}–{mel.resolved_f_max:g} Hz, hop {mel.hop_length}")
    fig.colorbar(image, ax=ax, label="dB")


def _mel_band_hz(mel: Any) -> np.ndarray:
    """Centre frequencies in Hz of the mel bands (HTK mel scale, as the front end uses)."""
    lo, hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (mel.f_min, mel.resolved_f_max))
    points = np.linspace(lo, hi, mel.n_mels + 2)[1:-1]
    return 700.0 * (10.0 ** (points / 2595.0) - 1.0)


def _title(key: str, meta: dict[str, Any]) -> str:
    labels = ", ".join(x for x in [meta.get("primary_label") or "", *meta.get("secondary_labels", [])] if x)
    where = f"{meta.get('source', '')} at {float(meta.get('start_seconds', 0.0)):.2f} s" if meta.get("source") else ""
    return "  ·  ".join(x for x in (key, f"labels: {labels or 'none'}", where,
                                     f"{float(meta.get('duration_seconds', 0.0)):.2f} s") if x)
