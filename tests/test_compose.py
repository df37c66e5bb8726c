"""compose.yaml (two nodes, Redis, PostgreSQL; docs/operations.md): checked against the app itself.

Every node's environment is parsed by `switchyard serve`'s own parser and validated as at start-up
(app/cli.py, app/config.py), so a misspelt or invalid variable fails here; its ports are the ones
those settings make it listen on, published on the same host ports (ICE candidates carry them);
the nodes share the database and Redis services and pipe to each other on their network addresses.
`docker compose config` checks the file where the compose plugin is installed, and where a Docker
daemon runs the stack is brought up and both nodes answer /api/health.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli import build_parser, settings_from_args

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
NODES = ("node-a", "node-b")
# what the image's ENV and `switchyard serve` read that app/cli.py does not parse
IMAGE_VARIABLES = {"SWITCHYARD_WEB_DIR"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def app_variables() -> set[str]:
    """Every SWITCHYARD_* name `switchyard serve` reads (env("X") / env_default("X") in app/cli.py)."""
    source = (ROOT / "app" / "cli.py").read_text()
    names = set(re.findall(r'env(?:_default)?\("([A-Z_]+)"', source))
    assert {"REDIS_URL", "PIPE_ANNOUNCED_IP", "DATABASE_URL", "PUBLIC_URL"} <= names
    return {f"SWITCHYARD_{name}" for name in names} | IMAGE_VARIABLES


def interpolated(value: str) -> str:
    """`${NAME:-default}` as compose resolves it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def node_settings(environment: dict, monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("SWITCHYARD_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, interpolated(value))
    return settings_from_args(build_parser().parse_args(["serve"]))


def published(service: dict) -> set[tuple[int, int, str]]:
    """(host port, container port, protocol) of every published port, ranges expanded."""
    result = set()
    for entry in service.get("ports", []):
        spec, _, protocol = str(entry).partition("/")
        host, container = spec.rsplit(":", 1) if spec.count(":") else (spec, spec)
        host = host.rsplit(":", 1)[-1]
        hosts, containers = (_range(host), _range(container))
        assert len(hosts) == len(containers), entry
        result |= {(h, c, protocol or "tcp") for h, c in zip(hosts, containers, strict=True)}
    return result


def _range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def test_services_are_two_nodes_postgres_and_redis(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", *NODES}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
    for name in NODES:
        assert services[name]["build"] == "."
    # node B starts after node A, which applied the migrations; A after the database and Redis
    assert services["node-b"]["depends_on"]["node-a"]["condition"] == "service_healthy"
    assert {k: v["condition"] for k, v in services["node-a"]["depends_on"].items()} == {
        "postgres": "service_healthy", "redis": "service_healthy"}


def test_each_node_environment_is_valid_for_the_app_and_publishes_its_ports(compose, monkeypatch):
    services = compose["services"]
    known = app_variables()
    subnet = ipaddress.ip_network(compose["networks"]["switchyard"]["ipam"]["config"][0]["subnet"])
    postgres = services["postgres"]["environment"]
    seen_ports: set[int] = set()
    pipe_ips = set()
    for name in NODES:
        service = services[name]
        environment = service["environment"]
        assert set(environment) <= known, f"{name}: unknown variables {set(environment) - known}"
        settings = node_settings(environment, monkeypatch)  # the app's own parsing and validation
        assert settings.redis_url == "redis://redis:6379/0"
        db = urlsplit(settings.database_url)
        assert (db.scheme, db.hostname, db.port, db.path.lstrip("/")) == (
            "postgresql+asyncpg", "postgres", 5432, postgres["POSTGRES_DB"])
        assert (db.username, db.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
        assert settings.jwt_secret and not settings.jwt_secret_generated  # both nodes sign alike
        # the pipe address is the node's own address on the compose network
        address = service["networks"]["switchyard"]["ipv4_address"]
        assert settings.pipe_announced_ip == address and ipaddress.ip_address(address) in subnet
        pipe_ips.add(address)
        # every port the node listens on is published on the same host port
        ports = {settings.port, settings.signaling_port}
        wanted = {(p, p, "tcp") for p in ports}
        wanted |= {(p, p, proto) for p in settings.rtc_ports for proto in ("udp", "tcp")}
        assert published(service) == wanted, name
        assert urlsplit(settings.public_url).port == settings.port
        assert not (ports | set(settings.rtc_ports)) & seen_ports, "two nodes publish the same port"
        seen_ports |= ports | set(settings.rtc_ports)
        health = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{settings.port}/api/health" in health
    assert len(pipe_ips) == 2


def test_docker_compose_config_accepts_the_file():
    if shutil.which("docker") is None:
        pytest.skip("no Docker client: `docker compose config` cannot run here")
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("the Docker client has no compose plugin: `docker compose config` cannot run here")
    checked = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.timeout(1800)
def test_the_stack_comes_up_and_both_nodes_answer():
    if shutil.which("docker") is None:
        pytest.skip("no Docker client: the compose stack cannot be brought up here")
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("the Docker client has no compose plugin: the stack cannot be brought up here")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker daemon runs here: the compose stack cannot be brought up")
    project = f"switchyard-test-{int(time.time())}"
    base = ["docker", "compose", "-f", str(COMPOSE), "--project-name", project]
    try:
        up = subprocess.run([*base, "up", "--detach", "--build", "--wait"], capture_output=True, text=True,
                            timeout=1700)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        for port in (3000, 3001):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
                assert response.status == 200
    finally:
        subprocess.run([*base, "down", "--volumes"], capture_output=True, timeout=300)
