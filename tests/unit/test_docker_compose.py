"""Checks on the top-level docker-compose.yml (Milvus standalone + etcd + MinIO).

The structural tests only read the YAML, so they run anywhere. `test_compose_config_validates`
asks a real Compose implementation to validate the file; it needs no Docker engine, only a
`docker-compose` binary (Debian: `apt-get install docker-compose`) or the `docker compose`
plugin, and is skipped when neither is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
MILVUS_SERVICE_NAMES = ("standalone", "milvus")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no services mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture(scope="module")
def milvus_name(services: dict[str, dict[str, Any]]) -> str:
    found = [name for name in MILVUS_SERVICE_NAMES if name in services]
    assert len(found) == 1, f"expected one Milvus service named one of {MILVUS_SERVICE_NAMES}"
    return found[0]


@pytest.fixture(scope="module")
def milvus(services: dict[str, dict[str, Any]], milvus_name: str) -> dict[str, Any]:
    return services[milvus_name]


def _image(service: dict[str, Any]) -> tuple[str, str]:
    image = service.get("image")
    assert isinstance(image, str) and image, f"service has no image: {service!r}"
    assert "@" not in image, "pin images by tag here, not digest"
    repo, sep, tag = image.rpartition(":")
    assert sep and "/" not in tag, f"image {image!r} has no explicit tag"
    assert tag != "latest", f"image {image!r} must be pinned, not :latest"
    return repo, tag


def _published_ports(service: dict[str, Any]) -> set[int]:
    """Host ports a service publishes, from short ("[ip:]host:container[/proto]") or long syntax."""
    published: set[int] = set()
    for entry in service.get("ports", []) or []:
        if isinstance(entry, dict):
            if "published" in entry:
                published.add(int(str(entry["published"])))
            continue
        text = str(entry).split("/", 1)[0]
        parts = text.rsplit(":", 2)
        if len(parts) >= 2:  # host[:ip] mapping present; a bare "19530" is not published stably
            published.add(int(parts[-2]))
    return published


def _healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, list):
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"bad healthcheck test {test!r}"
        return " ".join(str(part) for part in test[1:])
    return str(test)


# --- services and images ------------------------------------------------------------------


def test_expected_services(services: dict[str, dict[str, Any]], milvus_name: str) -> None:
    assert {"etcd", "minio", milvus_name} <= set(services)


def test_milvus_image_is_a_2_6_release(milvus: dict[str, Any]) -> None:
    repo, tag = _image(milvus)
    assert repo in ("milvusdb/milvus", "docker.io/milvusdb/milvus")
    assert tag.startswith("v2.6"), f"Milvus tag {tag!r} is not a 2.6 release"
    assert "rc" not in tag.lower(), f"Milvus tag {tag!r} is a release candidate"


def test_etcd_image(services: dict[str, dict[str, Any]]) -> None:
    repo, tag = _image(services["etcd"])
    assert repo == "quay.io/coreos/etcd"
    assert tag.startswith("v3.5."), tag


def test_minio_image(services: dict[str, dict[str, Any]]) -> None:
    repo, tag = _image(services["minio"])
    assert repo == "minio/minio"
    assert tag.startswith("RELEASE."), tag


def test_milvus_runs_standalone_like_the_official_file(milvus: dict[str, Any]) -> None:
    assert milvus.get("command") == ["milvus", "run", "standalone"]
    assert "seccomp:unconfined" in (milvus.get("security_opt") or [])
    env = milvus.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    assert env.get("ETCD_ENDPOINTS") == "etcd:2379"
    assert env.get("MINIO_ADDRESS") == "minio:9000"


# --- ports --------------------------------------------------------------------------------


def test_milvus_publishes_grpc_and_health_ports(milvus: dict[str, Any]) -> None:
    ports = _published_ports(milvus)
    assert 19530 in ports, f"gRPC port 19530 not published (got {sorted(ports)})"
    assert 9091 in ports, f"health/metrics port 9091 not published (got {sorted(ports)})"


def test_published_port_parser() -> None:
    service = {
        "ports": [
            "19530:19530",
            "127.0.0.1:9001:9001",
            "9091:9091/tcp",
            {"target": 2379, "published": "2379"},
            "6060",
        ]
    }
    assert _published_ports(service) == {19530, 9001, 9091, 2379}


# --- volumes ------------------------------------------------------------------------------


def test_volumes_are_named_and_declared(compose: dict[str, Any]) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    used: set[str] = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []) or []:
            if isinstance(volume, dict):
                assert volume.get("type", "volume") == "volume", (
                    f"{name}: {volume!r} is not a named volume"
                )
                source = str(volume.get("source", ""))
            else:
                source = str(volume).split(":", 1)[0]
            assert source, f"{name}: anonymous volume {volume!r}"
            assert not source.startswith(("/", ".", "~", "$")), (
                f"{name}: {volume!r} is a bind mount; use a named volume"
            )
            assert source in declared, f"{name}: volume {source!r} is not declared at top level"
            used.add(source)
    for name in ("etcd", "minio"):
        assert compose["services"][name].get("volumes"), f"{name} keeps no data in a volume"
    assert used, "no service uses a volume"
    assert declared == used, f"declared but unused volumes: {sorted(declared - used)}"


# --- health and start order ---------------------------------------------------------------


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert isinstance(check, dict) and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"


def test_healthcheck_commands(services: dict[str, dict[str, Any]], milvus_name: str) -> None:
    assert "http://localhost:9091/healthz" in _healthcheck_command(services[milvus_name])
    assert "etcdctl endpoint health" in _healthcheck_command(services["etcd"])
    assert "http://localhost:9000/minio/health/live" in _healthcheck_command(services["minio"])


def test_depends_on_waits_for_healthy(
    services: dict[str, dict[str, Any]], milvus_name: str
) -> None:
    depends = services[milvus_name].get("depends_on")
    assert isinstance(depends, dict), "depends_on must use the long form with conditions"
    assert set(depends) >= {"etcd", "minio"}
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"
            assert isinstance(spec, dict) and spec.get("condition") == "service_healthy", (
                f"{name} -> {dependency}: condition must be service_healthy, got {spec!r}"
            )


# --- validation by a real Compose implementation ------------------------------------------


def _compose_command() -> list[str] | None:
    """`docker-compose` (v1, Debian's package) or the `docker compose` plugin, if present."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        try:
            probe = subprocess.run(
                [docker, "compose", "version"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def test_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip(
            "no docker-compose binary or `docker compose` plugin on PATH; install one "
            "(Debian: apt-get update && apt-get install -y docker-compose) to validate "
            "docker-compose.yml"
        )
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=COMPOSE_FILE.parent,
    )
    assert result.returncode == 0, (
        f"`{' '.join(command)} config -q` failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
