"""TURN in tests: a self-signed certificate for turns:, and a `switchyard serve` that runs coturn.

The server announces 127.0.0.1, so coturn is started with loopback peers allowed (app/turn/coturn.py
does that for a loopback announced IP) and its relayed addresses are on 127.0.0.1 too.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import shutil
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from loadgen.harness import spawn
from tests.signaling_server import ServerProcess

TURN_SECRET = "turn-tests-secret-0123456789abcdef"
RELAY_PORTS = 40


def require_coturn() -> None:
    if shutil.which("turnserver") is None:
        pytest.fail("coturn is not installed: run `make coturn` (apt-get install coturn)")


def self_signed(folder: Path) -> tuple[Path, Path, str]:
    """A certificate for 127.0.0.1 and localhost: (cert, key, base64 SHA-256 of its public key),
    the last for Chromium's --ignore-certificate-errors-spki-list."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "turn.crt", folder / "turn.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert_path, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode()


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


class TurnServer:
    """`switchyard serve` with SWITCHYARD_TURN=coturn on fresh ports; `.turn_port`, `.tls_port`."""

    def __init__(self, folder: Path, transports: str, extra_env: dict | None = None):
        require_coturn()
        self.cert, self.key, self.spki = self_signed(folder)
        # coturn may also take each listening port + 1 (RFC 5780's alternative port): keep them free.
        # 32000..33000: above the range of the servers' own ports (tests/conftest.py), below loadgen's
        base = spawn.free_port_range(4 + RELAY_PORTS, low=32000, high=33000, host="0.0.0.0")
        self.turn_port, self.tls_port = base, base + 2
        env = {
            "SWITCHYARD_TURN": "coturn",
            "SWITCHYARD_TURN_SECRET": TURN_SECRET,
            "SWITCHYARD_TURN_TRANSPORTS": transports,
            "SWITCHYARD_TURN_PORT": str(self.turn_port),
            "SWITCHYARD_TURN_TLS_PORT": str(self.tls_port),
            "SWITCHYARD_TURN_RELAY_PORTS": f"{base + 4}-{base + 3 + RELAY_PORTS}",
            "SWITCHYARD_TURN_CERT": str(self.cert),
            "SWITCHYARD_TURN_KEY": str(self.key),
            "SWITCHYARD_RECORDINGS_DIR": str(folder / "recordings"),
            **(extra_env or {}),
        }
        self.server = ServerProcess(f"sqlite+aiosqlite:///{folder}/s.db", extra_env=env)
        self.url = self.server.url

    def coturn_pids(self, wait: float = 5.0) -> list[int]:
        """The server's running coturn children (from /proc: every thread's children), waiting up
        to `wait` seconds for one to show."""
        deadline = time.monotonic() + wait
        while True:
            pids = []
            for children in Path(f"/proc/{self.server.process.pid}/task").glob("*/children"):
                try:
                    listed = children.read_text().split()
                except OSError:
                    continue
                pids += [int(pid) for pid in listed if comm(int(pid)) == "turnserver" and running(int(pid))]
            if pids or time.monotonic() > deadline:
                return pids
            time.sleep(0.1)

    def stop(self) -> str:
        return self.server.stop()
