"""The `switchyard` command as a user runs it: a real process, real ports, real PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import jwt
import pytest

from tests.test_worker_pool import engine_processes

SWITCHYARD = [sys.executable, "-m", "app"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*SWITCHYARD, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, stdin=subprocess.DEVNULL)


def serve_args(base: int, *extra: str, db: str | None = None, workers: int = 1) -> list[str]:
    return [
        "serve", "--host", "127.0.0.1", "--port", str(base), "--signaling-port", str(base + 1),
        "--rtc-port-base", str(base + 2), "--workers", str(workers), "--announced-ip", "127.0.0.1",
        "--database-url", db or "sqlite+aiosqlite:///:memory:", *extra,
    ]


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("switchyard: error:")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in ("serve", "db", "token", "bench", "loadtest"):
        assert name in result.stdout


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--port", "70000"], "HTTP port must be between 1 and 65535"),
        (["--port", "abc"], "HTTP port must be an integer"),
        (["--workers", "0"], "workers must be between"),
        (["--announced-ip", "not-an-ip"], "is not an IP address"),
        (["--announced-ip", "0.0.0.0"], "cannot be used by clients"),
        (["--rtc-port-base", "65535", "--workers", "2"], "exceed 65535"),
        (["--database-url", "mysql://u@h/d"], "not supported"),
        (["--log-level", "loud"], "log level"),
    ],
)
def test_bad_settings_exit_2_with_one_line(flags, needle):
    assert_one_line_error(run_cli("serve", "--signaling-port", "0", *flags), needle)


def test_bad_setting_from_environment():
    result = run_cli("serve", env={"SWITCHYARD_PORT": "0"})
    assert_one_line_error(result, "HTTP port")


@pytest.mark.parametrize("name,value,needle", [("SWITCHYARD_WORKER_RESPAWN_LIMIT", "-1", "respawn limit"),
                                               ("SWITCHYARD_WORKER_RESPAWN_WINDOW", "0", "respawn window"),
                                               ("SWITCHYARD_WORKER_RESPAWN_LIMIT", "many", "RESPAWN_LIMIT")])
def test_bad_respawn_bound_from_environment(name, value, needle):
    assert_one_line_error(run_cli("serve", "--signaling-port", "0", env={name: value}), needle)


@pytest.mark.parametrize("name,value,needle", [("SWITCHYARD_WORKER_STANDBY", "2", "worker standby must be 1 (on) or 0"),
                                               ("SWITCHYARD_WORKER_STANDBY", "yes", "WORKER_STANDBY must be an integer"),
                                               ("SWITCHYARD_PIPE_SRTP", "-1", "pipe SRTP must be 1 (SRTP) or 0")])
def test_bad_standby_or_pipe_srtp_from_environment(name, value, needle):
    assert_one_line_error(run_cli("serve", "--signaling-port", "0", env={name: value}), needle)


def test_unreachable_database(free_ports):
    base = free_ports(4)
    result = run_cli(*serve_args(base, db="postgresql+asyncpg://postgres@127.0.0.1:1/test"))
    assert_one_line_error(result, "unreachable")


def test_missing_sqlite_folder(free_ports):
    base = free_ports(4)
    result = run_cli(*serve_args(base, db="sqlite+aiosqlite:////nonexistent-dir/x.db"))
    assert_one_line_error(result, "does not exist")


def test_unreachable_redis(free_ports):
    base = free_ports(4)
    result = run_cli(*serve_args(base, "--redis-url", "redis://127.0.0.1:1/0"))
    assert_one_line_error(result, "Redis")


@pytest.mark.parametrize("which,offset,kind", [("HTTP", 0, socket.SOCK_STREAM),
                                               ("signaling", 1, socket.SOCK_STREAM),
                                               ("RTC", 2, socket.SOCK_DGRAM)])
def test_taken_port(free_ports, which, offset, kind):
    base = free_ports(4)
    with socket.socket(socket.AF_INET, kind) as squatter:
        squatter.bind(("127.0.0.1", base + offset))
        if kind == socket.SOCK_STREAM:
            squatter.listen(1)
        result = run_cli(*serve_args(base))
    assert_one_line_error(result, which)


def test_token_needs_secret_and_mints_a_valid_jwt():
    env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_JWT_SECRET"}
    result = subprocess.run([*SWITCHYARD, "token", "u1"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "SWITCHYARD_JWT_SECRET" in result.stderr
    result = run_cli("token", "user-42", "--ttl", "60", env={"SWITCHYARD_JWT_SECRET": "a-test-secret-that-is-long-enough-for-hs256"})
    assert result.returncode == 0
    claims = jwt.decode(result.stdout.strip(), "a-test-secret-that-is-long-enough-for-hs256", algorithms=["HS256"])
    assert claims["sub"] == "user-42"
    assert 55 <= claims["exp"] - time.time() <= 61


def test_loadtest_without_a_server_is_one_line_and_exit_code_2():
    result = run_cli("loadtest", "--url", "http://127.0.0.1:9", "--no-progress", "--output", "")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("switchyard: error: cannot reach the server at http://127.0.0.1:9")


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_health(url: str, proc: subprocess.Popen, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            status, body = get_json(url)
            if status == 200:
                return body
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError("health never answered 200")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_serve_health_and_clean_stop(free_ports, tmp_path, postgres_url, redis_url, database):
    base = free_ports(5)
    db = f"sqlite+aiosqlite:///{tmp_path}/s.db" if database == "sqlite" else postgres_url
    proc = subprocess.Popen(
        [*SWITCHYARD, *serve_args(base, "--redis-url", redis_url, "--log-format", "json", db=db, workers=2)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        body = wait_for_health(f"http://127.0.0.1:{base}/api/health", proc)
        assert body["status"] == "ok" and body["db"] == "ok" and body["redis"] == "ok"
        assert [w["rtcPort"] for w in body["workers"]] == [base + 2, base + 3]
        worker_pids = [w["pid"] for w in body["workers"]]
        assert all(pid_alive(pid) for pid in worker_pids)
        # each slot's warm standby starts beside its worker (app/worker_pool.py)
        deadline = time.monotonic() + 20
        while [len(engine_processes(port)) for port in (base + 2, base + 3)] != [2, 2]:
            assert time.monotonic() < deadline, [engine_processes(port) for port in (base + 2, base + 3)]
            time.sleep(0.1)
        status, _ = get_json(f"http://127.0.0.1:{base + 1}/api/health")
        assert status == 200, "the signaling port serves the same app"
        status, error = get_json(f"http://127.0.0.1:{base}/api/does-not-exist")
        assert status == 404 and error == {"error": {"code": "not_found", "message": "Not Found"}}
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{base}" in out and "RTC" in out and "database" in out
    for line in err.splitlines():
        json.loads(line)  # --log-format json: every log line is one JSON object
    time.sleep(0.2)
    assert not any(pid_alive(pid) for pid in worker_pids), "no orphan workers"
    assert engine_processes(base + 2) == engine_processes(base + 3) == [], "no orphan standbys"


def test_killed_worker_is_reported(free_ports):
    base = free_ports(4)
    # respawning off (tests/test_worker_respawn.py covers it): the dead worker stays dead
    proc = subprocess.Popen([*SWITCHYARD, *serve_args(base)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "SWITCHYARD_WORKER_RESPAWN_LIMIT": "0"})
    try:
        body = wait_for_health(f"http://127.0.0.1:{base}/api/health", proc)
        os.kill(body["workers"][0]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status, body = get_json(f"http://127.0.0.1:{base}/api/health")
            if status == 503:
                break
            time.sleep(0.1)
        assert status == 503 and body["workers"][0]["status"] == "dead"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "died" in err and "not respawning it" in err
