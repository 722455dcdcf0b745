"""A tiny benchmark run on a Milvus Lite file: every contender and workload, checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from langchain_milvus_ext.benchmark import CONTENDERS, WORKLOADS, BenchmarkResults
from langchain_milvus_ext.benchmark import __main__ as cli
from langchain_milvus_ext.benchmark import contenders as contenders_mod
from langchain_milvus_ext.benchmark.contenders import StoreProfile

pytestmark = pytest.mark.lite

N, PREFILL = 5, 20


def ours_impl() -> str:
    """Our store once it is importable; a langchain-milvus stand-in until then."""
    try:
        contenders_mod.import_ours()
    except Exception:  # the store is written concurrently; keep the benchmark testable
        return "langchain-milvus"
    return "ext"


def test_tiny_run_all_contenders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_png = tmp_path / "results.json", tmp_path / "out" / "bench.png"
    argv = [
        "--n", str(N), "--prefill", str(PREFILL), "--uri", str(tmp_path / "bench.db"),
        "--ours-impl", ours_impl(), "--json", str(out_json), "--plot", str(out_png),
        "--no-progress",
    ]  # fmt: skip
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Total run time" in captured.out

    results = BenchmarkResults.from_json(out_json.read_text())
    json.loads(out_json.read_text())  # plain JSON, too
    assert results.unavailable == {}
    assert results.failures == []
    for workload in WORKLOADS:
        for contender in CONTENDERS:
            case = results.get(workload, N, contender)
            assert case is not None, (workload, contender)
            assert case.ok and case.throughput and case.throughput > 0
            assert case.latency is not None and case.latency.p99_ms >= case.latency.p50_ms
            assert case.checks, "checks must have run"
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
    real = contenders_mod.langchain_milvus_profile

    def broken(label: str = "langchain_milvus.Milvus") -> StoreProfile:
        profile = real(label)
        return StoreProfile(
            implementation=profile.implementation,
            factory=profile.factory,
            delete_kwargs=lambda key: {"expr": "id == 'no-such-document'"},
            key_filter=profile.key_filter,
        )

    monkeypatch.setattr(contenders_mod, "langchain_milvus_profile", broken)
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
