"""``python -m langchain_milvus_ext.benchmark``: sync vs async vs langchain-milvus vs ceiling.

Examples::

    python -m langchain_milvus_ext.benchmark                      # tutorial defaults, Milvus Lite
    python -m langchain_milvus_ext.benchmark --quick --plot       # smoke run, PNG in
                                                                  # benchmark-results/benchmark.png
    python -m langchain_milvus_ext.benchmark --uri http://localhost:19530 --embed-latency-ms 100 \\
        --workloads add search --json results.json
    python -m langchain_milvus_ext.benchmark --workloads search mmr --queries distinct

Exit status: 0 when every case ran and passed its checks, 1 when a case failed (raised or
returned wrong data), 2 on usage or configuration errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import (
    CONTENDERS,
    DEFAULT_N,
    DEFAULT_PLOT_PATH,
    DEFAULT_PREFILL,
    EMBEDDINGS,
    METRICS,
    OURS_IMPLS,
    QUERY_SETS,
    QUICK_N,
    QUICK_PREFILL,
    TARGETS,
    WORKLOADS,
    BenchmarkConfig,
    ConfigError,
    require_extra,
)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m langchain_milvus_ext.benchmark",
        description="Reproduce the async-tutorial workload: N concurrent single operations per "
        "workload, sync loop vs asyncio.gather, ours vs langchain-milvus vs one batched "
        "pymilvus call (ceiling).",
    )
    w = p.add_argument_group("workload")
    w.add_argument(
        "--n",
        type=int,
        nargs="+",
        metavar="N",
        help=f"operations per case (default: {' '.join(map(str, DEFAULT_N))})",
    )
    w.add_argument(
        "--prefill",
        type=int,
        metavar="DOCS",
        help=f"documents pre-loaded for search/mmr/delete/upsert (default: {DEFAULT_PREFILL})",
    )
    w.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: --n {' '.join(map(str, QUICK_N))} --prefill {QUICK_PREFILL} "
        "(explicit --n/--prefill win)",
    )
    w.add_argument(
        "--workloads",
        nargs="+",
        choices=WORKLOADS,
        default=list(WORKLOADS),
        metavar="W",
        help=f"subset of {', '.join(WORKLOADS)} (default: all)",
    )
    w.add_argument(
        "--contenders",
        nargs="+",
        choices=CONTENDERS,
        default=list(CONTENDERS),
        metavar="C",
        help=f"subset of {', '.join(CONTENDERS)} (default: all)",
    )
    w.add_argument("--k", type=int, default=3, help="results per search (default: 3)")
    w.add_argument("--fetch-k", type=int, default=20, help="MMR candidates (default: 20)")
    w.add_argument(
        "--metric",
        choices=METRICS,
        default="COSINE",
        help="AUTOINDEX metric forced on every contender (default: COSINE); native = each "
        "store's own default (langchain-milvus L2, ours COSINE, ceiling COSINE)",
    )
    w.add_argument(
        "--queries",
        choices=QUERY_SETS,
        default="tutorial",
        help='query texts of search/mmr: tutorial = the tutorial\'s "test document {i %% 50}", '
        'only 50 distinct texts (default); distinct = "test document {i}", every query '
        "different. Equal concurrent queries are searched once by our async store, so with "
        "tutorial ours-async runs at most 50 distinct searches per coalesced batch",
    )
    w.add_argument("--seed", type=int, default=42, help="document RNG seed (default: 42)")

    t = p.add_argument_group("target")
    t.add_argument("--uri", help="Milvus URI (default: a Milvus Lite file in a temp dir)")
    t.add_argument("--token", help="Milvus token")
    t.add_argument(
        "--target",
        choices=TARGETS,
        default="lite",
        help="without --uri: lite = Milvus Lite file served inside this process (default); "
        "lite-server = a milvus-lite server process on a free loopback port",
    )
    t.add_argument(
        "--ours-impl",
        choices=OURS_IMPLS,
        default="auto",
        help="ours-* = langchain_milvus_ext.MilvusVectorStore (ext), that or "
        "unavailable (auto, default), or a langchain-milvus stand-in",
    )
    t.add_argument(
        "--keep-collections",
        action="store_true",
        help="do not drop each case's collection afterwards",
    )

    e = p.add_argument_group("embeddings")
    e.add_argument(
        "--embeddings",
        choices=EMBEDDINGS,
        default="fake",
        help="fake = DeterministicFakeEmbedding (default); openai = langchain-openai",
    )
    e.add_argument(
        "--dim", type=int, help="embedding size (default: 128 for fake, the model's for openai)"
    )
    e.add_argument(
        "--embed-latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="simulated latency per embedding request (default: 0)",
    )
    e.add_argument("--openai-model", default="text-embedding-3-small")
    e.add_argument("--openai-base-url", help="OpenAI-compatible embedding server")

    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="PATH", help="write machine-readable results")
    o.add_argument(
        "--plot",
        nargs="?",
        const=DEFAULT_PLOT_PATH,
        metavar="PATH",
        help=f"write a PNG chart (default path: {DEFAULT_PLOT_PATH})",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    o.add_argument("--fail-fast", action="store_true", help="stop at the first failed case")
    return p


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """Map parsed arguments to a :class:`BenchmarkConfig` (``--quick`` fills unset N/prefill)."""
    if args.n is not None:
        n = tuple(args.n)
    else:
        n = QUICK_N if args.quick else DEFAULT_N
    if args.prefill is not None:
        prefill = args.prefill
    else:
        prefill = QUICK_PREFILL if args.quick else DEFAULT_PREFILL
    return BenchmarkConfig(
        n=n,
        prefill=prefill,
        workloads=tuple(w for w in WORKLOADS if w in args.workloads),
        contenders=tuple(c for c in CONTENDERS if c in args.contenders),
        k=args.k,
        fetch_k=args.fetch_k,
        metric=args.metric,
        queries=args.queries,
        embeddings=args.embeddings,
        dim=args.dim,
        embed_latency_ms=args.embed_latency_ms,
        openai_model=args.openai_model,
        openai_base_url=args.openai_base_url,
        uri=args.uri,
        target=args.target,
        token=args.token,
        seed=args.seed,
        ours_impl=args.ours_impl,
        keep_collections=args.keep_collections,
        fail_fast=args.fail_fast,
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args)
    try:
        config.validate()
    except ConfigError as exc:
        parser.error(str(exc))  # exits with status 2
    try:  # before anything starts: the run's optional modules
        require_extra(progress=config.progress, plot=bool(args.plot))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from .plot import write_plot
    from .report import format_report
    from .runner import run_benchmark

    try:
        results = run_benchmark(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(results.to_json())
        print(f"JSON written to {args.json}")
    if args.plot:
        try:
            print(f"Chart written to {write_plot(results, args.plot)}")
        except ValueError as exc:
            print(f"no chart: {exc}", file=sys.stderr)
    for name, reason in results.unavailable.items():
        print(f"note: {name} unavailable: {reason}", file=sys.stderr)
    if results.failures:
        for case in results.failures:
            print(f"BENCHMARK FAILED: {case.label}: {case.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
