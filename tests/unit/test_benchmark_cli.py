"""Unit tests of the benchmark module: CLI parsing, table, JSON, percentiles. No server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext.benchmark import __main__ as cli
from langchain_milvus_ext.benchmark import job, runner
from langchain_milvus_ext.benchmark.checks import (
    BenchContext,
    CheckFailure,
    check_case,
    key_filter,
)
from langchain_milvus_ext.benchmark.config import (
    CONTENDERS,
    DEFAULT_PLOT_PATH,
    QUERY_SETS,
    STORE_WORKLOADS,
    WORKLOADS,
    BenchmarkConfig,
    ConfigError,
    CountingEmbeddings,
    cli_fields,
    make_documents,
    make_embeddings,
    query_text,
    updated_document,
)
from langchain_milvus_ext.benchmark.plot import write_plots
from langchain_milvus_ext.benchmark.report import (
    BenchmarkResults,
    CaseResult,
    LatencyStats,
    format_report,
    format_table,
    percentile,
    render_table,
)
from langchain_milvus_ext.benchmark.runner import (
    Timed,
    resolve_contenders,
    time_batch,
    time_gather,
    time_sync,
)


def parse(*argv: str) -> BenchmarkConfig:
    return cli.config_from_args(cli.build_parser().parse_args(list(argv)))


# -- argument parsing ---------------------------------------------------------------------


def test_defaults_tell_the_tutorials_story_in_minutes() -> None:
    config = parse()
    assert config == BenchmarkConfig()  # the CLI's defaults are the dataclass's
    assert config.n == (100, 1000)
    assert config.prefill == 1000
    assert config.workloads == ("add", "search", "delete")
    assert config.contenders == CONTENDERS
    assert (config.repeat, config.case_budget_s) == (3, 10.0)
    assert (config.k, config.fetch_k, config.embeddings, config.effective_dim) == (
        3,
        20,
        "fake",
        128,
    )
    assert config.embed_latency_ms == 0.0
    assert config.uri is None and config.target == "lite"
    assert config.metric == "COSINE"
    assert config.queries == "tutorial"
    config.validate()


def test_every_setting_is_a_flag_and_round_trips() -> None:
    parser_flags = {a.dest for a in cli.build_parser()._actions}
    names = [name for name, _, _ in cli_fields()]
    assert set(names) <= parser_flags
    assert {"min_recall", "collection_prefix"}.isdisjoint(names)  # library-only settings
    config = parse("--repeat", "5", "--case-budget-s", "0", "--no-progress", "--keep-collections",
                   "--service-concurrency", "2", "8", "--service-requests", "40", "--fail-fast")
    assert (config.repeat, config.case_budget_s, config.progress) == (5, 0.0, False)
    assert config.keep_collections and config.fail_fast
    assert (config.service_concurrency, config.service_requests) == ((2, 8), 40)


def test_presets_fill_what_is_not_given() -> None:
    full = parse("--full")
    assert (full.n, full.workloads, full.repeat) == ((10, 100, 1000), STORE_WORKLOADS, 3)
    assert parse("--full", "--workloads", "add").workloads == ("add",)
    assert parse("--workloads", "service", "add").workloads == ("add", "service")
    assert "service" in WORKLOADS and "service" not in BenchmarkConfig().workloads


def test_quick_and_explicit_values() -> None:
    assert (parse("--quick").n, parse("--quick").prefill) == ((10, 100), 200)
    assert parse("--quick").repeat == 1
    assert (parse("--quick", "--n", "5").n, parse("--quick", "--n", "5").prefill) == ((5,), 200)
    assert parse("--quick", "--prefill", "50").prefill == 50
    config = parse(
        "--n",
        "1",
        "2",
        "--workloads",
        "search",
        "add",
        "--contenders",
        "ceiling",
        "langchain-milvus-async",
        "--embed-latency-ms",
        "100",
        "--dim",
        "64",
        "--uri",
        "http://h:19530",
        "--token",
        "t",
    )
    assert config.n == (1, 2)
    assert config.workloads == ("add", "search")  # canonical order
    assert config.contenders == ("langchain-milvus-async", "ceiling")
    assert config.embed_latency_ms == 100.0 and config.dim == 64
    assert (config.uri, config.token) == ("http://h:19530", "t")
    assert config.to_dict()["token"] == "***"


def test_metric_is_forced_on_every_contender_unless_native() -> None:
    emb = CountingEmbeddings(DeterministicFakeEmbedding(size=8), inner_is_local=True)
    forced = BenchContext(config=parse(), uri="unused", token=None, embeddings=emb)
    assert forced.config.metric == "COSINE"
    assert forced.store_index_params == {
        "index_type": "AUTOINDEX",
        "metric_type": "COSINE",
        "params": {},
    }
    l2 = BenchContext(config=parse("--metric", "L2"), uri="u", token=None, embeddings=emb)
    assert (l2.ceiling_metric, l2.store_index_params["metric_type"]) == ("L2", "L2")  # type: ignore[index]
    native = BenchContext(config=parse("--metric", "native"), uri="u", token=None, embeddings=emb)
    assert (native.store_index_params, native.ceiling_metric) == (None, "COSINE")


def test_target_choice() -> None:
    assert parse("--target", "lite-server").target == "lite-server"
    with pytest.raises(ConfigError, match="unknown --target"):
        BenchmarkConfig(target="docker").validate()


def test_queries_flag_chooses_the_query_set() -> None:
    assert QUERY_SETS == ("tutorial", "distinct")
    assert parse("--queries", "tutorial").queries == "tutorial"
    config = parse("--queries", "distinct", "--workloads", "search", "mmr")
    assert config.queries == "distinct"
    config.validate()
    assert BenchmarkConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.to_dict()["queries"] == "distinct"
    with pytest.raises(ConfigError, match="unknown --queries 'random'"):
        BenchmarkConfig(queries="random").validate()


def test_query_texts_of_each_set() -> None:
    assert [query_text(i) for i in (0, 7, 49, 50, 999)] == [
        "test document 0",
        "test document 7",
        "test document 49",
        "test document 0",
        "test document 49",
    ]
    assert len({query_text(i) for i in range(1000)}) == 50
    assert query_text(999, distinct=True) == "test document 999"
    assert len({query_text(i, distinct=True) for i in range(1000)}) == 1000
    emb = CountingEmbeddings(DeterministicFakeEmbedding(size=8), inner_is_local=True)
    tutorial = BenchContext(config=parse(), uri="u", token=None, embeddings=emb)
    config = parse("--queries", "distinct")
    distinct = BenchContext(config=config, uri="u", token=None, embeddings=emb)
    assert tutorial.queries(52)[50:] == ["test document 0", "test document 1"]
    assert distinct.queries(52)[50:] == ["test document 50", "test document 51"]


def test_exact_top_k_works_for_any_query_text() -> None:
    emb = CountingEmbeddings(DeterministicFakeEmbedding(size=8), inner_is_local=True)
    config = BenchmarkConfig(n=(200,), prefill=30, k=3, queries="distinct")
    ctx = BenchContext(config=config, uri="u", token=None, embeddings=emb)
    docs = np.asarray(emb.inner.embed_documents([d.page_content for d in ctx.prefill_docs]))
    queries = ctx.queries(124)
    for query in (queries[0], queries[123], "not a benchmark query"):
        q = np.asarray(emb.inner.embed_query(query))
        expected = [f"doc_{int(i)}" for i in np.argsort(((docs - q) ** 2).sum(axis=1))[:3]]
        assert ctx.exact_top_k(query, "L2") == expected
        assert len(ctx.exact_top_k(query, "COSINE") or []) == 3
    assert emb.requests == 0  # the reference set is embedded by the uncounted inner model
    remote = CountingEmbeddings(DeterministicFakeEmbedding(size=8), inner_is_local=False)
    remote_ctx = BenchContext(config=config, uri="u", token=None, embeddings=remote)
    assert remote_ctx.exact_top_k("test document 1", "L2") is None


def test_plot_flag_with_and_without_value() -> None:
    parser = cli.build_parser()
    assert parser.parse_args([]).plot is None
    assert parser.parse_args(["--plot"]).plot == DEFAULT_PLOT_PATH
    assert parser.parse_args(["--plot", "x.png"]).plot == "x.png"
    assert parser.parse_args(["--plot", "--quick"]).plot == DEFAULT_PLOT_PATH


@pytest.mark.parametrize(
    "argv",
    [
        ["--workloads", "nope"],
        ["--contenders", "pgvector"],
        ["--embeddings", "cohere"],
        ["--queries", "random"],
        ["--n", "x"],
        ["--n", "10", "--prefill", "5"],  # delete/upsert need prefill >= N
        ["--n", "0"],
        ["--k", "30"],  # k > fetch_k
        ["--repeat", "0"],
        ["--case-budget-s", "-1"],
        ["--service-concurrency", "0"],
        ["--ours-impl", "ext"],  # the stand-in mode is gone
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_validate_allows_small_prefill_without_id_workloads() -> None:
    BenchmarkConfig(n=(50,), prefill=20, workloads=("add", "search")).validate()
    with pytest.raises(ConfigError, match="largest N"):
        BenchmarkConfig(n=(50,), prefill=20, workloads=("upsert",)).validate()
    with pytest.raises(ConfigError, match="fetch_k"):
        BenchmarkConfig(n=(5,), prefill=10, workloads=("mmr",)).validate()


def test_config_dict_round_trip() -> None:
    config = BenchmarkConfig(n=(3, 4), prefill=30, contenders=("ceiling",))
    assert BenchmarkConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# -- percentile math ----------------------------------------------------------------------


def test_percentile_matches_numpy() -> None:
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 101, 1000):
        values = [rng.expovariate(1.0) for _ in range(size)]
        for q in (0, 1, 50, 95, 99, 99.9, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_small_cases_and_errors() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0  # unsorted input
    assert percentile([1.0, 2.0], 0) == 1.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_stats_in_ms() -> None:
    stats = LatencyStats.from_seconds([0.001 * i for i in range(1, 101)])
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p95_ms == pytest.approx(95.05)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.max_ms == pytest.approx(100.0)


# -- results, table, JSON -----------------------------------------------------------------


def _case(
    workload: str,
    n: int,
    contender: str,
    rate: float | None,
    spread: tuple[float, ...] = (1.0,),
    **kw: Any,
) -> CaseResult:
    if rate is None:
        return CaseResult(workload, n, contender, error=kw.pop("error", "boom"), **kw)
    values: dict[str, Any] = {
        "embed_requests": n,
        "rows_before": 0,
        "rows_after": n,
        "checks": ["ok"],
        **kw,
    }
    case = CaseResult(workload, n, contender, **values)
    total = n / rate
    for factor in spread:  # repetitions taking total * factor
        case.add_repetition(total * factor, [total * factor / n] * n)
    return case


def sample_results() -> BenchmarkResults:
    cases = [
        _case("add", 10, "ours-sync", 100.0),
        _case("add", 10, "ours-async", 400.0, embed_requests=1),
        _case("add", 10, "langchain-milvus-sync", 80.0),
        _case("add", 10, "langchain-milvus-async", 200.0),
        _case("add", 10, "ceiling", 800.0),
        _case("search", 10, "langchain-milvus-async", 50.0, recall=0.9),
        _case("search", 10, "ceiling", None, error="wrong data: search #0 returned 2 documents"),
    ]
    return BenchmarkResults(
        config=BenchmarkConfig(n=(10,), prefill=20).to_dict(),
        environment={
            "target": "Milvus Lite (temporary file)",
            "embeddings": "fake",
            "contenders": {"ours-sync": "x, sync"},
        },
        cases=list(reversed(cases)),  # ordering must not depend on insertion order
        started_at="2026-01-01T00:00:00+00:00",
        wall_time_s=12.5,
    )


def test_ratios() -> None:
    results = sample_results()
    case = results.get("add", 10, "ours-async")
    assert case is not None
    assert results.ratio(case, "langchain-milvus-async") == pytest.approx(2.0)
    assert results.ratio(case, "ours-sync") == pytest.approx(4.0)
    assert results.ratio(case, "ceiling") == pytest.approx(0.5)
    search = results.get("search", 10, "langchain-milvus-async")
    assert search is not None and results.ratio(search, "ceiling") is None  # ceiling failed
    assert [c.label for c in results.failures] == ["ceiling/search/N=10"]


def test_table_rows_and_alignment() -> None:
    table = format_table(sample_results())
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["workload", "N", "contender"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = [line for line in lines[2:] if not set(line.replace(" ", "")) <= {"-"}]
    assert [r.split()[2] for r in rows] == [
        "ours-sync",
        "ours-async",
        "langchain-milvus-sync",
        "langchain-milvus-async",
        "ceiling",
        "langchain-milvus-async",
        "ceiling",
    ]
    ours_async = rows[1].split()
    assert ours_async[3:7] == ["0.0250", "400", "400-400", "1"]
    assert ours_async[10:15] == ["2.00x", "4.00x", "50%", "1", "ok"]
    assert rows[5].endswith("ok r=0.90")
    assert rows[6].split()[-1] == "FAIL"
    # A separator between the (add, 10) and (search, 10) blocks; columns line up.
    assert sum(1 for line in lines if set(line.replace(" ", "")) == {"-"}) == 2
    header = lines[0]
    assert header.index("contender") == rows[1].index("ours-async")
    assert header.index("ops/s") + len("ops/s") == rows[1].index(" 400 ") + len(" 400")


def test_render_table_right_aligns_numbers() -> None:
    text = render_table(["workload", "ops/s"], [["add", "1"], None, ["search", "1,000"]])
    assert text.splitlines()[2] == "add           1"
    assert text.splitlines()[4] == "search    1,000"


def test_report_mentions_failures() -> None:
    report = format_report(sample_results())
    assert "FAILED ceiling/search/N=10: wrong data" in report
    assert "Total run time: 12.5 s" in report
    assert "ours-sync = x, sync" in report
    header = report.splitlines()[0]
    assert header.startswith("Milvus vector-store benchmark (")
    assert 'queries: tutorial ("test document {i % 50}", 50 distinct texts))' in header


def test_report_header_names_the_distinct_query_set() -> None:
    results = sample_results()
    results.config = BenchmarkConfig(n=(10,), prefill=20, queries="distinct").to_dict()
    assert results.query_set == "distinct"
    header = format_report(results).splitlines()[0]
    assert 'queries: distinct ("test document {i}", every query different))' in header
    again = BenchmarkResults.from_json(results.to_json())
    assert json.loads(results.to_json())["config"]["queries"] == "distinct"
    assert again.query_set == "distinct"
    old = dict(results.config)
    del old["queries"]  # results written before the option existed used the tutorial's queries
    assert BenchmarkResults(config=old).query_set == "tutorial"


def test_json_round_trip() -> None:
    results = sample_results()
    text = results.to_json()
    data = json.loads(text)
    first = data["cases"][1]
    assert (first["contender"], first["speedup_vs_langchain_milvus_async"]) == ("ours-async", 2.0)
    assert first["fraction_of_ceiling"] == 0.5
    assert first["latency"]["p99_ms"] == pytest.approx(2.5)
    again = BenchmarkResults.from_json(text)
    assert again.ordered_cases() == results.ordered_cases()
    assert again.wall_time_s == 12.5
    assert again.to_json() == text


# -- data, embeddings, contenders, timing -------------------------------------------------


def test_documents_are_the_tutorials_and_deterministic() -> None:
    docs = make_documents(6, seed=3)
    assert docs == make_documents(6, seed=3)
    assert docs != make_documents(6, seed=4)
    rand = docs[5].metadata["score"]
    assert docs[5].page_content == f"This is test document 5 with some random content: {rand}"
    assert docs[5].metadata == {"id": "doc_5", "score": rand, "category": "cat_0"}
    assert query_text(51) == "test document 1"
    updated = updated_document(docs[5])
    assert updated.metadata == docs[5].metadata  # the same metadata id
    assert updated.page_content.startswith("This is updated test document 5 ")


def test_counting_embeddings_counts_requests_and_adds_latency() -> None:
    emb = CountingEmbeddings(DeterministicFakeEmbedding(size=8), 0.02, inner_is_local=True)
    start = time.perf_counter()
    emb.embed_documents(["a", "b", "c"])
    emb.embed_query("q")
    assert time.perf_counter() - start >= 0.04

    async def run() -> list[list[float]]:
        return await asyncio.gather(*(emb.aembed_query(f"q{i}") for i in range(10)))

    start = time.perf_counter()
    vectors = asyncio.run(run())
    assert time.perf_counter() - start < 0.15  # the ten sleeps overlap
    assert len(vectors) == 10 and len(vectors[0]) == 8
    assert (emb.requests, emb.texts) == (12, 14)
    emb.reset()
    assert (emb.requests, emb.texts) == (0, 0)


def test_openai_embeddings_need_a_key_or_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_embeddings(BenchmarkConfig(embeddings="openai"))
    config = parse(
        "--embeddings",
        "openai",
        "--openai-base-url",
        "http://127.0.0.1:9/v1",
        "--openai-model",
        "local-embed",
        "--embed-latency-ms",
        "5",
    )
    assert config.effective_dim is None  # the model's own size
    emb = make_embeddings(config)  # builds the client; no request is made
    assert not emb.inner_is_local and emb.latency_s == pytest.approx(0.005)
    assert type(emb.inner).__name__ == "OpenAIEmbeddings"


def test_key_filters() -> None:
    assert key_filter(["doc_1", "doc_2"]) == 'id in ["doc_1", "doc_2"]'
    assert key_filter(['b"']) == 'id in ["b\\""]'


def test_contenders_in_report_order() -> None:
    chosen = resolve_contenders(["ceiling", "ours-async", "langchain-milvus-sync"])
    assert [(c.name, c.mode) for c in chosen] == [
        ("ours-async", "async"),
        ("langchain-milvus-sync", "sync"),
        ("ceiling", "ceiling"),
    ]
    ours, lcm = chosen[0], chosen[1]
    assert ours.delete_kwargs is not None and lcm.delete_kwargs is not None
    assert ours.delete_kwargs("doc_1") == {"filter": {"id": "doc_1"}}
    assert lcm.delete_kwargs("doc_1") == {"expr": "id == 'doc_1'"}
    assert chosen[2].store_class is None and "MilvusVectorStore" in ours.implementation
    assert (ours.auto_id, lcm.auto_id) == (False, True)
    assert ours.store_kwargs == {} and lcm.store_kwargs == {}  # each store's default layout


def test_ours_layout_columns_changes_only_our_store() -> None:
    chosen = resolve_contenders(["ours-sync", "ours-async", "langchain-milvus-sync"], "columns")
    assert [c.store_kwargs for c in chosen] == [
        {"enable_dynamic_field": False}, {"enable_dynamic_field": False}, {},
    ]
    assert all("enable_dynamic_field=False" in c.implementation for c in chosen[:2])
    assert "enable_dynamic_field" not in chosen[2].implementation
    assert parse("--ours-layout", "columns").ours_layout == "columns"
    assert parse().ours_layout == "dynamic"
    with pytest.raises(ConfigError, match="unknown --ours-layout"):
        BenchmarkConfig(ours_layout="json").validate()


def test_timing_helpers() -> None:
    timed = time_sync([lambda: 1, lambda: 2])
    assert timed.outputs == [1, 2] and len(timed.latencies_s) == 2

    async def slow(value: int) -> int:
        await asyncio.sleep(0.01 * value)
        return value

    gathered = asyncio.run(time_gather([lambda v=v: slow(v) for v in (3, 1, 2)]))  # type: ignore[misc]
    assert gathered.outputs == [3, 1, 2]
    assert gathered.latencies_s[1] < gathered.latencies_s[2] < gathered.latencies_s[0]
    assert gathered.total_s >= max(gathered.latencies_s) > 0.025
    batch = time_batch(lambda: ["a", "b", "c"])
    assert batch.outputs == ["a", "b", "c"] and len(set(batch.latencies_s)) == 1


# -- correctness checks (checker stubbed: no server) --------------------------------------


class StubContext(BenchContext):
    rows = 0

    def count(self, collection: str, expr: str = "") -> int:
        return self.rows

    def metric(self, collection: str) -> str | None:
        return None


def stub_context() -> StubContext:
    config = BenchmarkConfig(n=(2,), prefill=20, k=2)
    emb = CountingEmbeddings(DeterministicFakeEmbedding(size=8), inner_is_local=True)
    return StubContext(config=config, uri="unused", token=None, embeddings=emb)


def test_search_check_accepts_good_and_rejects_wrong_data() -> None:
    ctx = stub_context()
    view = "c"
    docs = ctx.prefill_docs
    good = [
        Document(id=str(i), page_content=d.page_content, metadata=d.metadata)
        for i, d in enumerate(docs[:2])
    ]
    check_case(ctx, view, "mmr", 2, [good, good], rows_before=20)
    with pytest.raises(CheckFailure, match="expected k=2"):
        check_case(ctx, view, "search", 2, [good, good[:1]], rows_before=20)
    swapped = [
        good[0],
        Document(id="x", page_content=docs[1].page_content, metadata=docs[2].metadata),
    ]
    with pytest.raises(CheckFailure, match="metadata id"):
        check_case(ctx, view, "search", 2, [good, swapped], rows_before=20)
    no_id = [good[0], Document(page_content=docs[1].page_content, metadata=docs[1].metadata)]
    with pytest.raises(CheckFailure, match="without an id"):
        check_case(ctx, view, "search", 2, [good, no_id], rows_before=20)
    for content in ("something else", updated_document(docs[1]).page_content):  # never stored
        unknown = [good[0], Document(id="y", page_content=content, metadata=docs[1].metadata)]
        with pytest.raises(CheckFailure, match="is no pre-filled document's"):
            check_case(ctx, view, "search", 2, [good, unknown], rows_before=20)


def test_add_and_delete_checks_compare_counts() -> None:
    ctx = stub_context()
    view = "c"
    ctx.rows = 3
    with pytest.raises(CheckFailure, match="collection has 3 rows, expected 2"):
        check_case(ctx, view, "add", 2, [["a"], ["b"]], rows_before=0)
    with pytest.raises(CheckFailure, match="duplicate"):
        check_case(ctx, view, "add", 2, [["a"], ["a"]], rows_before=1)
    with pytest.raises(CheckFailure, match="reported failure"):
        check_case(ctx, view, "delete", 2, [True, False], rows_before=5)


def test_main_writes_outputs_and_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(job, "run_benchmark", lambda config: sample_results())
    out_json, out_png = tmp_path / "r.json", tmp_path / "plots" / "r.png"
    out_md = tmp_path / "md" / "r.md"
    code = cli.main(
        ["--n", "10", "--prefill", "20", "--json", str(out_json), "--plot", str(out_png),
         "--markdown", str(out_md)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "BENCHMARK FAILED: ceiling/search/N=10" in captured.err
    assert "langchain-milvus-async" in captured.out
    assert BenchmarkResults.from_json(out_json.read_text()).get("add", 10, "ceiling") is not None
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = out_md.read_text()
    assert "| add | 10 | ours-async | 0.0250 | 400 | 400-400 | 1 |" in markdown


# -- repeats, markdown, service and scaling output ------------------------------------------


def test_repetitions_report_median_and_spread() -> None:
    case = CaseResult("add", 100, "ours-async")
    for total, latency in ((2.0, 0.02), (1.0, 0.01), (4.0, 0.04)):
        case.add_repetition(total, [latency] * 100)
    assert case.repeats == 3 and case.totals_s == [2.0, 1.0, 4.0]
    assert case.total_s == 2.0 and case.throughput == pytest.approx(50.0)
    assert (case.throughput_min, case.throughput_max) == (pytest.approx(25.0), 100.0)
    assert case.latency is not None and case.latency.p50_ms == pytest.approx(20.0)  # the median's
    again = CaseResult.from_dict(json.loads(json.dumps(dataclasses.asdict(case))))
    assert again == case


@pytest.mark.parametrize("totals", [(4.0, 2.0, 1.0), (1.0, 2.0, 4.0), (2.0, 4.0, 1.0, 3.0)])
def test_latencies_are_the_median_repetitions_in_any_order(totals: tuple[float, ...]) -> None:
    case = CaseResult("add", 100, "ours-async")
    for total in totals:
        case.add_repetition(total, [total / 100] * 100)  # each repetition's own latencies
    assert case.latency is not None
    assert case.latency.p50_ms == pytest.approx(20.0)  # the rep of 2.0 s: median (low of 2, 3)
    assert [r.p50_ms for r in case.rep_latencies] == pytest.approx([t * 10 for t in totals])


def test_ratios_are_of_medians() -> None:
    results = BenchmarkResults(
        config={},
        cases=[
            _case("add", 10, "ours-async", 400.0, spread=(0.25, 1.0, 1.1)),
            _case("add", 10, "langchain-milvus-async", 200.0, spread=(1.0, 3.0, 0.9)),
        ],
    )
    ours = results.get("add", 10, "ours-async")
    assert ours is not None and results.ratio(ours, "langchain-milvus-async") == pytest.approx(2.0)
    row = [r for r in format_table(results).splitlines() if "ours-async" in r][0].split()
    assert row[4:7] == ["400", "364-1,600", "3"]


def test_a_stopped_sync_loop_is_compared_on_the_calls_both_loops_made() -> None:
    """A delete of one row in N gets cheaper as the collection empties: a loop stopped after
    its first (dearest) calls is compared on those calls, not with a whole loop's rate."""
    ours = CaseResult("delete", 10, "ours-sync")
    ours.add_repetition(0.020, [0.005] * 4, ops=4, per_call=True)  # stopped after 4 calls
    lcm = CaseResult("delete", 10, "langchain-milvus-sync")
    for slow in (0.010, 0.009, 0.011):  # whole loops: 4 dear calls, then 6 cheap ones
        lcm.add_repetition(4 * slow + 6 * 0.001, [slow] * 4 + [0.001] * 6, per_call=True)
    results = BenchmarkResults(config={}, cases=[ours, lcm])
    assert lcm.throughput is not None and ours.throughput is not None
    assert lcm.throughput / ours.throughput > 1.0  # whole loop against first calls: misleading
    assert results.ratio(lcm, "ours-sync") == pytest.approx(0.5)  # 40 ms against 20 ms
    assert lcm.first_calls_ms(4) == pytest.approx(40.0)
    back = BenchmarkResults.from_json(results.to_json())
    lcm_back = back.get("delete", 10, "langchain-milvus-sync")
    assert lcm_back is not None and back.ratio(lcm_back, "ours-sync") == pytest.approx(0.5)
    assert "compares the calls both made" in format_report(results)


def test_whole_sync_loops_are_compared_on_their_medians() -> None:
    ours, lcm = CaseResult("add", 4, "ours-sync"), CaseResult("add", 4, "langchain-milvus-sync")
    ours.add_repetition(0.4, [0.1] * 4, per_call=True)
    lcm.add_repetition(0.8, [0.35, 0.15, 0.15, 0.15], per_call=True)
    results = BenchmarkResults(config={}, cases=[ours, lcm])
    assert results.ratio(lcm, "ours-sync") == pytest.approx(0.5)
    assert ours.calls_ms == [[100.0] * 4]


def _budget_context(budget: float, repeat: int = 3) -> BenchContext:
    config = BenchmarkConfig(n=(2,), prefill=20, repeat=repeat, case_budget_s=budget)
    emb = CountingEmbeddings(DeterministicFakeEmbedding(size=8), inner_is_local=True)
    return StubContext(config=config, uri="unused", token=None, embeddings=emb)


def test_case_budget_limits_repetitions_and_reads_reuse_their_collection() -> None:
    seen: list[bool] = []

    def delete(seconds: float) -> Any:
        def run(fresh: bool) -> tuple[Timed, int]:
            seen.append(fresh)
            return Timed(seconds, [seconds, seconds], [True, True]), 2  # 2 rows -> 0

        return run

    fast = runner.repeat_case(_budget_context(10.0), CaseResult("delete", 2, "x"), "c", delete(1))
    assert fast.repeats == 3 and fast.error is None and seen == [True, True, True]
    assert fast.checks and fast.rows_after == 0
    slow = runner.repeat_case(_budget_context(10.0), CaseResult("delete", 2, "x"), "c", delete(6))
    assert slow.repeats == 1  # a second run would take the case past its 10 s budget
    unlimited = runner.repeat_case(_budget_context(0), CaseResult("delete", 2, "x"), "c", delete(6))
    assert unlimited.repeats == 3

    ctx = _budget_context(0.0)
    good = [Document(id=str(i), page_content=d.page_content, metadata=d.metadata)
            for i, d in enumerate(ctx.prefill_docs[:3])]  # fmt: skip
    seen.clear()

    def search(fresh: bool) -> tuple[Timed, int]:
        seen.append(fresh)
        return Timed(1.0, [1.0, 1.0], [good, good]), 20

    assert runner.repeat_case(ctx, CaseResult("search", 2, "x"), "c", search).repeats == 3
    assert seen == [True, False, False]  # searches reuse the collection they filled

    def broken(fresh: bool) -> tuple[Timed, int]:
        raise RuntimeError("boom")

    failed = runner.repeat_case(ctx, CaseResult("search", 2, "x"), "c", broken)
    assert failed.error == "RuntimeError: boom" and failed.repeats == 0
    wrong = runner.repeat_case(ctx, CaseResult("delete", 2, "x"), "c", delete(1))
    assert wrong.error is None
    ctx.rows = 5
    wrong = runner.repeat_case(ctx, CaseResult("delete", 2, "x"), "c", delete(1))
    assert wrong.error is not None and wrong.error.startswith("wrong data: after delete")


def test_contenders_take_turns_each_running_its_repetitions_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each contender runs all its repetitions in a row, the ``first``-th contender first and
    round from there; a budget or an error stops only its own contender; results stay in the
    given order; a write workload's collection is dropped after every repetition."""
    ran: list[tuple[str, bool]] = []
    dropped: list[str] = []
    seconds = {"a": 1.0, "b": 4.0, "c": 1.0}  # b: a third 4 s repetition would pass 10 s
    ctx = _budget_context(10.0, repeat=4)
    good = [Document(id=str(i), page_content=d.page_content, metadata=d.metadata)
            for i, d in enumerate(ctx.prefill_docs[:3])]  # fmt: skip

    def one(ctx: Any, contender: Any, result: CaseResult, fresh: bool) -> tuple[Timed, int]:
        ran.append((f"{contender.name}{result.repeats}", fresh))
        if contender.name == "c" and result.repeats == 1:
            raise RuntimeError("boom")
        outputs = [good, good] if result.workload in ("search", "service") else [True, True]
        return Timed(seconds[contender.name], [0.1, 0.1], outputs), 2  # delete: 2 rows -> 0

    monkeypatch.setattr(runner, "run_repetition", one)
    monkeypatch.setattr(StubContext, "drop", lambda self, name: dropped.append(name))
    contenders = [runner.Contender(name, "sync", "fake") for name in "abc"]
    a, b, c = runner.run_cases(ctx, contenders, "delete", 2, first=1)
    assert [name for name, _ in ran] == ["b0", "b1", "c0", "c1", "a0", "a1", "a2", "a3"]
    assert all(fresh for _, fresh in ran)  # a write workload: a fresh collection every time
    assert [r.contender for r in (a, b, c)] == ["a", "b", "c"]
    assert (a.repeats, b.repeats, c.repeats) == (4, 2, 1)
    assert a.error is b.error is None and c.error == "RuntimeError: boom"
    assert dropped == [ctx.collection_name(name, "delete", 2) for name in "bbccaaaaabc"]

    ran.clear()
    dropped.clear()
    search_ctx = _budget_context(0.0, repeat=2)
    runner.run_cases(search_ctx, contenders[:2], "search", 2)
    assert ran == [("a0", True), ("a1", False), ("b0", True), ("b1", False)]
    assert dropped == [search_ctx.collection_name(name, "search", 2) for name in "ab"]  # at the end

    dropped.clear()  # the service app serves one collection through all its repetitions
    service = CaseResult("service", 2, "a", concurrency=1)
    runner.repeat_case(search_ctx, service, "app", lambda fresh: one(None, contenders[0], service,
                                                                   fresh))
    assert service.repeats == 2 and dropped == []


def test_markdown_tables() -> None:
    assert render_table(["workload", "ops/s"], [["add", "1"], None, ["search", "2"]], True) == (
        "| workload | ops/s |\n| --- | ---: |\n| add | 1 |\n| search | 2 |"
    )
    text = format_report(sample_results(), markdown=True)
    assert text.startswith("**Milvus vector-store benchmark (")
    assert "| search | 10 | ceiling |" in text and "FAILED ceiling/search/N=10" in text


def service_results() -> BenchmarkResults:
    results = sample_results()
    results.cases = [c for c in results.cases if c.ok]
    for clients, ours, lcm in ((1, 40.0, 38.0), (16, 600.0, 45.0)):
        results.cases += [
            _case("service", 200, "ours-async", ours, concurrency=clients),
            _case("service", 200, "langchain-milvus-async", lcm, concurrency=clients),
        ]
    results.cases += [_case("add", 100, "ours-async", 900.0)]
    results.environment["versions"] = {"pymilvus": "3.0.2"}
    results.environment["machine"] = {"cores": 2, "memory_gib": 7.8, "cpu": "AMD EPYC"}
    return results


def test_service_table(tmp_path: Path) -> None:
    results = service_results()
    case = results.get("service", 200, "ours-async", 16)
    assert case is not None and case.label == "ours-async/service/N=200/clients=16"
    assert results.ratio(case, "langchain-milvus-async") == pytest.approx(600 / 45)
    table = format_table(results)
    store, service = table.split("\n\n")
    assert "service" not in store
    header, _, *rows = service.splitlines()
    assert header.split()[:4] == ["clients", "requests", "contender", "req/s"]
    assert rows[-1].split()[:4] == ["16", "200", "langchain-milvus-async", "45.0"]
    assert "13.3x" in [r for r in rows if "ours-async" in r][-1]
    report = format_report(results)
    assert "Versions: pymilvus 3.0.2\nMachine: 2 cores, 7.8 GiB, AMD EPYC" in report


def test_charts_scaling_and_service(tmp_path: Path) -> None:
    charts = write_plots(service_results(), tmp_path / "b.png")
    assert [c.name for c in charts] == ["b.png", "b-scaling.png", "b-service.png"]
    assert all(c.read_bytes()[:4] == b"\x89PNG" for c in charts)
    only_one_n = sample_results()
    assert [c.name for c in write_plots(only_one_n, tmp_path / "c.png")] == ["c.png"]
    with pytest.raises(ValueError):
        write_plots(BenchmarkResults(config={}), tmp_path / "d.png")


def test_a_budget_stops_a_sync_loop_and_the_report_says_so() -> None:
    timed = time_sync([lambda: time.sleep(0.02) or 1] * 50, budget_s=0.05)
    assert timed.stopped_early and 1 <= len(timed.outputs) < 50
    assert len(timed.latencies_s) == len(timed.outputs)
    assert not time_sync([lambda: 1] * 3, budget_s=10.0).stopped_early

    def loop(fresh: bool) -> tuple[Timed, int]:
        return Timed(12.0, [0.1] * 2, [True, True], stopped_early=True), 2  # 2 rows -> 0

    ctx, result = _budget_context(10.0), CaseResult("delete", 5, "ours-sync")
    case = runner.repeat_case(ctx, result, "c", loop)
    assert case.error is None and case.repeats == 1 and case.ops_timed == 2
    assert case.calls_ms == []  # this Timed is not a sync loop's (time_sync sets sequential)
    assert timed.sequential and len(time_sync([lambda: 1] * 3).latencies_s) == 3
    assert case.rows_after == 0 and case.throughput == pytest.approx(2 / 12.0)
    assert case.wall_s is not None
    results = BenchmarkResults(config={}, cases=[case])
    assert "12.000*" in format_table(results)
    assert "after 2 of 5 calls" in format_report(results)


async def test_load_connection_reads_json_answers_and_refuses_errors() -> None:
    """The service load's HTTP/1.1 client: keep-alive requests on one connection, the JSON
    body of a 200, an error naming the status otherwise or without Content-Length."""
    answers = [
        b'HTTP/1.1 200 OK\r\ncontent-length: 10\r\ncontent-type: text/json\r\n\r\n[{"a": 1}]',
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull",
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
    ]
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        connection = await job._Connection.open(f"http://127.0.0.1:{port}")
        try:
            assert await connection.request("GET", "/search?q=a+b") == [{"a": 1}]
            assert await connection.request("POST", "/reset") is None
            with pytest.raises(RuntimeError, match="500 Internal Server Error.*oops"):
                await connection.request("GET", "/search?q=x")
            with pytest.raises(RuntimeError, match="without Content-Length"):
                await connection.request("GET", "/search?q=y")
        finally:
            connection.close()
    assert requests[0].startswith(b"GET /search?q=a+b HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert requests[1].startswith(b"POST /reset HTTP/1.1\r\n")
    assert len(requests) == 4  # one connection, kept alive
