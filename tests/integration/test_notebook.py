"""Execute notebooks/async_benchmark.ipynb headless (Milvus Lite, fake embeddings)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")

pytestmark = [pytest.mark.lite, pytest.mark.timeout(600)]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "async_benchmark.ipynb"
KERNEL = "python3"


def ensure_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The `python3` kernel spec; if none is found, one for this interpreter in a tmp dir."""
    if KERNEL in kernelspec.find_kernel_specs():
        return KERNEL
    from ipykernel.kernelspec import write_kernel_spec  # runs sys.executable

    root = tmp_path / "jupyter"
    write_kernel_spec(root / "kernels" / KERNEL)
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    assert KERNEL in kernelspec.find_kernel_specs()
    return KERNEL


def outputs(nb: Any) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def text_of(nb: Any) -> str:
    parts = []
    for out in outputs(nb):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "run"
    work.mkdir()
    copy = work / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    # The kernel inherits this environment: small sizes, fake embeddings, Milvus Lite.
    monkeypatch.setenv("NB_N", "10,100")
    for name in ("OPENAI_API_KEY", "MILVUS_URI", "MILVUS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    kernel = ensure_kernel(tmp_path, monkeypatch)

    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=300,
        allow_errors=True,  # collect every error and report it below
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()
    nbformat.write(nb, copy)  # kept in tmp_path for inspection

    errors = [
        f"{out['ename']}: {out['evalue']}" for out in outputs(nb) if out["output_type"] == "error"
    ]
    assert errors == [], errors
    text = text_of(nb)
    assert "DeterministicFakeEmbedding(size=128)" in text
    # The tutorial comparison's table, with a row per (op, N), and its checks.
    assert "sync s" in text and "async s" in text and "ratio" in text
    for op in ("add", "search", "delete"):
        for n in (10, 100):
            assert any(
                line.split()[:2] == [op, str(n)] and line.rstrip().endswith(tuple("0123456789"))
                for line in text.splitlines()
            ), (op, n)
    assert "tutorial checks: ok" in text
    # The benchmark module's report, chart and checks.
    assert "vs lcm-async" in text and "of ceiling" in text and "embed reqs" in text
    assert "FAILED" not in text and "UNAVAILABLE" not in text
    assert "benchmark checks: ok (30 cases passed)" in text
    pngs = [
        out
        for out in outputs(nb)
        if out["output_type"] == "display_data" and "image/png" in out.get("data", {})
    ]
    assert pngs, "no PNG chart displayed"
