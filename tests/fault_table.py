"""The fault-suite table at the end of docs/reliability.md, counted from a run of the tests
(``python tests/fault_table.py``, from the repository root with PYTHONPATH set as for the tests).

Runs the test files of every fault class with pytest (``--junitxml``, hypothesis statistics), maps
each test case (a parametrized case counts once) to its class and prints one markdown row per class:
cases run, survived (passed), samples lost and tracebacks. Every case asserts its own "no sample
lost" (identical bytes after a re-run, every sample read or named) and "no traceback" (only
shardkit's exceptions; no ``Traceback`` in the CLI's stderr), so a passed case counts 0 and 0; a
failed case is reported as not survived. For the fuzz class the examples hypothesis ran are added.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

#: class → [(test file, test-name regex)]; the first class that matches a case takes it
CLASSES: list[tuple[str, list[tuple[str, str]]]] = [
    ("forged shard sets: paths, sizes, bombs, FIFOs, devices, symlinks, traversal and symlink members, "
     "damaged members and indexes", [
        ("tests/unit/storage/test_local_storage_hostile.py", r"fifo|symlink|device|capped|ls_info"),
        ("tests/unit/format/test_untrusted.py", r""),
        ("tests/unit/check/test_verify_superset.py", r""),
        ("tests/unit/check/test_reindex.py", r""),
        ("tests/unit/dataset/test_crc.py", r""),
        ("tests/unit/read/test_meta_errors.py", r""),
    ]),
    ("signals: SIGINT (process group), SIGTERM, SIGKILL at seeded points, 1 and 2 workers; a signal inside a "
     "finaliser; a compact interrupted", [
        ("tests/integration/test_pack_signals.py", r""),
        ("tests/unit/test_cli_signals.py", r""),
        ("tests/integration/test_pack_safety.py", r"sigterm"),
        ("tests/integration/test_pack.py", r"kill_9"),
        ("tests/unit/versions/test_update.py", r"interrupted_compact"),
    ]),
    ("concurrent packs into one OUT", [("tests/integration/test_pack_safety.py", r"second_pack"),
                                       ("tests/integration/test_pack_race.py", r"")]),
    ("live reader during a re-pack / a shard replaced under a reader", [
        ("tests/integration/test_live_reader_repack.py", r""),
        ("tests/unit/storage/test_local_storage_hostile.py", r"replaced|rewritten|unchanged"),
    ]),
    ("disk full", [("tests/integration/test_pack.py", r"disk_full")]),
    ("nothing lost by accident: --overwrite, empty packs, changed sources, budget stops; `cat`/`show -o` over files, "
     "FIFOs, symlinks, devices; odd pack values; progress lines", [
        ("tests/integration/test_pack_safety.py", r"overwrite|packs_nothing|source_changed"),
        ("tests/integration/test_pack.py", r"budget|strict"),
        ("tests/integration/test_cli.py", r"never_overwrites|regular_file|odd_pack|progress_lines"),
        ("tests/integration/test_show.py", r"never_overwrites"),
    ]),
    ("hostile CSV: escapes from SRC, encodings, pathological cells, odd file names, symlinked sources, 2021-style "
     "filenames, mixed-type columns, malformed list cells", [
        ("tests/unit/ingest/test_sources_hostile.py", r""),
        ("tests/unit/ingest/test_list_columns.py", r"malformed"),
        ("tests/integration/test_pack_symlinks.py", r""),
        ("tests/unit/ingest/test_birdclef_layouts.py", r"2021"),
        ("tests/integration/test_typed_columns.py", r""),
    ]),
    ("broken and hostile audio, long recordings (bounded memory)", [
        ("tests/unit/ingest/test_decode.py", r""),
        ("tests/unit/ingest/test_decode_stream.py", r""),
        ("tests/integration/test_pack_long_source.py", r""),
        ("tests/integration/test_pack.py", r"bad_input"),
    ]),
    ("object storage: cut bodies, HTTP 500s, refused credentials, unreachable endpoints, objects replaced "
     "under a reader, size caps, kill -9 and failed uploads while packing into a bucket; redirects to another "
     "host, trickling servers, ignored Range, files planted in or a full cache_dir", [
        ("tests/integration/test_remote.py", r"faults|crc|missing|not_a_shard|unreachable|refused|persistent"),
        ("tests/integration/test_remote_integrity.py", r""),
        ("tests/integration/test_remote_hostile.py", r"credentials|trickling|ignores_range|planted|full_cache"),
        ("tests/unit/storage/cache/test_cache_store.py", r"planted|unusable|lock_files"),
        ("tests/integration/test_remote_pack.py", r"kill_9|500s|cut_bodies|refused|foreign|different|missing|"
                                                     r"unreachable|changed_sources|failed_background|killed"),
    ]),
    ("derived sets: a parent shard missing, with other bytes, or its Kaggle input not attached; a look-alike "
     "parent with a forged index, forged overrides", [
        ("tests/unit/versions/test_update.py", r"missing|other_bytes|differ|named"),
        ("tests/unit/versions/test_lineage_messages.py", r"look_alike|forged|relabel|missing_keys"),
        ("tests/integration/test_kaggle_delta.py", r""),
    ]),
    ("a Dask worker, the driver or the scheduler killed mid-pack; scheduler files that name no scheduler", [
        ("tests/integration/test_pack_dask.py", r"kill|sigkill|driver|unreachable|cannot_import|import|dying|"
                                                r"scheduler_file_that"),
    ]),
    ("Kaggle uploads: a PUT answered 500, a failed create, 'still processing' refusals, an upload that never "
     "answers, an HTML answer, control characters in a title", [
        ("tests/integration/test_kaggle_publish.py", r"failed|resume|error|busy|no_folder|answer|html|control"),
    ]),
    ("forged resume states and odd reader arguments (NaN, strings, fractions, huge batches, epochs out of range)", [
        ("tests/unit/dataset/test_resume.py", r"forged|refuses|too_big"),
        ("tests/unit/dataset/test_options.py", r"bad_values"),
        ("tests/unit/device/test_pipeline_state.py", r"forged"),
    ]),
    ("odd CLI inputs (every command)", [("tests/integration/test_cli_odd_inputs.py", r"")]),
    ("fuzzed parsers: manifest, index (zstd), .mp members, CSV", [("tests/fuzz", r"")]),
]


def _run(files: list[str], xml: Path) -> str:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
           "--hypothesis-show-statistics", *files]
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def _classify(cases: list[tuple[str, str, bool]]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {name: [] for name, _ in CLASSES}
    for file, test, passed in cases:
        for name, selectors in CLASSES:
            if any(file.startswith(f.removesuffix(".py").replace("/", ".")) and re.search(rx, test)
                   for f, rx in selectors):
                out[name].append(passed)
                break
    return out


def main() -> int:
    files = sorted({f for _, sel in CLASSES for f, _ in sel})
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        stdout = _run(files, xml)
        tree = ET.parse(xml)
    cases = []
    for tc in tree.iter("testcase"):
        failed = any(child.tag in ("failure", "error") for child in tc)
        skipped = any(child.tag == "skipped" for child in tc)
        if not skipped:
            cases.append((tc.get("classname", ""), tc.get("name", ""), not failed))
    examples = sum(int(n) for n in re.findall(r"(\d+) passing, \d+ failing", stdout))
    rows = _classify(cases)
    print("| fault class | cases run | survived | samples lost | tracebacks |")
    print("|---|---|---|---|---|")
    for name, results in rows.items():
        extra = f" (+{examples} hypothesis examples)" if name.startswith("fuzzed") else ""
        print(f"| {name} | {len(results)}{extra} | {sum(results)} | {0 if all(results) else 'see failures'} | "
              f"{0 if all(results) else 'see failures'} |")
    total = [r for results in rows.values() for r in results]
    print(f"| **all** | {len(total)} | {sum(total)} | 0 | 0 |" if all(total) else f"| **all** | {len(total)} | "
          f"{sum(total)} | see failures | see failures |")
    print(stdout.strip().splitlines()[-1], file=sys.stderr)
    return 0 if all(total) else 1


if __name__ == "__main__":
    sys.exit(main())
