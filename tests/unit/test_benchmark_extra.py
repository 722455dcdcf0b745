"""The benchmark command without its extra (tqdm, matplotlib): `--help` works, a run says what
to install. Missing modules are simulated in a subprocess by a sitecustomize that sets
`sys.modules[name] = None` (which makes `import name` raise ImportError)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = (  # what the `langchain-milvus-ext-benchmark` console script runs
    "import sys; from langchain_milvus_ext.benchmark.__main__ import main; sys.exit(main())"
)
INSTALL = "pip install 'langchain-milvus-ext[benchmark]'"


def _run(tmp_path: Path, missing: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in missing))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", ENTRY_POINT, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_simulation_hides_the_modules(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['tqdm'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", "import tqdm"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1 and "ModuleNotFoundError: import of tqdm" in done.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_without_the_extra(tmp_path: Path, flag: str) -> None:
    done = _run(tmp_path, ["tqdm", "matplotlib"], flag)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "--workloads" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_run_without_tqdm_names_the_extra_and_starts_nothing(tmp_path: Path) -> None:
    done = _run(tmp_path, ["tqdm"], "--quick", "--workloads", "add")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert INSTALL in done.stderr and "tqdm" in done.stderr
    assert "--no-progress" in done.stderr  # the progress bar is what needs tqdm
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "benchmark-results").exists()


def test_a_plot_without_matplotlib_names_the_extra_before_running(tmp_path: Path) -> None:
    done = _run(tmp_path, ["matplotlib"], "--quick", "--workloads", "add", "--plot")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert INSTALL in done.stderr and "matplotlib" in done.stderr
    assert "Traceback" not in done.stderr and "Case" not in done.stdout


def test_the_python_api_names_the_extra_too(tmp_path: Path) -> None:
    code = (
        "from langchain_milvus_ext.benchmark import BenchmarkConfig, ConfigError, run_benchmark\n"
        "try:\n"
        "    run_benchmark(BenchmarkConfig(n=(5,), prefill=20))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['tqdm'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert INSTALL in done.stdout


def test_the_service_workload_without_its_modules_names_the_extra(tmp_path: Path) -> None:
    done = _run(tmp_path, ["starlette", "uvicorn"], "--workloads", "service", "--no-progress")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert INSTALL in done.stderr and "starlette and uvicorn" in done.stderr
    assert "Traceback" not in done.stderr
    plain = _run(tmp_path, ["starlette", "uvicorn"], "--help")  # not imported otherwise
    assert plain.returncode == 0 and "--service-concurrency" in plain.stdout
