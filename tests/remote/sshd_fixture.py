"""A real OpenSSH server on 127.0.0.1 for the remote tests: throw-away host and user keys, a free port,
public-key login only, and a known_hosts file holding the server's real host key.

Debian's openssh-server is installed with apt-get when /usr/sbin/sshd is missing and we are root;
otherwise the tests are skipped with the reason (CI installs it beforehand).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

SSHD = Path("/usr/sbin/sshd")


@dataclass
class SshServer:
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    python: str  # the interpreter the device runner uses on this "device"
    log: Path
    root: Path

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _ensure_sshd() -> None:
    if SSHD.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("needs /usr/sbin/sshd (apt-get install openssh-server); not root, so not installing it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                                 "openssh-server"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"could not install openssh-server: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekd-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(root: Path, port: int, host_key: Path, authorized: Path) -> Path:
    lines = [
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp", "MaxStartups 50", "LogLevel VERBOSE",
    ]
    path = root / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within {timeout} s")


def write_known_hosts(path: Path, port: int, public_key: Path) -> Path:
    key_type, key_b64 = public_key.read_text().split()[:2]
    path.write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    return path


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """Start `sshd -D -f cfg` on a free port of 127.0.0.1 for the whole test session."""
    pytest.importorskip("paramiko", reason="remote tests need paramiko: pip install 'edgekd[remote]'")
    _ensure_sshd()
    root = tmp_path_factory.mktemp("sshd")
    host_key, user_key = _keygen(root / "host_ed25519"), _keygen(root / "user_ed25519")
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{user_key}.pub").read_text())
    port = free_port()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = root / "sshd.log"
    process = subprocess.Popen([str(SSHD), "-D", "-E", str(log), "-f", str(_config(root, port, host_key, authorized))])
    try:
        _wait_for_port(port, process, log)
        known = write_known_hosts(root / "known_hosts", port, Path(f"{host_key}.pub"))
        yield SshServer("127.0.0.1", port, getpass.getuser(), user_key, known, sys.executable, log, root)
    finally:
        process.terminate()
        process.wait(timeout=10)


class DroppingServer:
    """Accepts TCP connections and closes them at once: a device whose SSH link keeps dropping."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone may not
        except OSError:
            pass
        self.socket.close()


@pytest.fixture
def dropping_server() -> Iterator[DroppingServer]:
    server = DroppingServer()
    yield server
    server.close()
