"""The package as users get it: build the sdist and wheel, check them, install the wheel fresh.

`python -m build` runs on a copy of the checkout (so it writes no egg-info into it, and sees
the tests directory, which must stay out of the distributions). Then:

- `twine check --strict` passes for both files, and the build printed no license deprecation
  warning (the license is an SPDX string);
- the wheel and the sdist hold `py.typed` and the LICENSE, and no test file;
- a fresh virtualenv gets the wheel with its base dependencies only (pip may use the
  registry and its cache), and a script there imports the installed package (not the
  checkout), checks that no extra came along, and runs a tiny add/search on a Milvus Lite
  file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.lite, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "*.db",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "benchmark-results")

SMOKE = textwrap.dedent("""
    import importlib.util, pathlib, sys, tempfile
    import langchain_milvus_ext
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_milvus_ext import Milvus, MilvusVectorStore

    here = pathlib.Path(langchain_milvus_ext.__file__).resolve()
    assert "site-packages" in here.parts, here
    assert (here.parent / "py.typed").is_file()
    assert Milvus is MilvusVectorStore
    for extra in ("langchain_openai", "matplotlib", "tqdm", "langchain_text_splitters", "tests"):
        assert importlib.util.find_spec(extra) is None, f"{extra} installed without an extra"
    with tempfile.TemporaryDirectory() as tmp:
        with MilvusVectorStore(DeterministicFakeEmbedding(size=8),
                               connection_args={"uri": tmp + "/smoke.db"}) as store:
            ids = store.add_texts(["milvus lite", "vector search"], ids=["a", "b"])
            hits = store.similarity_search("milvus lite", k=1)
    assert ids == ["a", "b"] and [d.id for d in hits] == ["a"], (ids, hits)
    print("SMOKE OK", langchain_milvus_ext.__version__, here)
""")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=540)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{output[-4000:]}"
    return output


def test_build_check_and_install_into_fresh_venv(tmp_path: Path) -> None:
    pytest.importorskip("build")
    pytest.importorskip("twine")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    dist = tmp_path / "dist"
    log = _run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], tmp_path)
    warnings = [line for line in log.lower().splitlines() if "deprecat" in line and "licen" in line]
    assert warnings == [], warnings  # e.g. "`project.license` as a TOML table is deprecated"
    wheel, = dist.glob("*.whl")
    sdist, = dist.glob("*.tar.gz")
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], tmp_path)

    names = zipfile.ZipFile(wheel).namelist()
    assert "langchain_milvus_ext/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n
                or Path(n).name.startswith("test_") or n.endswith("conftest.py")]
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata
    assert "Classifier: Typing :: Typed" in metadata and "Project-URL:" in metadata
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("/langchain_milvus_ext/py.typed") for m in members)
    assert any(m.endswith("/LICENSE") for m in members)
    assert not [m for m in members if "/tests/" in m or Path(m).name.startswith("test_")]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], tmp_path, env)
    out = _run([str(python), "-c", SMOKE], tmp_path, env)
    assert "SMOKE OK 0.1.0" in out, out
