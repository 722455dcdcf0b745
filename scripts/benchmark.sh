#!/usr/bin/env bash
# The main job: the sync-vs-async benchmark on an embedded Milvus Lite file (no server, no key).
# Creates .venv if needed, installs the package with its benchmark extra, prints the table and
# writes benchmark-results/benchmark.png (+ -scaling.png, .json, .md). Extra arguments go to the CLI,
# e.g. `bash scripts/benchmark.sh --uri http://localhost:19530` for a running server.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[benchmark]'
mkdir -p benchmark-results
exec .venv/bin/python -m langchain_milvus_ext.benchmark \
  --plot benchmark-results/benchmark.png --json benchmark-results/benchmark.json \
  --markdown benchmark-results/benchmark.md "$@"
