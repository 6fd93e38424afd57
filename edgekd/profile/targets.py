"""Which devices to reach: `--device ID --host USER@ADDR[:PORT]` pairs or a fleet YAML file.

Fleet file (one entry per device; `name` defaults to the device id, made unique with -2, -3...):

    devices:
      - {name: pi-desk, device: rpi5, host: 10.0.0.5, user: pi, key_file: ~/.ssh/id_ed25519}
      - {device: jetson-orin-nano, host: nvidia@10.0.0.7:2222}
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgekd.errors import EdgekdError
from edgekd.paths import read_text

DEFAULT_PORT = 22


class DeviceTarget(BaseModel):
    """One device reachable over SSH. `device` is a device id from devices/*.yaml (e.g. rpi5)."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    device: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    user: Optional[str] = None
    key_file: Optional[Path] = None

    @field_validator("key_file")
    @classmethod
    def _expand(cls, value: Optional[Path]) -> Optional[Path]:
        return value.expanduser() if value is not None else None

    @property
    def address(self) -> str:
        """user@host:port as a person would type it, for messages and reports."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{user}{host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})"

    @property
    def is_jetson(self) -> bool:
        return self.device.startswith("jetson")


def parse_host(text: str) -> tuple[Optional[str], str, int]:
    """'pi@10.0.0.5:2222' -> ('pi', '10.0.0.5', 2222); IPv6 as '[::1]:22'. Port defaults to 22."""
    user, sep, rest = text.rpartition("@")
    user = user if sep else None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or (sep and not user):
        raise EdgekdError(f"--host {text!r}: expected USER@ADDRESS[:PORT]")
    if port_text and not port_text.isdigit():
        raise EdgekdError(f"--host {text!r}: the port {port_text!r} is not a number")
    port = int(port_text) if port_text else DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise EdgekdError(f"--host {text!r}: port {port} is out of range (1..65535)")
    return user, host, port


def check_device_id(device: str) -> None:
    """Device ids are the names of devices/*.yaml (edgekd.devices); an unknown id gets a did-you-mean.
    Skipped when no device folder can be found, so an installed package still reaches any device."""
    from edgekd.devices import list_devices
    from edgekd.registry import unknown_name_message

    known = list_devices()
    if known and device not in known:
        raise EdgekdError(unknown_name_message("device", device, known))


def target_from_host(device: str, host: str, *, key_file: Optional[Path] = None) -> DeviceTarget:
    check_device_id(device)
    user, address, port = parse_host(host)
    return DeviceTarget(device=device, host=address, port=port, user=user, key_file=key_file)


def targets_from_cli(
    devices: Sequence[str], hosts: Sequence[str], key_file: Optional[Path] = None
) -> list[DeviceTarget]:
    """Pair the i-th --device with the i-th --host; a count mismatch is refused, not guessed."""
    if len(devices) != len(hosts):
        raise EdgekdError(
            f"give one --host per --device (got {len(devices)} devices, {len(hosts)} hosts); "
            "without a device use `edgekd predict` for a predicted latency"
        )
    return unique_names([target_from_host(d, h, key_file=key_file) for d, h in zip(devices, hosts)])


def load_fleet(path: Path) -> list[DeviceTarget]:
    """Targets from a fleet YAML file; a `host` may carry user and port as USER@ADDR:PORT."""
    import yaml

    text = read_text(path, "fleet file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EdgekdError(f"{path}: cannot read the fleet file: {str(exc).splitlines()[0]}") from None
    entries = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise EdgekdError(f"{path}: expected a top-level `devices:` list of {{name, device, host, ...}}")
    return unique_names([_fleet_entry(path, i, entry) for i, entry in enumerate(entries)])


def _fleet_entry(path: Path, index: int, entry: object) -> DeviceTarget:
    if not isinstance(entry, dict):
        raise EdgekdError(f"{path}: devices[{index}] must be a mapping")
    entry = dict(entry)
    if isinstance(entry.get("host"), str) and ("@" in entry["host"] or ":" in entry["host"]):
        user, entry["host"], port = parse_host(entry["host"])
        entry.setdefault("user", user)
        entry.setdefault("port", port)
    if isinstance(entry.get("key_file"), str) and not entry["key_file"].startswith(("/", "~")):
        entry["key_file"] = str(Path(path).parent / entry["key_file"])  # relative to the fleet file, not the cwd
    if isinstance(entry.get("device"), str):
        check_device_id(entry["device"])
    try:
        return DeviceTarget(**entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EdgekdError(f"{path}: devices[{index}].{where}: {first['msg']}") from None


def unique_names(targets: list[DeviceTarget]) -> list[DeviceTarget]:
    """Name each target (default: its device id) and make names unique, since results are keyed by name."""
    seen: dict[str, int] = {}
    named = []
    for target in targets:
        base = target.name or target.device
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        named.append(target.model_copy(update={"name": name}))
    return named
