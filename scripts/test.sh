#!/usr/bin/env bash
# The project's test command: `bash scripts/test.sh [pytest args...]`, from any directory.
#
# Needs only python3 (3.10+) and pip access to PyPI. It
#   1. creates .venv in the repo if missing and installs the project with its `test` extra
#      (again whenever pyproject.toml changes; LMX_FORCE_INSTALL=1 forces it);
#   2. creates the Milvus 2.3.5 virtualenv (PyPI `milvus==2.3.5`, its own venv) at
#      ~/.cache/langchain-milvus-ext/milvus-2.3.5 if missing, and exports MILVUS_SERVER_BIN;
#   3. installs Debian's docker-compose if missing (to validate docker-compose.yml);
#   4. runs ruff check, mypy and pytest ("$@" is passed on to pytest).
# Every check runs even if an earlier one failed; the exit status is non-zero if any failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
MILVUS_VENV="${HOME}/.cache/langchain-milvus-ext/milvus-2.3.5"
DEFAULT_MILVUS_SERVER_BIN="$MILVUS_VENV/bin/milvus-server"
export MILVUS_SERVER_BIN="${MILVUS_SERVER_BIN:-$DEFAULT_MILVUS_SERVER_BIN}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

section() { printf '\n==================== %s ====================\n' "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }
START=$SECONDS

section "project virtualenv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || die "cannot create $VENV with $PYTHON"
fi
STAMP="$VENV/.lmx-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "${LMX_FORCE_INSTALL:-0}" = 1 ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet -e '.[test]' || die "pip install -e '.[test]' failed"
    echo "$WANT" > "$STAMP"
    echo "installed the project and its test extra"
else
    echo "up to date (pyproject.toml unchanged since the last install)"
fi

section "Milvus 2.3.5 virtualenv ($MILVUS_VENV)"
if [ -x "$MILVUS_SERVER_BIN" ]; then
    echo "present: $MILVUS_SERVER_BIN"
elif [ "$MILVUS_SERVER_BIN" = "$DEFAULT_MILVUS_SERVER_BIN" ]; then
    rm -rf "$MILVUS_VENV"  # a half-made one from an interrupted run
    mkdir -p "$(dirname "$MILVUS_VENV")"
    "$PYTHON" -m venv "$MILVUS_VENV" || die "cannot create $MILVUS_VENV"
    "$MILVUS_VENV/bin/python" -m pip install --quiet 'milvus==2.3.5' \
        || die "pip install milvus==2.3.5 failed"
    [ -x "$MILVUS_SERVER_BIN" ] || die "milvus==2.3.5 installed no $MILVUS_SERVER_BIN"
    echo "installed: $MILVUS_SERVER_BIN"
else
    echo "warning: MILVUS_SERVER_BIN=$MILVUS_SERVER_BIN does not exist; server tests will fail" >&2
fi

section "docker-compose (validates docker-compose.yml; no Docker engine needed)"
if command -v docker-compose >/dev/null 2>&1; then
    echo "present: $(docker-compose version --short 2>/dev/null || echo docker-compose)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends docker-compose >/dev/null; } \
        || die "apt-get install docker-compose failed"
    echo "installed: $(docker-compose version --short 2>/dev/null || echo docker-compose)"
else
    echo "docker-compose not installed and apt-get unavailable: its check will be skipped"
fi

export PATH="$VENV/bin:$PATH"
FAILED=()
run() {  # run NAME CMD...: a section that records its failure and goes on
    local name="$1"; shift
    section "$name"
    local t0=$SECONDS
    "$@"
    local rc=$?
    echo "-- $name: exit $rc in $((SECONDS - t0))s"
    [ "$rc" -eq 0 ] || FAILED+=("$name (exit $rc)")
}

run "ruff check" ruff check .
run "mypy" mypy
PYTEST_ARGS=(-ra)
if [ "${CI:-}" = true ]; then PYTEST_ARGS+=(--durations=25); fi
run "pytest" python -m pytest "${PYTEST_ARGS[@]}" "$@"

section "summary ($((SECONDS - START))s)"
if [ "${#FAILED[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "all checks passed"
