"""Odd CLI inputs (wrong types, missing files, odd URLs, empty folders, a set with zero shards, an
unwritable OUT, ...) for tests/integration/test_cli_odd_inputs.py: each must exit non-zero with a
short message, never a traceback. Placeholders: {set} a packed set, {key} one of its keys, {zero} a
set whose manifest lists no shards, {empty} an empty folder, {file} a plain file, {audio} the source
folder, {csv} its metadata CSV, {badjson} a folder whose manifest.json is not JSON, {badcsv} a CSV in
no known encoding, {nofn} a CSV without a filename column, {tmp} a fresh folder, {missing} a path
that does not exist."""

from __future__ import annotations

CASES: dict[str, list[str]] = {
    # pack: sources and metadata
    "pack-src-missing": ["pack", "{missing}", "{tmp}/o"],
    "pack-src-empty": ["pack", "{empty}", "{tmp}/o"],
    "pack-src-is-file": ["pack", "{file}", "{tmp}/o"],
    "pack-metadata-missing": ["pack", "{audio}", "{tmp}/o", "--metadata", "{missing}.csv"],
    "pack-metadata-undecodable": ["pack", "{audio}", "{tmp}/o", "--metadata", "{badcsv}"],
    "pack-metadata-no-filename": ["pack", "{audio}", "{tmp}/o", "--metadata", "{nofn}"],
    "pack-metadata-is-folder": ["pack", "{audio}", "{tmp}/o", "--metadata", "{empty}"],
    # pack: OUT
    "pack-out-is-file": ["pack", "{audio}", "{file}"],
    "pack-out-unwritable": ["pack", "{audio}", "/proc/shardkit-out"],
    "pack-out-other-set": ["pack", "{audio}", "{set}", "--sample-rate", "16000"],
    "pack-out-bad-manifest": ["pack", "{audio}", "{badjson}"],
    "pack-resume-nothing": ["pack", "{audio}", "{tmp}/o", "--resume"],
    "pack-url-scheme": ["pack", "{audio}", "ftp://host/prefix/"],
    "pack-url-empty": ["pack", "{audio}", "s3://"],
    "pack-url-refused": ["pack", "{audio}", "http://127.0.0.1:9/prefix/"],
    "pack-staging-is-file": ["pack", "{audio}", "s3://bucket/prefix/", "--staging", "{file}"],
    # pack: option values
    "pack-rate-text": ["pack", "{audio}", "{tmp}/o", "--sample-rate", "abc"],
    "pack-rate-zero": ["pack", "{audio}", "{tmp}/o", "--sample-rate", "0"],
    "pack-max-seconds-nan": ["pack", "{audio}", "{tmp}/o", "--max-seconds", "nan"],
    "pack-max-seconds-negative": ["pack", "{audio}", "{tmp}/o", "--max-seconds", "-1"],
    "pack-segment-inf": ["pack", "{audio}", "{tmp}/o", "--mode", "segments", "--segment-seconds", "inf"],
    "pack-hop-zero": ["pack", "{audio}", "{tmp}/o", "--mode", "segments", "--hop-seconds", "0"],
    "pack-shard-size-text": ["pack", "{audio}", "{tmp}/o", "--shard-size", "banana"],
    "pack-shard-size-tiny": ["pack", "{audio}", "{tmp}/o", "--shard-size", "1KB"],
    "pack-budget-text": ["pack", "{audio}", "{tmp}/o", "--budget", "banana"],
    "pack-budget-negative": ["pack", "{audio}", "{tmp}/o", "--budget", "-5"],
    "pack-workers-zero": ["pack", "{audio}", "{tmp}/o", "--workers", "0"],
    "pack-workers-negative": ["pack", "{audio}", "{tmp}/o", "--workers", "-3"],
    "pack-device-banana": ["pack", "{audio}", "{tmp}/o", "--format", "mel-u8", "--device", "banana"],
    "pack-n-mels-zero": ["pack", "{audio}", "{tmp}/o", "--format", "mel-u8", "--n-mels", "0"],
    "pack-hop-length-negative": ["pack", "{audio}", "{tmp}/o", "--format", "mel-u8", "--hop-length", "-1"],
    "pack-f-min-above-nyquist": ["pack", "{audio}", "{tmp}/o", "--format", "mel-u8", "--f-min", "20000"],
    "pack-max-seconds-tiny": ["pack", "{audio}", "{tmp}/o", "--max-seconds", "1e-9"],
    "pack-segment-tiny": ["pack", "{audio}", "{tmp}/o", "--mode", "segments", "--segment-seconds", "1e-9"],
    "pack-n-fft-one": ["pack", "{audio}", "{tmp}/o", "--format", "mel-u8", "--n-fft", "1"],
    "pack-top-db-nan": ["pack", "{audio}", "{tmp}/o", "--format", "mel-u8", "--top-db", "nan"],
    # reading commands on odd locations
    **{f"{cmd}-{name}": [cmd, where] for cmd in ("ls", "info", "verify") for name, where in (
        ("missing", "{missing}"), ("empty", "{empty}"), ("file", "{file}"), ("bad-manifest", "{badjson}"),
        ("url-empty", "s3://"), ("url-scheme", "ftp://host/x/"), ("url-refused", "http://127.0.0.1:9/x/"),
        ("url-no-bucket", "s3:///prefix/"))},
    # cat / show
    "cat-no-such-key": ["cat", "{set}", "nosuchkey", "-o", "{tmp}/x.wav"],
    "cat-traversal-key": ["cat", "{set}", "../../etc/passwd", "-o", "{tmp}/x.wav"],
    "cat-into-missing-folder": ["cat", "{set}", "{key}", "-o", "{tmp}/missing/x.wav"],
    "cat-over-a-file": ["cat", "{set}", "{key}", "-o", "{file}"],
    "cat-into-the-set": ["cat", "{set}", "{key}", "-o", "{set}/x.wav"],
    "cat-zero-shards": ["cat", "{zero}", "{key}", "-o", "{tmp}/x.wav"],
    "cat-missing-set": ["cat", "{missing}", "{key}", "-o", "{tmp}/x.wav"],
    "show-no-such-key": ["show", "{set}", "nosuchkey", "-o", "{tmp}/x.png"],
    "show-over-a-file": ["show", "{set}", "{key}", "-o", "{file}"],
    "show-into-the-set": ["show", "{set}", "{key}", "-o", "{set}/x.png"],
    "show-over-a-device": ["show", "{set}", "{key}", "-o", "/dev/null", "--force"],
    "cat-over-a-device": ["cat", "{set}", "{key}", "-o", "/dev/null", "--force"],
    # update / compact / kaggle into a folder that cannot be created
    "update-new-under-a-file": ["update", "{audio}", "{set}", "{file}/new", "--metadata", "{csv}"],
    "update-new-unwritable": ["update", "{audio}", "{set}", "/proc/shardkit-new", "--metadata", "{csv}"],
    "compact-out-under-a-file": ["compact", "{set}", "{file}/c"],
    "compact-out-unwritable": ["compact", "{set}", "/proc/shardkit-compact"],
    "wheelhouse-under-a-file": ["kaggle", "wheelhouse", "{file}/w", "--no-deps"],
    "wheelhouse-unwritable": ["kaggle", "wheelhouse", "/proc/shardkit-wheels", "--no-deps"],
    "kaggle-prepare-out-under-a-file": ["kaggle", "prepare", "{set}", "--id", "someone/some-set", "--title",
                                        "A shard set", "--out", "{file}/k"],
    "show-missing-set": ["show", "{missing}", "{key}", "-o", "{tmp}/x.png"],
    # plan
    "plan-world-size-zero": ["plan", "{set}", "--world-size", "0"],
    "plan-batch-size-zero": ["plan", "{set}", "--batch-size", "0"],
    "plan-batch-size-text": ["plan", "{set}", "--batch-size", "x"],
    "plan-workers-negative": ["plan", "{set}", "--workers", "-1"],
    "plan-crops-zero": ["plan", "{set}", "--crops-per-recording", "0"],
    "plan-missing": ["plan", "{missing}"],
    "plan-empty": ["plan", "{empty}"],
    "plan-keys-missing-file": ["plan", "{set}", "--keys", "{tmp}/nokeys.txt"],
    "plan-keys-unknown": ["plan", "{set}", "--keys", "{file}"],
    "plan-where-not-an-expression": ["plan", "{set}", "--where", "rating >"],
    "plan-where-a-call": ["plan", "{set}", "--where", "__import__('os').getcwd()"],
    "plan-where-no-such-column": ["plan", "{set}", "--where", "nosuch > 1"],
    "plan-where-selects-nothing": ["plan", "{set}", "--where", "rating > 99"],
    "plan-weights-unknown": ["plan", "{set}", "--weights", "rarest"],
    "plan-weights-validation": ["plan", "{set}", "--weights", "balanced", "--validation"],
    "plan-samples-per-epoch-zero": ["plan", "{set}", "--samples-per-epoch", "0"],
    "plan-targets-no-layer": ["plan", "{set}", "--targets", "pseudo"],
    "plan-grid-no-crop": ["plan", "{set}", "--grid"],
    # reindex
    "reindex-missing": ["reindex", "{missing}"],
    "reindex-empty": ["reindex", "{empty}"],
    "reindex-file": ["reindex", "{file}"],
    "reindex-bad-manifest": ["reindex", "{badjson}"],
    # folds
    "folds-missing-set": ["folds", "{missing}", "-o", "{tmp}/f.csv"],
    "folds-k-one": ["folds", "{set}", "-k", "1", "-o", "{tmp}/f.csv"],
    "folds-k-text": ["folds", "{set}", "-k", "x", "-o", "{tmp}/f.csv"],
    "folds-k-too-many": ["folds", "{set}", "-k", "100000", "-o", "{tmp}/f.csv"],
    "folds-no-such-column": ["folds", "{set}", "--group", "nosuchcolumn", "-o", "{tmp}/f.csv"],
    "folds-over-a-file": ["folds", "{set}", "-o", "{file}"],
    "folds-into-a-folder": ["folds", "{set}", "-o", "{empty}"],
    "folds-into-missing-folder": ["folds", "{set}", "-o", "{tmp}/missing/f.csv"],
    "folds-no-output": ["folds", "{set}"],
    # demo
    "demo-workdir-is-file": ["demo", "--workdir", "{file}"],
    "demo-workers-text": ["demo", "--workers", "x"],
    # the group
    "unknown-command": ["nosuchcommand"],
}

#: odd inputs that may succeed (exit 0) but never with a traceback
CLEAN: dict[str, list[str]] = {
    "ls-zero-shards": ["ls", "{zero}"],
    "info-zero-shards": ["info", "{zero}"],
    "verify-zero-shards": ["verify", "{zero}"],
    "plan-zero-shards": ["plan", "{zero}"],
    "pack-budget-tiny": ["pack", "{audio}", "{tmp}/o", "--budget", "10"],  # INCOMPLETE, exit 3
}


def run_all(cases: dict[str, list[str]]) -> dict[str, dict[str, object]]:
    """Run each case's argv through the CLI's entry point in this process (one interpreter for all,
    which keeps ~70 cases to seconds): exit code, stderr, and the traceback Python would print for an
    exception that escaped ``main`` (there should be none)."""
    import contextlib
    import io
    import sys
    import traceback

    from shardkit_cli.main import main

    out: dict[str, dict[str, object]] = {}
    for name, argv in cases.items():
        stderr, stdout = io.StringIO(), io.StringIO()
        code: object = 0
        sys.argv = ["shardkit", *argv]
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                main()
            except SystemExit as exc:
                code = exc.code
            except BaseException:  # what the interpreter would print and exit 1 for
                print(traceback.format_exc(), file=sys.stderr)
                code = 1
        out[name] = {"code": code if isinstance(code, int) else 1, "stderr": stderr.getvalue(),
                     "stdout": stdout.getvalue()}
    return out


if __name__ == "__main__":  # python cli_cases.py IN.json OUT.json: {name: argv} → {name: result}
    import json
    import sys

    with open(sys.argv[1]) as f:
        todo = json.load(f)
    with open(sys.argv[2], "w") as f:
        json.dump(run_all(todo), f)
