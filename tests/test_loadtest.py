"""`switchyard loadtest` end to end: real CLI, a spawned real server, synthetic participants."""

from __future__ import annotations

import http.server
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from loadgen.harness.media import TransportError, pick_candidate
from loadgen.harness.scenario import LoadtestError, Scenario
from tests.conftest import free_port_range
from tests.signaling_server import ServerProcess

pytestmark = pytest.mark.timeout(90)


def loadtest(*args: str, timeout: float = 75) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "loadtest", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_a_short_scenario_forwards_audio_and_simulcast_video_between_rooms_peers(tmp_path):
    report_path, plot_path = tmp_path / "lt.json", tmp_path / "lt.png"
    run = loadtest("--spawn-server", "--rooms", "2", "--participants", "3", "--senders", "2",
                   "--simulcast", "2", "--layers", "mixed", "--duration", "2", "--ramp", "0.05", "--no-progress",
                   "--output", str(report_path), "--plot", str(plot_path))
    assert run.returncode == 0, run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    report = json.loads(report_path.read_text())
    totals = report["totals"]
    # per room: the two senders consume each other's audio and video, the third both of theirs
    assert totals["joined"] == 6 and totals["consumers"] == 16 and report["error_count"] == 0
    assert totals["consumers_audio"] == totals["consumers_video"] == 8
    assert totals["consumers_receiving"] == 16
    assert totals["received_packets"] > 0 and totals["srtp_failures"] == 0
    assert totals["loss"] < 0.01
    assert totals["latency_ms_audio"]["samples"] > 0 and totals["latency_ms_video"]["samples"] > 0
    assert 0 < totals["latency_ms"]["p50"] < 50
    assert 0 < report["probe_floor_ms"]["p50"] < totals["latency_ms"]["p50"]
    # each video consumer gets the one layer of two it asked for, a quarter of the bitrate apart
    assert totals["video_key_frames"] >= 4 and totals["key_frame_requests"] >= 1
    low, high = totals["video_layers"]
    assert (low["layer"], high["layer"]) == (0, 1) and low["consumers"] + high["consumers"] == 8
    assert 2 * low["kbps_per_consumer"] < high["kbps_per_consumer"]
    assert report["workers"] and report["workers"][0]["rss_mb_max"] > 0
    assert len(report["per_second"]) >= 2
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the spawned server and its workers are gone
    for worker in report["workers"]:
        assert not os.path.exists(f"/proc/{worker['pid']}/status") or _is_zombie(worker["pid"])


def test_sigterm_ends_the_run_early_with_a_report_and_stops_the_spawned_server(tmp_path):
    report_path = tmp_path / "lt.json"
    process = subprocess.Popen([sys.executable, "-m", "app", "loadtest", "--spawn-server", "--participants", "2",
                                "--duration", "60", "--no-progress", "--output", str(report_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        line = ""
        while "measuring for" not in line and time.monotonic() < deadline and process.poll() is None:
            if select.select([process.stdout], [], [], 1)[0]:
                line = process.stdout.readline()
        assert "measuring for" in line, "the run never started measuring"
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted" in out
    report = json.loads(report_path.read_text())
    assert report["interrupted"] and report["totals"]["received_packets"] > 0
    for worker in report["workers"]:
        assert not os.path.exists(f"/proc/{worker['pid']}/status") or _is_zombie(worker["pid"])


def test_a_killed_harness_takes_its_spawned_server_and_workers_along(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "app", "loadtest", "--spawn-server", "--participants", "1",
                                "--no-video", "--duration", "60", "--no-progress", "--output", ""],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                               env={**os.environ, "TMPDIR": str(tmp_path)})   # its server's database too
    server_pid, lines = None, []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and process.poll() is None:
            if select.select([process.stdout], [], [], 1)[0]:
                lines.append(process.stdout.readline())
                if lines[-1].startswith("spawned server:"):
                    server_pid = int(lines[-1].split("(pid ")[1].split(",")[0])
                if "measuring for" in lines[-1]:
                    break
        assert server_pid and "measuring for" in lines[-1], lines
        with open(f"/proc/{server_pid}/task/{server_pid}/children") as children:
            family = [server_pid, *map(int, children.read().split())]
        assert len(family) >= 2, "the server has its media worker"
        process.kill()
        process.communicate(timeout=10)
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not all(_gone(pid) for pid in family):
            time.sleep(0.2)
        assert all(_gone(pid) for pid in family)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}/status") or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("args, message", [
    (["--participants", "0"], "--participants must be in 1..200"),
    (["--senders", "5"], "--senders must be in 0..--participants"),
    (["--simulcast", "4"], "--simulcast must be 1, 2 or 3"),
    (["--no-audio", "--no-video"], "leave nothing to send"),
    (["--rooms", "x"], "invalid int value"),
])
def test_bad_options_are_one_line_and_exit_code_2(args, message):
    run = loadtest(*args, "--url", "http://127.0.0.1:9")
    assert run.returncode == 2
    assert message in run.stderr and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_an_unreachable_server_is_one_line_and_exit_code_2(tmp_path):
    port = free_port_range(1)
    run = loadtest("--url", f"http://127.0.0.1:{port}", "--duration", "1", "--no-progress",
                   "--output", str(tmp_path / "none.json"))
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("switchyard: error: cannot reach the server at")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not (tmp_path / "none.json").exists()


def test_rid_simulcast_against_an_already_running_server_which_keeps_no_rooms(tmp_path):
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    try:
        report_path = tmp_path / "lt.json"
        run = loadtest("--url", server.url, "--participants", "3", "--senders", "1", "--simulcast", "2",
                       "--rid", "--layers", "low", "--duration", "1", "--ramp", "0", "--no-progress",
                       "--output", str(report_path))
        assert run.returncode == 0, run.stderr + run.stdout
        totals = json.loads(report_path.read_text())["totals"]
        assert totals["consumers_audio"] == totals["consumers_video"] == 2
        assert totals["consumers_receiving"] == 4 and totals["unknown_ssrc"] == 0
        assert totals["received_packets"] > 0 and totals["loss"] < 0.01
        # the server learnt each encoding's SSRC from its RID and forwards the low layer asked for
        [low] = totals["video_layers"]
        assert low["layer"] == 0 and low["consumers"] == 2 and 100 < low["kbps_per_consumer"] < 300  # 150 of 600
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert "switchyard_rooms 0.0" in metrics and "switchyard_peers 0.0" in metrics
        with sqlite3.connect(tmp_path / "s.db") as db:   # the organizer deleted its room
            assert db.execute("SELECT count(*) FROM rooms WHERE deleted_at IS NULL").fetchone() == (0,)
    finally:
        err = server.stop()
    assert "Traceback" not in err, err


def test_a_web_server_that_is_not_switchyard_is_one_line_and_exit_code_2(tmp_path):
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        run = loadtest("--url", f"http://127.0.0.1:{web.server_address[1]}", "--no-progress", "--output", "")
    finally:
        web.shutdown()
        web.server_close()
    assert run.returncode == 2
    assert "does not answer /api/health like a Switchyard server" in run.stderr
    assert run.stderr.count("\n") == 1


def test_only_local_candidates_are_used():
    local = {"protocol": "udp", "address": "127.0.0.1", "port": 40000, "priority": 1}
    assert pick_candidate([local]) == ("127.0.0.1", 40000)
    with pytest.raises(TransportError, match="local addresses only"):
        pick_candidate([{**local, "address": "192.0.2.7"}])   # TEST-NET-1: never this machine
    with pytest.raises(TransportError, match="no UDP"):
        pick_candidate([{**local, "protocol": "tcp"}])


def test_video_layers_follow_the_bitrate_and_packet_size():
    layers = Scenario(video_bitrate=1_600_000, simulcast=3, fps=25, packet_size=1200).validate().video_layers()
    assert [layer["bitrate"] for layer in layers] == [100_000, 400_000, 1_600_000]
    top = layers[-1]
    assert top["packet_size"] <= 1200 and top["frame_packets"] == 8
    with pytest.raises(LoadtestError):
        Scenario(video_bitrate=20_000_000, fps=1).validate()
