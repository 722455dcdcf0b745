"""``python -m langchain_milvus_ext.benchmark``: sync vs async vs langchain-milvus vs ceiling.

Examples::

    python -m langchain_milvus_ext.benchmark                 # add/search/delete on Milvus Lite
    python -m langchain_milvus_ext.benchmark --full --plot   # every workload, N=10 100 1000
    python -m langchain_milvus_ext.benchmark --workloads service --plot   # ASGI app + HTTP load
    python -m langchain_milvus_ext.benchmark --uri http://localhost:19530 --markdown out.md

Exit status: 0 when every case ran and passed its checks, 1 when a case failed (raised or
returned wrong data), 2 on usage or configuration errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .config import (
    CONTENDERS,
    DEFAULT_PLOT_PATH,
    PRESETS,
    WORKLOADS,
    BenchmarkConfig,
    ConfigError,
    cli_fields,
    require_extra,
)
from .report import format_report


def build_parser() -> argparse.ArgumentParser:
    """One flag per :class:`BenchmarkConfig` field, plus presets and outputs; an unset flag stays
    absent, so the dataclass (or a preset) gives the default."""
    p = argparse.ArgumentParser(
        prog="python -m langchain_milvus_ext.benchmark",
        description="The async tutorial's workload: N concurrent single operations per case, "
        "sync loop vs asyncio.gather, ours vs langchain-milvus vs one batched pymilvus call "
        "(ceiling), repeated; plus an optional ASGI service workload.",
        argument_default=argparse.SUPPRESS,
    )
    s = p.add_argument_group("settings (default in brackets)")
    for name, default, meta in cli_fields():
        options = {k: v for k, v in meta.items() if k != "help"}
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = meta["help"] if default is None else f"{meta['help']} [{shown}]"
        if isinstance(default, bool):  # --flag, or --no-flag for a setting on by default
            flag = f"--no-{name}" if default else f"--{name}"
            s.add_argument(flag.replace("_", "-"), dest=name, action="store_const",
                           const=not default, help=("no " if default else "") + meta["help"])
            continue
        if isinstance(default, tuple):
            options.update(nargs="+", type=type(default[0]))
        elif default is not None:
            options.setdefault("type", type(default))
        s.add_argument(f"--{name.replace('_', '-')}", dest=name, help=help_text, **options)
    presets = p.add_argument_group("presets (explicit flags win)")
    for preset, values in PRESETS.items():
        presets.add_argument(f"--{preset}", dest="preset", action="store_const", const=preset,
                             help=", ".join(f"{k}={v}" for k, v in values.items()))
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="PATH", default=None, help="write machine-readable results")
    o.add_argument("--markdown", metavar="PATH", default=None, help="write GitHub markdown tables")
    o.add_argument("--plot", nargs="?", const=DEFAULT_PLOT_PATH, default=None, metavar="PATH",
                   help=f"write PNG charts (default path: {DEFAULT_PLOT_PATH}; -scaling and "
                   "-service charts beside it)")
    return p


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """Map parsed arguments to a :class:`BenchmarkConfig`: defaults < preset < explicit flags."""
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()
             if k in {name for name, _, _ in cli_fields()}}
    for name, order in (("workloads", WORKLOADS), ("contenders", CONTENDERS)):
        if name in given:  # canonical order
            given[name] = tuple(c for c in order if c in given[name])
    return replace(BenchmarkConfig(), **{**PRESETS.get(vars(args).get("preset", ""), {}), **given})


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
        require_extra(progress=config.progress, plot=bool(args.plot),
                      service="service" in config.workloads)
        from .job import run_benchmark  # looked up at call time (tests replace it)

        results = run_benchmark(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(results))
    markdown = format_report(results, markdown=True)
    for path, text in ((args.json, results.to_json()), (args.markdown, markdown)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
            print(f"Written to {path}")
    if args.plot:
        from .plot import write_plots

        try:
            for chart in write_plots(results, args.plot):
                print(f"Chart written to {chart}")
        except ValueError as exc:
            print(f"no chart: {exc}", file=sys.stderr)
    for case in results.failures:
        print(f"BENCHMARK FAILED: {case.label}: {case.error}", file=sys.stderr)
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
