"""Execute the notebooks and check their committed outputs (importable as `nbrun`).

The notebooks are committed *executed*, so that a reader on GitHub sees the tables and the
chart. To keep those outputs honest, executing a notebook with this module (the only way
they are meant to be refreshed) stamps its metadata with what it ran:

    "langchain_milvus_ext": {"code_sha256": [...], "env": {...}, "execution_seconds": ...,
                             "package_version": ...}

`committed_problems` then finds a stale or empty notebook without running it:

- every code cell has outputs, none is an error, and the execution counts are 1, 2, 3, ...
  in order (one top-to-bottom run, not cells re-run by hand);
- the SHA-256 of each code cell's source equals the one recorded when it was executed: an
  edit to the code after the run (or a cell added, removed or moved) is caught, and the
  message names the cell. Markdown cells may change freely.

A fresh headless run (tests/integration/test_notebook.py) also compares `output_shape` of
the committed notebook with that of the run: the same kinds of output in every cell.

Re-execute and stamp in place (from the repository root, in the project's environment)::

    python tests/nbrun.py                        # every notebook in NOTEBOOKS
    python tests/nbrun.py quickstart.ipynb       # one
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nbclient
import nbformat
from jupyter_client import kernelspec

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS: dict[str, dict[str, str]] = {
    "async_benchmark.ipynb": {"NB_N": "10,100"},
    "quickstart.ipynb": {},
}
"""Each notebook and the environment it is executed with (offline: no key, no server)."""
UNSET = ("OPENAI_API_KEY", "MILVUS_URI", "MILVUS_TOKEN")
STAMP = "langchain_milvus_ext"
KERNEL = "python3"


def code_cells(nb: Any) -> list[Any]:
    """The notebook's code cells, in order."""
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def source_sha256(cell: Any) -> str:
    """SHA-256 (hex) of a cell's source text."""
    return hashlib.sha256(cell.source.encode("utf-8")).hexdigest()


def output_text(nb: Any) -> str:
    """The text of every stream and text/plain output, joined."""
    parts = []
    for cell in code_cells(nb):
        for out in cell.outputs:
            if out["output_type"] == "stream":
                parts.append(out["text"])
            elif out["output_type"] in ("execute_result", "display_data"):
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def output_shape(nb: Any) -> list[list[str]]:
    """Per code cell, the kinds of its outputs: stream name or MIME types, in order."""
    shape = []
    for cell in code_cells(nb):
        kinds = []
        for out in cell.outputs:
            if out["output_type"] == "stream":
                kinds.append(f"stream:{out['name']}")
            else:
                kinds.append(f"{out['output_type']}:{','.join(sorted(out.get('data', {})))}")
        shape.append(sorted(set(kinds)))
    return shape


def committed_problems(nb: Any) -> list[str]:
    """Why a committed notebook is empty or stale (an empty list when it is neither)."""
    problems = []
    cells = code_cells(nb)
    stamp = nb.metadata.get(STAMP, {})
    recorded = list(stamp.get("code_sha256", []))
    if len(recorded) != len(cells):
        problems.append(f"{len(cells)} code cells, {len(recorded)} hashes recorded: "
                        "re-execute with `python tests/nbrun.py`")
    for number, (cell, digest) in enumerate(zip(cells, recorded, strict=False), 1):
        if source_sha256(cell) != digest:
            first = cell.source.strip().splitlines()[:1]
            problems.append(f"code cell {number} ({first}) changed since it was executed")
    for number, cell in enumerate(cells, 1):
        if not cell.outputs:
            problems.append(f"code cell {number} has no output")
        if cell.execution_count != number:
            problems.append(f"code cell {number} has execution_count {cell.execution_count}")
        problems.extend(f"code cell {number} raised {out['ename']}: {out['evalue']}"
                        for out in cell.outputs if out["output_type"] == "error")
    return problems


@contextlib.contextmanager
def notebook_env(overrides: Mapping[str, str]) -> Iterator[None]:
    """os.environ (inherited by the kernel) with `overrides` set and UNSET removed."""
    saved = dict(os.environ)
    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(overrides)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def ensure_kernel(scratch: Path) -> str:
    """The `python3` kernel; if none is installed, one for this interpreter under `scratch`.

    The JUPYTER_PATH this sets is only inside `notebook_env` when called within it.
    """
    if KERNEL in kernelspec.find_kernel_specs():
        return KERNEL
    from ipykernel.kernelspec import write_kernel_spec  # runs sys.executable

    root = scratch / "jupyter"
    write_kernel_spec(root / "kernels" / KERNEL)
    os.environ["JUPYTER_PATH"] = str(root)
    return KERNEL


def execute(nb: Any, env: Mapping[str, str], scratch: Path, timeout: int = 300) -> float:
    """Run `nb` in place, top to bottom, from the notebooks directory; return the seconds.

    Errors are kept as outputs (not raised), so that a caller can report all of them.
    """
    with notebook_env(env):
        kernel = ensure_kernel(scratch)
        client = nbclient.NotebookClient(
            nb, kernel_name=kernel, timeout=timeout, allow_errors=True, record_timing=False,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start


def stamp(nb: Any, env: Mapping[str, str], seconds: float) -> None:
    """Record in `nb`'s metadata what was executed, with what, and how long it took."""
    from langchain_milvus_ext import __version__

    nb.metadata[STAMP] = {
        "code_sha256": [source_sha256(cell) for cell in code_cells(nb)],
        "env": dict(env),
        "execution_seconds": round(seconds, 1),
        "package_version": __version__,
    }


def refresh(name: str) -> float:
    """Execute notebooks/`name` with its NOTEBOOKS environment and write it back, stamped.

    Raises:
        RuntimeError: a cell raised or the result is otherwise not committable.
    """
    path = NOTEBOOK_DIR / name
    nb = nbformat.read(path, as_version=4)
    env = NOTEBOOKS[name]
    with tempfile.TemporaryDirectory() as scratch:
        seconds = execute(nb, env, Path(scratch))
    stamp(nb, env, seconds)
    problems = committed_problems(nb)
    if problems:
        raise RuntimeError(f"{name}: " + "; ".join(problems))
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    """Refresh the notebooks named in argv (all of NOTEBOOKS when none)."""
    for name in argv or list(NOTEBOOKS):
        seconds = refresh(Path(name).name)
        size = (NOTEBOOK_DIR / Path(name).name).stat().st_size
        print(f"{name}: executed in {seconds:.1f}s, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
