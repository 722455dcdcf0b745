"""Benchmark: the async tutorial's workload, ours vs langchain-milvus vs a batched ceiling.

Run ``python -m langchain_milvus_ext.benchmark --help``, or from Python
``print(run_benchmark(BenchmarkConfig(n=(10, 100), prefill=200)).to_json())``.
"""

from .config import CONTENDERS, WORKLOADS, BenchmarkConfig, ConfigError
from .job import run_benchmark
from .report import BenchmarkResults, CaseResult, LatencyStats, percentile

__all__ = ["CONTENDERS", "WORKLOADS", "BenchmarkConfig", "BenchmarkResults", "CaseResult",
           "ConfigError", "LatencyStats", "percentile", "run_benchmark"]
