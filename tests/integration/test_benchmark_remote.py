"""The object-storage benchmark (benchmarks/remote.py): its report from a run's figures, the skip without moto,
the latency proxy it measures through, and a --quick smoke run (slow). No speed is asserted anywhere."""

from __future__ import annotations

import http.server
import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from benchmarks import loopback, remote

ROOT = Path(__file__).resolve().parents[2]


def _result(method: str, workers: int, clips_per_s: float) -> dict:
    return {"method": method, "label": method, "workers": workers, "group": "shardkit", "status": "ok", "reason": "",
            "clips_per_s": clips_per_s, "mb_per_s": clips_per_s * 0.32, "runs": [clips_per_s]}


def _doc() -> dict:
    res = [_result("segments-local", 0, 10_000.0), _result("segments-http-0ms", 0, 500.0),
           _result("segments-http-50ms", 0, 400.0), _result("segments-local", 2, 8_000.0),
           _result("segments-http-0ms", 2, 300.0), _result("segments-http-50ms", 2, 200.0)]
    doc = {"delay_s": 0.05, "delays_s": [0.0, 0.05], "servers": ["http"], "seconds": 3.0, "repeats": 3, "workers": 2,
           "load": {"start": 1.0, "end": 2.0},
           "upload": {"bytes": {"segments": 10**9}, "seconds": 20.0}, "results": res,
           "raw": [{"where": w, "concurrency": c, "window_bytes": remote.RAW_WINDOW, "mb_per_s": mb,
                    "clips_per_s": mb * 1e6 / 320_000, "seconds": 2.0}
                   for w, c, mb in (("http-0ms", 1, 100.0), ("http-0ms", 4, 160.0), ("http-50ms", 4, 150.0))]}
    doc["ratios"] = remote._ratios(res, 50)
    doc["targets"] = remote._targets(doc, 50)
    return doc


def test_report_states_targets_ratios_and_the_server_ceiling():
    doc = _doc()
    assert doc["ratios"]["segments/http-50ms/local_1proc"] == pytest.approx(0.04)
    assert [t["met"] for t in doc["targets"]] == [False, False]
    assert "1 proc" in doc["targets"][0]["target"] and "DL×2" in doc["targets"][1]["target"]
    assert remote.ceiling(doc, "http-0ms")["mb_per_s"] == 160.0
    md = remote.markdown(doc)
    assert "| segments-http-50ms | 1 proc | 400 | 128 | 0.040 | 0.85 |" in md
    assert "0.04× — missed" in md
    text = remote.bound(doc, doc["targets"][0]["target"])
    assert "at most 150 MB/s" in text and "shardkit reached 0.85× that ceiling" in text


def test_report_read_takes_the_remote_targets_and_section():
    from benchmarks.report_read import _bound, _md_remote

    doc = {"remote": _doc(), "results": [], "ratios": {}}
    assert _md_remote(doc)[0] == "### Object storage"
    assert "that ceiling" in _bound(doc, doc["remote"]["targets"][1]["target"])


def test_without_moto_the_rows_are_skipped_with_the_reason(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a))
    doc = remote.measure_remote({"segments": tmp_path}, seconds=0.1, repeats=1, servers=("http", "moto"),
                                log=lambda _m: None)
    assert "moto" in doc["skipped"] and doc["results"] == []
    assert [t["met"] for t in doc["targets"]] == [None, None]
    assert remote.markdown(doc).startswith("Not measured here: not installed: moto")


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"x" * 3_000_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_latency_proxy_delays_the_first_byte_and_streams_the_body():
    upstream = loopback.serve(_Hello)
    slow = loopback.proxy(loopback.url_of(upstream), loopback.Faults(match=".", delay=0.05))
    try:
        for _ in range(2):  # the second request reuses both kept-alive connections
            t0 = time.perf_counter()
            with urllib.request.urlopen(loopback.url_of(slow) + "/obj") as r:
                data = r.read()
            assert len(data) == 3_000_000 and time.perf_counter() - t0 >= 0.05
    finally:
        slow.shutdown()
        upstream.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_remote_benchmark_writes_its_rows(corpus, tmp_path):
    if remote.missing():
        pytest.skip(remote.missing())
    from shardkit import PackOptions, pack

    seg = tmp_path / "segments"
    pack(corpus[0], seg, metadata=corpus[1], options=PackOptions(mode="segments", shard_size="300KB"))
    out = tmp_path / "bench"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.remote", "--quick", "--segments", str(seg), "--batch",
                           "4", "--servers", "http,moto", "--delays", "0,0.05", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "remote.json").read_text())
    rows = {(r["method"], r["workers"]): r for r in doc["results"]}
    wheres = ("http-0ms", "http-50ms", "s3-0ms", "s3-50ms")
    assert set(rows) == {(f"segments-{w}", k) for w in ("local", *wheres) for k in (0, 2)}
    assert all(r["status"] == "ok" and r["clips"] > 0 for r in rows.values()), [r["reason"] for r in rows.values()]
    assert {(x["where"], x["concurrency"]) for x in doc["raw"]} == {
        (w, c) for w in wheres for c in remote.RAW_CONCURRENCY}
    assert [t["met"] in (True, False) for t in doc["targets"]] == [True, True]
    print(f"benchmarks.remote --quick took {elapsed:.1f} s")


def test_range_server_answers_ranges_etags_and_preconditions(tmp_path):
    (tmp_path / "obj").write_bytes(bytes(range(256)) * 40)
    server = loopback.range_server(tmp_path, delay=0.02)
    url = loopback.url_of(server) + "/obj"

    def get(**headers: str) -> tuple[int, dict, bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), b""

    try:
        t0 = time.perf_counter()
        status, headers, body = get(Range="bytes=10-19")
        assert time.perf_counter() - t0 >= 0.02
        assert (status, body, headers["Content-Range"]) == (206, bytes(range(10, 20)), "bytes 10-19/10240")
        assert get(Range="bytes=-3")[2] == bytes([253, 254, 255])
        assert get(Range="bytes=20000-")[0] == 416
        tag = headers["ETag"]
        assert get(**{"If-Match": tag})[0] == 200 and get(**{"If-Match": '"other"'})[0] == 412
        assert get()[2] == (tmp_path / "obj").read_bytes()
        with urllib.request.urlopen(loopback.url_of(server) + "/../etc/passwd") as r:
            raise AssertionError(r.status)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    finally:
        server.shutdown()
