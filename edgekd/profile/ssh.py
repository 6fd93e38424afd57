"""SSH to a device with paramiko: host keys verified, every argument quoted, dropped links retried.

Security model (docs/remote.md):
- Host keys are checked against known_hosts (`--known-hosts`, else ~/.ssh/known_hosts). An unknown host is
  refused with its fingerprint; a changed key is refused as a possible man-in-the-middle. Only the explicit
  `accept_new_host` opt-in records an unknown key (never a changed one), and it says so on stderr.
- Remote commands are argv lists joined with shlex.quote; no caller string reaches the shell unquoted.
- Authentication failures and host-key refusals are never retried; only transport failures are.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import select
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

from edgekd.errors import EdgekdError
from edgekd.profile.targets import DeviceTarget

T = TypeVar("T")
_KNOWN_HOSTS_LOCK = threading.Lock()  # fleet threads may record new keys into one file


@dataclass(frozen=True)
class SshOptions:
    known_hosts: Optional[Path] = None  # None: the user's ~/.ssh/known_hosts
    identity: Optional[Path] = None  # a target's own key_file wins
    accept_new_host: bool = False
    attempts: int = 3
    backoff_s: float = 1.0  # waits backoff_s, 2*backoff_s, ... between attempts
    connect_timeout_s: float = 15.0
    command_timeout_s: float = 1800.0
    warn: Callable[[str], None] = lambda message: print(f"warning: {message}", file=sys.stderr)

    def known_hosts_path(self) -> Path:
        return (self.known_hosts or Path("~/.ssh/known_hosts")).expanduser()


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Dropped(Exception):
    """The connection went away mid-operation; the whole operation is retried."""


def paramiko_module() -> Any:
    try:
        import paramiko
    except ImportError:
        raise EdgekdError("remote profiling needs paramiko: pip install 'edgekd[remote]'") from None
    return paramiko


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint, so a user can compare it with `ssh-keygen -lf`."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def shell_command(argv: Sequence[str], cwd: Optional[str] = None) -> str:
    """One POSIX shell line from an argv list; every element quoted."""
    command = shlex.join(str(part) for part in argv)
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command


def with_retries(target: DeviceTarget, options: SshOptions, operation: Callable[[], T]) -> T:
    """Run `operation`, reconnecting after transport failures with exponential backoff."""
    if options.attempts < 1:
        raise EdgekdError(f"attempts must be >= 1, got {options.attempts}")
    transient = _transient_errors()
    for attempt in range(1, options.attempts + 1):
        try:
            return operation()
        except transient as exc:
            reason = _reason(exc)
            if attempt < options.attempts:
                time.sleep(options.backoff_s * 2 ** (attempt - 1))
    raise EdgekdError(f"{target.label}: connection failed after {options.attempts} attempts: {reason}")


def _transient_errors() -> tuple[type[BaseException], ...]:
    paramiko = paramiko_module()
    return (OSError, EOFError, Dropped, paramiko.SSHException)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def connect(target: DeviceTarget, options: SshOptions) -> Iterator["Session"]:
    """An authenticated session whose host key matched known_hosts; closed on exit."""
    paramiko = paramiko_module()
    client = paramiko.SSHClient()
    _load_known_hosts(client, options)
    policy = _AcceptNew if options.accept_new_host else _Refuse
    client.set_missing_host_key_policy(policy(target, options))
    try:
        _connect(client, target, options, paramiko)
        yield Session(client, target, options)
    finally:
        client.close()


def _load_known_hosts(client: Any, options: SshOptions) -> None:
    path = options.known_hosts_path()
    if path.is_file():
        client.load_host_keys(str(path))
    elif options.known_hosts is not None and not options.accept_new_host:
        raise EdgekdError(f"known_hosts file not found: {path}")


def _connect(client: Any, target: DeviceTarget, options: SshOptions, paramiko: Any) -> None:
    key = target.key_file or options.identity
    if key is not None and not Path(key).expanduser().is_file():
        raise EdgekdError(f"{target.label}: identity file not found: {key}")
    try:
        client.connect(
            target.host, port=target.port, username=target.user,
            key_filename=str(Path(key).expanduser()) if key else None, look_for_keys=key is None,
            timeout=options.connect_timeout_s, banner_timeout=options.connect_timeout_s,
            auth_timeout=options.connect_timeout_s,
        )
    except paramiko.BadHostKeyException as exc:
        raise EdgekdError(
            f"{target.label}: host key {fingerprint(exc.key)} does not match {options.known_hosts_path()} "
            "(possible man-in-the-middle); refusing to connect"
        ) from None
    except paramiko.AuthenticationException as exc:
        raise EdgekdError(f"{target.label}: authentication failed: {_reason(exc)}") from None


class _Refuse:
    """paramiko's RejectPolicy, with a message that says how to trust the host deliberately."""

    def __init__(self, target: DeviceTarget, options: SshOptions) -> None:
        self.target, self.options = target, options

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        port = f"-p {self.target.port} " if self.target.port != 22 else ""
        raise EdgekdError(
            f"{self.target.label}: host key {fingerprint(key)} is not in {self.options.known_hosts_path()}; "
            f"check the fingerprint on the device, then `ssh-keyscan {port}{self.target.host} >> known_hosts`, "
            "or pass --insecure-accept-new-host"
        )


class _AcceptNew:
    """Trust-on-first-use, only when asked: record an unknown key and say so. A changed key is still
    refused, because paramiko raises BadHostKeyException before any policy is consulted."""

    def __init__(self, target: DeviceTarget, options: SshOptions) -> None:
        self.target, self.options = target, options

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        from edgekd.artifacts import atomic_write_text

        path = self.options.known_hosts_path()
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _KNOWN_HOSTS_LOCK:
            old = path.read_text(encoding="utf-8") if path.is_file() else ""
            atomic_write_text(path, old + ("" if not old or old.endswith("\n") else "\n") + line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.options.warn(f"{self.target.label}: accepted NEW host key {fingerprint(key)} into {path}")


class Session:
    """Commands and file copies over one connection."""

    def __init__(self, client: Any, target: DeviceTarget, options: SshOptions) -> None:
        self.client, self.target, self.options = client, target, options
        self._sftp: Any = None

    def run(self, argv: Sequence[str], cwd: Optional[str] = None, timeout: Optional[float] = None) -> Completed:
        """Run argv on the device (quoted, never interpreted) and collect its exit code and output."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise Dropped(f"connection to {self.target.label} is closed")
        channel = transport.open_session()
        try:
            channel.exec_command(shell_command(argv, cwd))
            out, err = _drain(channel, timeout or self.options.command_timeout_s, self.target)
            code = channel.recv_exit_status()
        finally:
            channel.close()
        if code == -1 and not transport.is_active():  # paramiko's "no exit status": the link died
            raise Dropped(f"connection to {self.target.label} dropped while running {argv[0]}")
        return Completed(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def check(self, argv: Sequence[str], cwd: Optional[str] = None) -> str:
        done = self.run(argv, cwd)
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise EdgekdError(f"{self.target.label}: `{shell_command(argv)}` failed: {detail}")
        return done.stdout

    def put(self, local: Path, remote: str) -> None:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        try:
            self._sftp.put(str(local), remote)
        except (FileNotFoundError, PermissionError) as exc:  # the device refused; retrying cannot help
            raise EdgekdError(f"{self.target.label}: cannot write {remote}: {exc.strerror or exc}") from None


def _drain(channel: Any, timeout: float, target: DeviceTarget) -> tuple[bytes, bytes]:
    """Read stdout and stderr together: reading one to the end first can deadlock once the other
    fills the channel window."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    while True:
        while channel.recv_ready():
            out += channel.recv(1 << 16)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(1 << 16)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            return bytes(out), bytes(err)
        if time.monotonic() > deadline:
            raise EdgekdError(f"{target.label}: the remote command ran longer than {timeout:.0f} s")
        select.select([channel], [], [], 0.2)
