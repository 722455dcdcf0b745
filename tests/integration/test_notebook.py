"""The notebooks: committed executed and not stale, and they still run headless.

Two checks per notebook (helpers in tests/nbrun.py, whose docstring explains the stamp):

- `test_committed_outputs_are_fresh` reads the committed file without running anything:
  every code cell has outputs, none is an error, execution counts run 1, 2, 3, ..., and each
  code cell's source hashes to what was recorded when the notebook was executed (so code
  edited after the run is caught); and the outputs say what a reader should see (the tables'
  rows and contenders, the chart, the counts).
- `test_notebook_runs` executes a copy with nbclient, offline (Milvus Lite, no API key), with
  the environment recorded in the stamp, and checks the fresh outputs the same way, plus
  that every cell produced the same kinds of output as the committed one.

Refresh the committed notebooks with `python tests/nbrun.py` after changing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
nbrun = pytest.importorskip("nbrun")

pytestmark = [pytest.mark.lite, pytest.mark.timeout(600)]

MAX_BYTES = 300 * 1024


def _table_row(text: str, op: str, n: int) -> bool:
    """A line of the tutorial table: `op N ...` ending in a number."""
    return any(line.split()[:2] == [op, str(n)] and line.rstrip().endswith(tuple("0123456789"))
               for line in text.splitlines())


def check_benchmark(nb: Any) -> None:
    """What async_benchmark.ipynb must show: both tables, their checks and the chart."""
    text = nbrun.output_text(nb)
    assert "DeterministicFakeEmbedding(size=128)" in text
    # The tutorial comparison's table, with a row per (op, N), and its checks.
    assert "sync s" in text and "async s" in text and "ratio" in text
    for op in ("add", "search", "delete"):
        for n in (10, 100):
            assert _table_row(text, op, n), (op, n)
    assert "tutorial checks: ok" in text
    # The benchmark module's report: every contender at every size, the chart, the checks.
    assert "vs lcm-async" in text and "of ceiling" in text and "embed reqs" in text
    for contender in ("ours-sync", "ours-async", "langchain-milvus-sync",
                      "langchain-milvus-async", "ceiling"):
        for op in ("add", "search", "delete"):
            for n in (10, 100):
                assert any(line.split()[:3] == [op, str(n), contender]
                           for line in text.splitlines()), (op, n, contender)
    assert "FAILED" not in text and "UNAVAILABLE" not in text
    assert "benchmark checks: ok (30 cases passed)" in text
    pngs = [out for cell in nbrun.code_cells(nb) for out in cell.outputs
            if out["output_type"] == "display_data" and "image/png" in out.get("data", {})]
    assert pngs, "no PNG chart displayed"


def check_quickstart(nb: Any) -> None:
    """What quickstart.ipynb must show: each section's result, offline."""
    text = nbrun.output_text(nb)
    assert "KeywordEmbeddings" in text
    assert "'doc-10'" in text  # add_documents returned the ids
    assert "chocolate chip pancakes" in text  # the update
    assert "doc-10 after the delete: []" in text and "documents left: 9" in text
    assert "* Building an exciting new project with LangChain" in text  # filtered search
    assert "[distance=" in text
    assert "'bank robbers'         -> Robbers broke into the city bank" in text  # async
    assert "first         embedded=6 skipped=0 deleted=0" in text
    assert "unchanged     embedded=0 skipped=6 deleted=0" in text
    assert "one inserted  embedded=1 skipped=6 deleted=0" in text
    assert "Human: What did they have for breakfast?" in text and "Answer: (fake model)" in text
    assert "each search found its own document: True" in text
    assert "embedding requests: 2 (texts per request: [10, 10])" in text  # the stub
    assert "MilvusVectorStore" in text and "ingest_documents" in text


CHECKS: dict[str, Callable[[Any], None]] = {
    "async_benchmark.ipynb": check_benchmark,
    "quickstart.ipynb": check_quickstart,
}


def test_every_notebook_is_checked() -> None:
    on_disk = {path.name for path in nbrun.NOTEBOOK_DIR.glob("*.ipynb")}
    assert on_disk == set(CHECKS) == set(nbrun.NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_committed_outputs_are_fresh(name: str) -> None:
    path = nbrun.NOTEBOOK_DIR / name
    assert path.stat().st_size < MAX_BYTES
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nbrun.committed_problems(nb) == []
    assert nb.metadata[nbrun.STAMP]["env"] == nbrun.NOTEBOOKS[name]
    CHECKS[name](nb)


def test_staleness_is_detected() -> None:
    """An edit to a code cell, or a cell without output, is reported (on an in-memory copy)."""
    nb = nbformat.read(nbrun.NOTEBOOK_DIR / "quickstart.ipynb", as_version=4)
    cells = nbrun.code_cells(nb)
    cells[2].source += "\n# edited"
    cells[3].outputs = []
    problems = nbrun.committed_problems(nb)
    assert len(problems) == 2
    assert "code cell 3" in problems[0] and "changed since it was executed" in problems[0]
    assert problems[1] == "code cell 4 has no output"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    committed = nbformat.read(nbrun.NOTEBOOK_DIR / name, as_version=4)
    nb = nbformat.read(nbrun.NOTEBOOK_DIR / name, as_version=4)
    seconds = nbrun.execute(nb, nbrun.NOTEBOOKS[name], tmp_path)
    nbformat.write(nb, tmp_path / name)  # kept for inspection
    print(f"{name}: executed in {seconds:.1f}s")

    errors = [f"{out['ename']}: {out['evalue']}" for cell in nbrun.code_cells(nb)
              for out in cell.outputs if out["output_type"] == "error"]
    assert errors == [], errors
    CHECKS[name](nb)
    assert nbrun.output_shape(nb) == nbrun.output_shape(committed)
