"""The `shardkit` command line on real encoded audio: each command, its output and exit codes; the console
script without the [cli] extra; the verify progress bar."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_factory import make_file
from rich.console import Console

import shardkit
import shardkit.encode
from shardkit_cli.progress import verify_progress, verify_total

ROOT = Path(__file__).resolve().parents[2]
HINT = "shardkit: the command line needs click and rich: pip install 'shardkit[cli]'\n"


def run(*args, ok=True):
    """``python -m shardkit_cli ARGS``: through the launcher, as the console script runs."""
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_pack_info_ls_cat_verify_plan(corpus, tmp_path):
    src, csv = corpus
    out = tmp_path / "shards"
    p = run("pack", src, out, "--metadata", csv, "--shard-size", "300KB", "--workers", "2")
    assert "complete: 12 samples" in p.stdout
    assert "already complete" in run("pack", src, out, "--metadata", csv, "--shard-size", "300KB").stdout
    info = run("info", out).stdout
    assert "32000 Hz" in info and "samples" in info and "amecro" in info
    rows = [line.split("\t") for line in run("ls", out).stdout.splitlines()]
    assert len(rows) == 12 and all(len(r) == 5 for r in rows)
    key = rows[0][0]
    run("cat", out, key, "-o", tmp_path / "clip.wav")
    data, rate = sf.read(tmp_path / "clip.wav", dtype="int16")
    assert rate == 32000 and abs(len(data) - float(rows[0][2]) * 32000) <= 16  # ls prints 3 decimals
    assert '"source"' in run("cat", out, key, "--meta").stdout
    assert run("verify", out).stdout.startswith("OK")
    plan = run("plan", out, "--world-size", "3", "--batch-size", "2")
    assert "partial=pad" in plan.stdout
    shard = sorted(out.glob("shard-*.tar"))[0]
    raw = bytearray(shard.read_bytes())
    raw[1000] ^= 0xFF
    shard.write_bytes(bytes(raw))
    bad = run("verify", out, ok=False)
    assert bad.returncode == 4 and "BAD" in bad.stdout and shard.name in bad.stdout


def test_errors_are_one_line_with_exit_codes(corpus, tmp_path):
    src, csv = corpus
    p = run("pack", tmp_path / "nope", tmp_path / "o", ok=False)
    assert p.returncode == 1 and "source folder not found" in p.stderr and "Traceback" not in p.stderr
    p = run("pack", src, tmp_path / "o", "--shard-size", "lots", ok=False)
    assert p.returncode == 2 and "shard_size" in p.stderr and "Traceback" not in p.stderr
    p = run("info", tmp_path, ok=False)
    assert p.returncode == 1 and "no manifest" in p.stderr
    run("pack", src, tmp_path / "o2", "--metadata", csv)
    p = run("cat", tmp_path / "o2", "no/such-key", "-o", tmp_path / "x.wav", ok=False)
    assert p.returncode == 1 and "no sample with key" in p.stderr and "Traceback" not in p.stderr


def test_budget_exit_code(corpus, tmp_path):
    src, csv = corpus
    p = run("pack", src, tmp_path / "b", "--metadata", csv, "--shard-size", "200KB", "--budget", "500KB", ok=False)
    assert p.returncode == 3 and "budget reached" in p.stdout and "more are needed" in p.stdout


def console_script(*args, missing=()):
    """Run the ``shardkit`` entry point named in pyproject.toml, with the modules in ``missing`` made
    unimportable (``None`` in ``sys.modules``, as if the [cli] extra were not installed)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["shardkit"]
    module, func = target.split(":")
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in missing)
    code += f"from {module} import {func}\n{func}()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


@pytest.mark.parametrize("missing", [("click",), ("rich",), ("click", "rich")])
def test_console_script_without_cli_extra_prints_install_hint(missing, tmp_path):
    p = console_script("info", tmp_path, missing=missing)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", HINT)


def test_console_script_with_cli_extra_runs_the_commands():
    p = console_script("--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"shardkit, version {shardkit.__version__}\n"


def test_verify_bar_total_is_the_bytes_verify_reports(packed):
    # the total used to be the manifest's bytes, which count the indexes that verify hashes unreported
    screen = io.StringIO()
    reported = []
    with verify_progress(Console(file=screen, force_terminal=True, width=100), packed) as progress:
        report = shardkit.verify(packed, progress=lambda n: (reported.append(n), progress(n)))
    assert report.ok
    assert sum(reported) == verify_total(packed) < shardkit.info(packed).bytes
    assert "100%" in screen.getvalue()


def test_cat_never_overwrites_by_accident(packed, tmp_path):
    key = next(iter(shardkit.list_samples(packed))).key
    target = tmp_path / "x.wav"
    target.write_bytes(b"mine")
    for argv, needle in ((["-o", target], "exists; pass force=True (--force)"),
                         (["-o", packed / "shard-00000.tar", "--force"], "inside the shard set"),
                         (["-o", tmp_path / "missing" / "x.wav"], "does not exist")):
        proc = run("cat", packed, key, *argv, ok=False)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert target.read_bytes() == b"mine" and shardkit.verify(packed).ok
    run("cat", packed, key, "-o", target, "--force")
    assert target.read_bytes() == shardkit.read_sample(packed, key).data


def test_cat_force_never_replaces_what_is_not_a_regular_file(packed, tmp_path):
    """issue 22 item 2: --force may overwrite a regular file; a FIFO, a symlink or a device node is refused
    by name and stays what it was."""
    import os
    import stat

    key = next(iter(shardkit.list_samples(packed))).key
    fifo, link, real = tmp_path / "fifo", tmp_path / "link.wav", tmp_path / "real.wav"
    os.mkfifo(fifo)
    real.write_bytes(b"mine")
    link.symlink_to(real)
    for target, kind in ((fifo, "FIFO"), (link, "symbolic link"), (Path("/dev/null"), "device")):
        proc = run("cat", packed, key, "-o", target, "--force", ok=False)
        assert proc.returncode == 2 and kind in proc.stderr and "not a regular file" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink() and real.read_bytes() == b"mine"
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_odd_pack_and_plan_values_are_named(packed, corpus, tmp_path):
    """issue 22 item 12 (CLI parts): --max-seconds 1e-9 is refused (was: no limit), --n-fft 1 is refused (was:
    all-zero mels), plan --workers 0 says the training process reads itself (was: a table as for 1 worker)."""
    src, csv = corpus
    for argv, needle in ((["--max-seconds", "1e-9"], "max_seconds must be at least 0.01 s"),
                         (["--format", "mel-u8", "--n-fft", "1"], "128 of the 128 mel bands all zero")):
        proc = run("pack", src, tmp_path / "o", "--metadata", csv, *argv, ok=False)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()
    with pytest.raises(shardkit.errors.UsageError, match="6 of the 128 mel bands"):
        shardkit.PackOptions(codec="mel-u8", mel=shardkit.MelConfig(n_fft=512))
    assert shardkit.MelConfig(n_fft=512).n_fft == 512  # sets packed so before stay readable
    assert "the training process reads every batch itself" in run("plan", packed, "--workers", "0").stdout


def test_progress_lines_when_not_a_terminal(corpus, packed, tmp_path):
    """issue 22 item 21: ``!shardkit pack`` in a notebook (stdout/stderr are pipes) prints plain progress lines
    at a modest rate (SHARDKIT_PROGRESS_SECONDS, default 10; 0 here: every source), no bar codes; verify too."""
    import os
    import re

    src, csv = corpus
    env = {**os.environ, "SHARDKIT_PROGRESS_SECONDS": "0"}
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", "pack", str(src), str(tmp_path / "o"), "--metadata",
                           str(csv), "--shard-size", "300KB"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("pack: ")]
    assert len(lines) in (12, 13) and lines[0].startswith("pack: 1/12 files") and "\x1b" not in proc.stderr, proc.stderr
    assert re.fullmatch(r"pack: 12/12 files \(100%\), [0-9.]+ h audio, [0-9.]+ h/min, [0-9.]+ MB, \d+ shards, "
                        r"0 rejects, [0-9]+ s elapsed", lines[-1]), lines[-1]
    proc = subprocess.run([sys.executable, "-m", "shardkit_cli", "verify", str(packed)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"verify: [0-9.]+ of [0-9.]+ MB hashed \(100%\)", proc.stderr), proc.stderr
    quiet = subprocess.run([sys.executable, "-m", "shardkit_cli", "verify", str(packed)], capture_output=True,
                           text=True)  # the default rate: a quick run prints its first and last lines only
    assert len([x for x in quiet.stderr.splitlines() if x.startswith("verify: ")]) == 2


def test_a_key_without_its_piece_number_or_with_an_extension_gets_a_hint(packed):
    """issue 22 item 23: in recordings mode every key ends in -0000; ``cat SET label/XC1`` says "did you mean
    …-0000?", and a key with ``.mp3`` says to drop '.mp3' (was: "drop the '.wav'/'.mp'")."""
    key = next(k.key for k in shardkit.list_samples(packed) if k.key.endswith("-0000"))
    stem = key.removesuffix("-0000")
    for asked in (stem, stem + ".mp3"):
        proc = run("cat", packed, asked, "-o", "/tmp/never-written.wav", ok=False)
        assert proc.returncode != 0 and f"did you mean '{key}'" in proc.stderr, proc.stderr
    assert "drop '.mp3'" in run("cat", packed, stem + ".mp3", "--meta", ok=False).stderr


def test_info_names_each_row_once_and_says_which_classes_it_counts(packed):
    """issue 22 item 23: ``info`` had two rows named ``audio`` and a class count that ``log`` contradicted."""
    out = run("info", packed).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith("top classes")]
    assert names.count("audio") == 0 and "stored as" in out and "duration" in out
    i = shardkit.info(packed)
    assert f"{i.classes} in the vocabulary" in out and f"{len(i.label_counts)} as a primary label" in out


def test_pack_summary_reports_split_recordings_and_padding(corpus, tmp_path):
    """issue 22 item 23: --max-seconds splits long recordings into equal pieces (each its own sample): the help
    and the summary say so; segments mode's summary says how much of the audio is zero padding."""
    src, csv = corpus
    assert "equal pieces" in run("pack", "--help").stdout
    r = run("pack", src, tmp_path / "r", "--metadata", csv, "--max-seconds", "2")
    assert "more samples than recordings" in r.stdout and "--max-seconds 2 were split" in r.stdout, r.stdout
    r = run("pack", src, tmp_path / "s", "--metadata", csv, "--mode", "segments", "--segment-seconds", "5")
    assert "h of it zero padding (--tail pad)" in r.stdout and "more samples than" not in r.stdout, r.stdout
    assert "incl. the zero padding" in run("info", tmp_path / "s").stdout


def test_reindex_rebuilds_a_deleted_index_and_the_messages_point_at_it(packed, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(packed, out)
    index = sorted(out.glob("*.index"))[0]
    before = index.read_bytes()
    index.unlink()
    bad = run("verify", out, ok=False)
    assert bad.returncode == 4 and f"shardkit reindex {out}" in bad.stdout
    p = run("ls", out, ok=False)
    assert p.returncode == 1 and "shardkit reindex" in p.stderr and "Traceback" not in p.stderr
    assert f"rebuilt {index.name}" in run("reindex", out).stdout
    assert index.read_bytes() == before and run("verify", out).stdout.startswith("OK")


def test_brackets_in_names_and_messages_print_as_text(tmp_path):
    """Rich markup is off for everything the library and the data say: a file named ``bad [plot].ogg`` and the
    reason it was rejected print whole (rich read ``[plot]`` as a tag and dropped it)."""
    src = tmp_path / "src"
    src.mkdir()
    make_file(src / "good.wav", seconds=1.0)
    (src / "bad [plot].ogg").write_bytes(b"not audio at all")
    p = run("pack", src, tmp_path / "out")
    assert "1 sources rejected" in p.stdout and "bad [plot].ogg" in p.stdout


def test_format_choices_and_codec_options_come_from_the_codecs(corpus, tmp_path):
    help_text = run("pack", "--help").stdout
    assert f"[{'|'.join(shardkit.encode.codec_ids())}]" in help_text and "mel-u8: mel bands" in help_text
    p = run("pack", corpus[0], tmp_path / "o", "--n-mels", "64", ok=False)  # a mel-u8 setting on a wav16 pack
    assert p.returncode == 2 and "n_mels is not a setting of codec 'wav16'" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o").exists()


def test_plan_takes_the_datasets_recipe_options(packed, tmp_path):
    """``shardkit plan`` with a subset (--keys, --where), weighted draws and a label layer prints what
    ``shardkit.plan_split`` says, which is what a ShardDataset with those options reads (tests/integration/
    test_dryrun.py): the epoch's items, the subset, the draws, each rank's row and the recipe's warnings."""
    keys = sorted(shardkit.ShardSet.open(packed).keys)
    (tmp_path / "keys.txt").write_text("\n".join(keys[::2]) + "\n")
    layered = tmp_path / "pl"
    shardkit.add_labels(packed, layered, name="pl", keys=keys[1:], probs=np.full((len(keys) - 1, 1), 0.5),
                        classes=["amecro"])  # no row for keys[0]
    argv = ["--world-size", "2", "--workers", "2", "--batch-size", "2", "--crop-seconds", "1", "--keys",
            tmp_path / "keys.txt", "--where", "rating >= 1.5", "--weights", "balanced", "--samples-per-epoch", "7",
            "--targets", "pl", "--search-path", packed.parent]
    out = run("plan", layered, *argv).stdout
    p = shardkit.plan_split(layered, world_size=2, workers=2, batch_size=2, crop_seconds=1.0,
                            keys=tmp_path / "keys.txt", where="rating >= 1.5",
                            weights="balanced", samples_per_epoch=7, targets="pl", search_path=[packed.parent])
    cols = shardkit.sample_columns(packed)
    subset = set(keys[::2]) & set(cols["key"][cols["rating"] >= 1.5].tolist())
    assert p.items == 7 and p.drawn and p.samples == len(subset) and p.targets_samples == len(subset - {keys[0]})
    assert "every epoch: 7 items, partial=pad, batch 2" in out
    assert f"subset: {p.samples} of the set's {len(keys)} samples ({p.samples} items)" in out
    assert f"draws: 7 per epoch from {p.samples} items; a sample gets" in out
    assert f"targets 'pl': rows for {p.targets_samples} of the {p.samples} samples read" in out
    for r in p.ranks:
        cells = [str(r[k]) for k in ("rank", "samples", "batches", "padded")] + list(map(str, r["worker_batches"]))
        assert cells in [line.split() for line in out.splitlines()], out
    assert ("warning: samples_per_epoch=7 is not a multiple of one step (2 rank(s) × batch_size 2 = 4 items): the "
            "last step is padded with 1 filler items; samples_per_epoch=4 or 8 fills every step") in out
    # what the dataset refuses, the plan refuses with the same one-line message
    bad = run("plan", packed, "--crop-seconds", "1", "--where", "rating > 99", ok=False)
    assert bad.returncode == 2 and "keys=/where= select no sample of the set's 12" in bad.stderr
