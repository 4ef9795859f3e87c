"""mel-u8 shard sets end to end on real encoded audio: `shardkit pack --format mel-u8`, the quantisation
error against the float log-mel of the same int16 audio, DataLoader workers, webdataset, the device stage."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
import webdataset as wds

import shardkit
from shardkit.device import AugmentConfig, DevicePipeline, LogMel, MelConfig, dequantize
from shardkit.encode import mel_u8
from shardkit.format import COLUMNS_VERSION

MEL = ["--n-mels", "64", "--hop-length", "320", "--f-max", "15000"]


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli.main", *map(str, args)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def sets(corpus, tmp_path_factory):
    """(wav16 segments set, mel-u8 segments set, mel-u8 recordings set) of the same corpus."""
    src, csv = corpus
    root = tmp_path_factory.mktemp("mel")
    seg = ["--mode", "segments", "--segment-seconds", "1.5", "--tail", "keep"]
    cli("pack", src, root / "wav", "--metadata", csv, *seg)
    out = cli("pack", src, root / "mel", "--metadata", csv, *seg, "--format", "mel-u8", *MEL, "--workers", "2",
              "--shard-size", "200KB")
    assert "complete:" in out
    cli("pack", src, root / "melrec", "--metadata", csv, "--format", "mel-u8", *MEL)
    return root / "wav", root / "mel", root / "melrec"


def test_info_ls_cat_verify(sets, tmp_path):
    _, mel, _ = sets
    assert "mel-u8" in cli("info", mel) and "n_mels=64" in cli("info", mel)
    assert cli("verify", mel).startswith("OK")
    key = cli("ls", mel).splitlines()[0].split("\t")[0]
    cli("cat", mel, key, "-o", tmp_path / "x.npy")
    arr = np.load(tmp_path / "x.npy")
    assert arr.dtype == np.uint8 and arr.shape[0] == 64
    doc = shardkit.info(mel)
    assert doc.format_version == COLUMNS_VERSION and doc.codec == "mel-u8"  # the corpus's `type` is a list column


def test_quantisation_error_within_the_bound(sets):
    wav, mel, _ = sets
    ss = shardkit.ShardSet.open(mel)
    ref = shardkit.ShardSet.open(wav)
    assert ss.keys == ref.keys  # same sources, same segments, same order
    front = LogMel(MelConfig.from_dict(ss.mel))
    worst = 0.0
    for i in range(len(ss)):
        audio = torch.from_numpy(ref.read_frames(i).copy())[None]
        exact = front(audio)[0]                                           # float dB (64, frames)
        stored = torch.from_numpy(ss.read_frames(i).copy())[None]            # uint8 (1, 64, frames)
        lo, hi = (float(v) for v in ss.q_range[i])
        back = dequantize(stored, torch.tensor([[lo, hi]]))[0]
        assert back.shape == exact.shape and int(ss.frames[i]) == exact.shape[1]
        err = float((back - exact).abs().max())
        assert err <= mel_u8.max_error_db(lo, hi) + 1e-4, (ss.keys[i], err)
        assert hi - lo <= 80.0 + 1e-3
        worst = max(worst, err)
    assert worst > 0  # the comparison did compare something


def test_dataloader_workers_stream_every_sample_once(sets):
    _, mel, _ = sets
    ds = shardkit.ShardDataset(mel, batch_size=4, shuffle=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    ss = ds.shard_set
    seen = []
    for batch in loader:
        assert batch["mel"].dtype == torch.uint8 and batch["mel"].shape[1] == 64
        for row, i in enumerate(batch["index"].tolist()):
            n = int(ss.frames[i])
            np.testing.assert_array_equal(batch["mel"][row, :, :n].numpy(), ss.read_frames(i))
            assert not batch["mel"][row, :, n:].any()
            np.testing.assert_array_equal(batch["mel_range"][row].numpy(), ss.q_range[i])
        seen += batch["keys"]
    assert sorted(seen) == sorted(ss.keys)


def test_random_crops_in_frames_and_the_device_stage(sets):
    _, _, rec = sets
    ds = shardkit.ShardDataset(rec, batch_size=4, crop_seconds=1.0, crops_per_recording=2, seed=3)
    ss = ds.shard_set
    frames = 1 + 32000 // 320
    augment = AugmentConfig(gain_p=0.5, shift_p=0.5, mixup_p=0.5, spec_p=0.5)
    pipe = DevicePipeline(MelConfig.from_dict(ss.mel), augment, seed=0)
    auto = DevicePipeline.for_shard_set(ds, augment, seed=0)  # the same pipeline, chosen by the codec
    assert auto.mel_config == pipe.mel_config
    for batch in ds:
        assert batch["mel"].shape == (4, 64, frames)
        for row, i in enumerate(batch["index"].tolist()):
            whole = ss.read_frames(i)
            got = batch["mel"][row].numpy()
            n = min(frames, whole.shape[1])
            # the crop is a window of the stored spectrogram
            starts = [s for s in range(whole.shape[1] - n + 1) if np.array_equal(whole[:, s:s + n], got[:, :n])]
            assert starts, ss.keys[i]
        out, labels = pipe(batch["mel"], batch["labels"], mel_range=batch["mel_range"])
        assert out.shape == (4, 64, frames) and torch.isfinite(out).all() and labels.shape == batch["labels"].shape
        same, same_labels = auto.batch(batch)
        assert torch.equal(same, out) and torch.equal(same_labels, labels)


def test_webdataset_reads_the_npy_members(sets):
    _, mel, _ = sets
    ss = shardkit.ShardSet.open(mel)
    urls = [str(mel / n) for n in ss.shard_names]
    count = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode():
        i = ss.find(sample["__key__"])
        np.testing.assert_array_equal(sample["npy"], ss.read_frames(i))
        assert sample["mp"]["q_lo"] == pytest.approx(float(ss.q_range[i, 0]))
        count += 1
    assert count == len(ss)
    np.testing.assert_array_equal(np.load(io.BytesIO(ss.read_data_member(0))), ss.read_frames(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pack_on_the_gpu_matches_the_cpu_within_one_step(corpus, sets, tmp_path):
    src, csv = corpus
    _, mel, _ = sets
    gpu = tmp_path / "gpu"
    shardkit.pack(src, gpu, metadata=csv, device="cuda", workers=2, options=shardkit.PackOptions(
        codec="mel-u8", mode="segments", segment_seconds=1.5, tail="keep", shard_size="200KB",
        mel=MelConfig(n_mels=64, hop_length=320, f_max=15000.0)))
    a, b = shardkit.ShardSet.open(mel), shardkit.ShardSet.open(gpu)
    assert a.keys == b.keys
    for i in range(len(a)):
        qa, qb = a.read_frames(i).astype(int), b.read_frames(i).astype(int)
        assert np.abs(qa - qb).max() <= 1, a.keys[i]           # float rounding may cross one boundary
        np.testing.assert_allclose(a.q_range[i], b.q_range[i], atol=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_asking_for_a_missing_gpu_writes_nothing(corpus, tmp_path):
    from shardkit.errors import UsageError

    out = tmp_path / "never"
    with pytest.raises(UsageError, match="no CUDA GPU"):
        shardkit.pack(corpus[0], out, metadata=corpus[1], device="cuda",
                      options=shardkit.PackOptions(codec="mel-u8"))
    assert not out.exists()
