"""The log-mel front end: int16 PCM batches → float32 log-mel spectrograms, on the GPU or the CPU.

Moving this step onto the accelerator is the point of the device stage: on a 2-core Kaggle machine
the CPU workers only slice int16 PCM out of shards, and the STFT runs where the model runs::

    frontend = LogMel(MelConfig(sample_rate=32000)).to(device)
    for batch in loader:                                   # batch["audio"]: int16 (B, T)
        audio = batch["audio"].to(device, non_blocking=True)
        mel = frontend(audio)                              # float32 (B, n_mels, frames)
"""

from __future__ import annotations

import torch
import torchaudio

from shardkit.encode.mel_config import MelConfig
from shardkit.errors import UsageError

#: int16 full scale: int16 PCM ``x`` becomes ``x / 32768`` in [-1, 1).
INT16_SCALE = 32768.0
#: Clips per STFT call on a CPU (the whole batch at once on a GPU). Per-example results do not depend
#: on it beyond float rounding: every clip's spectrogram, floor and normalisation are its own.
CPU_CHUNK = 4
_EPS = 1e-6


class LogMel(torch.nn.Module):
    """Log-mel spectrogram of a batch of clips, computed on the device of the module and the input.

    ``torchaudio.transforms.MelSpectrogram`` → ``torchaudio.transforms.AmplitudeToDB`` → optional
    per-example normalisation (see :class:`MelConfig`). The module has no parameters, only buffers
    (window and mel filterbank), so ``.to(device)`` moves it.

    The ``top_db`` floor is taken per example: each clip is clamped to ``its own peak - top_db``.
    (Called on a 3-D ``(B, n_mels, frames)`` tensor, torchaudio's ``AmplitudeToDB`` would clamp the
    whole batch to the loudest clip's peak, so a clip's features would depend on its batch mates.)

    The computation runs in float32 even inside ``torch.autocast``: a power spectrogram of
    full-scale audio reaches ~1e6, past float16's range.
    """

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MelConfig()
        c = self.config
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=c.sample_rate,
            n_fft=c.n_fft,
            win_length=c.resolved_win_length,
            hop_length=c.hop_length,
            f_min=c.f_min,
            f_max=c.resolved_f_max,
            n_mels=c.n_mels,
            power=c.power,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(
            stype="power" if c.power == 2.0 else "magnitude", top_db=c.top_db
        )

    def frames_for(self, num_samples: int) -> int:
        """Output frames for clips of ``num_samples`` samples: ``1 + num_samples // hop_length``."""
        return self.config.frames_for(num_samples)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrograms of a batch.

        Args:
            audio: ``(B, T)`` or ``(B, C, T)`` samples at ``config.sample_rate`` Hz, on the module's
                device. int16 PCM is scaled to float32 as ``x / 32768`` (on that device); floating
                input is taken as already in [-1, 1]. ``C > 1`` channels are downmixed by their mean.

        Returns:
            float32 ``(B, n_mels, frames)`` in dB (relative to 1.0 full scale), with
            ``frames = 1 + T // hop_length``; mean 0 / std 1 per example when
            ``config.normalize == "per_example"``.
        """
        x = self.to_float_mono(audio)
        with torch.autocast(device_type=x.device.type, enabled=False):
            step = CPU_CHUNK if x.device.type == "cpu" else x.shape[0]
            if x.shape[0] <= step:
                return self._log_mel(x)
            # on a CPU a whole batch's STFT (64 × 5 s: ~160 MB of complex values) runs from memory;
            # a few clips at a time stay in the caches, which is ~3× faster (docs/benchmarks-device.md)
            return torch.cat([self._log_mel(x[i:i + step]) for i in range(0, x.shape[0], step)])

    def _log_mel(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.melspec(x)                                  # (B, n_mels, frames)
        # (B, 1, n_mels, frames): torchaudio takes the top_db floor per leading index
        db = self.to_db(mel.unsqueeze(1)).squeeze(1)
        return self.normalize(db)

    def normalize(self, db: torch.Tensor) -> torch.Tensor:
        """The configured per-example normalisation of a dB log-mel ``(B, n_mels, frames)`` (identity
        for ``normalize="none"``)."""
        if self.config.normalize == "per_example":
            std, mean = torch.std_mean(db, dim=(1, 2), keepdim=True, correction=0)
            db = (db - mean) / (std + _EPS)
        return db

    @property
    def device(self) -> torch.device:
        """The device of the module's buffers (its mel filterbank): where it computes."""
        return self.melspec.mel_scale.fb.device

    def to_float_mono(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` or ``(B, C, T)`` int16 PCM or float audio on the module's device → float32 ``(B, T)``
        in [-1, 1): int16 as ``x / 32768``, channels downmixed by their mean. Raises
        :class:`~shardkit.errors.UsageError` for another shape or device, ``TypeError`` for another dtype."""
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"LogMel expects a torch.Tensor, got {type(audio).__name__}")
        if audio.dim() not in (2, 3):
            raise UsageError(
                f"LogMel expects audio of shape (batch, samples) or (batch, channels, samples), "
                f"got {tuple(audio.shape)}"
            )
        module_device = self.device
        if audio.device != module_device:
            raise UsageError(
                f"LogMel is on {module_device} but the audio is on {audio.device}; move the batch with "
                f"audio.to({str(module_device)!r}, non_blocking=True) or the module with .to(device)"
            )
        if audio.dtype == torch.int16:
            x = audio.to(torch.float32) * (1.0 / INT16_SCALE)  # exact: a power of two
        elif audio.is_floating_point():
            x = audio.to(torch.float32)
        else:
            raise TypeError(f"LogMel expects int16 PCM or floating-point audio, got {audio.dtype}")
        if x.dim() == 3:
            x = x.mean(dim=1) if x.shape[1] > 1 else x.squeeze(1)
        return x

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())


def dequantize(mel: torch.Tensor, mel_range: torch.Tensor) -> torch.Tensor:
    """A mel-u8 batch back to float32 dB, on its device (format v2 §3.3, scheme ``minmax``).

    Args:
        mel: uint8 ``(B, n_mels, frames)``, as :class:`shardkit.ShardDataset` yields it for mel-u8 sets.
        mel_range: float32 ``(B, 2)``: each row's ``[q_lo, q_hi]`` in dB (the batch's ``mel_range``).

    Returns:
        float32 ``(B, n_mels, frames)``: ``q_lo + q · (q_hi - q_lo) / 255``, within ``(q_hi - q_lo) / 510``
        dB of the log-mel that pack quantised.
    """
    if mel.dtype != torch.uint8 or mel.dim() != 3:
        raise UsageError(f"dequantize expects a uint8 (batch, n_mels, frames) tensor, got {mel.dtype} "
                         f"{tuple(mel.shape)}")
    if mel_range.shape != (mel.shape[0], 2):
        raise UsageError(f"mel_range must have shape ({mel.shape[0]}, 2) (the batch's 'mel_range'), "
                         f"got {tuple(mel_range.shape)}")
    if mel_range.device != mel.device:
        raise UsageError(f"mel is on {mel.device} but mel_range on {mel_range.device}; move both")
    rng = mel_range.to(torch.float32)
    lo = rng[:, 0, None, None]
    step = (rng[:, 1, None, None] - lo) / 255.0
    return lo + mel.to(torch.float32) * step


__all__ = ["INT16_SCALE", "LogMel", "dequantize"]
