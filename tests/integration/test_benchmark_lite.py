"""A tiny benchmark run on a Milvus Lite file: every contender and workload, checked."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from langchain_milvus_ext.benchmark import CONTENDERS, BenchmarkResults, job
from langchain_milvus_ext.benchmark import __main__ as cli
from langchain_milvus_ext.benchmark.config import STORE_WORKLOADS
from langchain_milvus_ext.benchmark.runner import Contender, resolve_contenders

pytestmark = pytest.mark.lite

N, PREFILL = 5, 20


def test_tiny_run_all_contenders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_png = tmp_path / "results.json", tmp_path / "out" / "bench.png"
    argv = [
        "--full", "--n", str(N), "--prefill", str(PREFILL), "--uri", str(tmp_path / "bench.db"),
        "--repeat", "2", "--json", str(out_json), "--plot", str(out_png), "--no-progress",
    ]  # fmt: skip
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Total run time" in captured.out

    results = BenchmarkResults.from_json(out_json.read_text())
    json.loads(out_json.read_text())  # plain JSON, too
    assert results.failures == []
    versions = results.environment["versions"]
    assert {"langchain-milvus-ext", "pymilvus", "milvus-lite", "server"} <= set(versions)
    machine = results.environment["machine"]
    assert machine["cores"] >= 1 and machine["memory_gib"] > 0 and machine["cpu"]
    for workload in STORE_WORKLOADS:
        for contender in CONTENDERS:
            case = results.get(workload, N, contender)
            assert case is not None, (workload, contender)
            assert case.ok and case.throughput and case.throughput > 0
            assert case.latency is not None and case.latency.p99_ms >= case.latency.p50_ms
            assert case.checks, "checks must have run"
            assert case.repeats == 2 and len(case.totals_s) == 2
            assert case.throughput_min <= case.throughput <= case.throughput_max  # type: ignore[operator]
            expected_after = {
                "add": 1 + N,  # the untimed seed document + N
                "search": PREFILL,
                "mmr": PREFILL,
                "delete": PREFILL - N,
                "upsert": PREFILL,
            }[workload]
            assert case.rows_after == expected_after, case
            if workload == "search":
                assert case.recall is not None and case.recall >= 0.9
            if contender in ("langchain-milvus-sync", "langchain-milvus-async", "ours-sync"):
                # one request per single call (langchain-milvus never batches embeddings)
                assert case.embed_requests == (0 if workload == "delete" else N), case
            if contender == "ceiling":
                assert case.embed_requests == (0 if workload == "delete" else 1)
        # Each case's table row is printed.
        assert captured.out.count(f"\n{workload} ") == len(CONTENDERS)
    png = out_png.read_bytes()
    assert len(png) > 1000 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrong_data_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A contender whose deletes silently miss their rows makes the run exit non-zero."""

    def broken(names: Sequence[str], ours_layout: str = "dynamic") -> list[Contender]:
        return [
            dataclasses.replace(c, delete_kwargs=lambda key: {"expr": "id == 'no-such-document'"})
            if c.name == "langchain-milvus-async" else c
            for c in resolve_contenders(names, ours_layout)
        ]  # fmt: skip

    monkeypatch.setattr(job, "resolve_contenders", broken)
    argv = [
        "--n", "3", "--prefill", "5", "--uri", str(tmp_path / "bench.db"),
        "--workloads", "delete", "--contenders", "langchain-milvus-async", "ceiling",
        "--no-progress",
    ]  # fmt: skip
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert "BENCHMARK FAILED: langchain-milvus-async/delete/N=3: wrong data" in err
    assert "expected 2" in err
    assert "ceiling/delete" not in err


@pytest.mark.parametrize("layout", ["dynamic", "columns"])
def test_ours_layout_lays_out_our_store_and_the_ceiling(tmp_path: Path, layout: str) -> None:
    """`--ours-layout`: our store's and the ceiling's collections keep metadata the same way
    (`columns`: langchain-milvus's scalar columns, no dynamic field), their cases still pass
    their checks, and the report says so."""
    db, out_json = tmp_path / "bench.db", tmp_path / "results.json"
    argv = [
        "--n", "3", "--prefill", "5", "--uri", str(db), "--workloads", "delete",
        "--contenders", "ours-sync", "ceiling", "--ours-layout", layout, "--keep-collections",
        "--json", str(out_json), "--no-progress",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    results = BenchmarkResults.from_json(out_json.read_text())
    for contender in ("ours-sync", "ceiling"):
        case = results.get("delete", 3, contender)
        assert case is not None and case.ok and case.rows_after == 2, case
    described = results.environment["contenders"]
    columns = layout == "columns"
    assert ("enable_dynamic_field=False" in described["ours-sync"]) is columns
    assert described["ceiling"].endswith("scalar columns" if columns else "dynamic field")
    from pymilvus import MilvusClient

    client = MilvusClient(str(db))
    try:
        names = client.list_collections()
        (ours,) = [n for n in names if "ours_sync" in n]
        (ceiling,) = [n for n in names if "ceiling" in n]
        schemas = [client.describe_collection(n) for n in (ours, ceiling)]
    finally:
        client.close()
    for schema in schemas:
        assert bool(schema.get("enable_dynamic_field", False)) is not columns, schema
        fields = {f["name"] for f in schema["fields"]}
        assert ({"id", "score", "category"} <= fields) is columns, fields


@pytest.mark.server
def test_lite_server_target_is_started_and_stopped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--target lite-server`` runs Milvus Lite in its own process and stops it afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        if "milvus_lite" in list(args[0] if args else kwargs.get("args", [])):
            started.append(proc)
        return proc

    monkeypatch.setattr(subprocess, "Popen", recording_popen)  # targets calls subprocess.Popen
    argv = [
        "--target", "lite-server", "--n", "3", "--prefill", "20", "--workloads", "add", "search",
        "--contenders", "langchain-milvus-async", "ceiling", "--no-progress",
    ]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert "Milvus Lite server (separate process)" in capsys.readouterr().out
    assert len(started) == 1 and started[0].poll() is not None  # stopped


def test_service_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Our store and langchain-milvus behind the same ASGI app, loaded over HTTP, checked."""
    out_json, out_png = tmp_path / "r.json", tmp_path / "b.png"
    argv = [
        "--workloads", "service", "--service-concurrency", "1", "8", "--service-requests", "24",
        "--prefill", "30", "--repeat", "2", "--uri", str(tmp_path / "bench.db"),
        "--json", str(out_json), "--plot", str(out_png), "--no-progress",
    ]  # fmt: skip
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = BenchmarkResults.from_json(out_json.read_text())
    assert results.failures == []
    assert sorted((c.contender, c.concurrency) for c in results.cases) == [
        ("langchain-milvus-async", 1), ("langchain-milvus-async", 8),
        ("ours-async", 1), ("ours-async", 8),
    ]  # fmt: skip
    for case in results.cases:
        assert case.n == 24 and case.repeats == 2 and case.ok
        assert case.recall is not None and case.recall >= 0.9  # the app's answers, checked
        assert case.latency is not None and case.latency.p99_ms >= case.latency.p50_ms
    ours = results.get("service", 24, "langchain-milvus-async", 8)
    assert ours is not None and ours.embed_requests == 24  # one per request, never batched
    assert "req/s" in captured.out and (tmp_path / "b-service.png").exists()
