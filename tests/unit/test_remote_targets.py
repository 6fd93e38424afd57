"""Device targets, command quoting and the device runner's pure helpers (no SSH needed)."""

from __future__ import annotations

import shlex

import pytest

from edgekd.errors import EdgekdError
from edgekd.device_runner.board import _l4t_release
from edgekd.device_runner.common import RunnerError, resolve_shape
from edgekd.profile.ssh import shell_command
from edgekd.profile.targets import load_fleet, parse_host, targets_from_cli


@pytest.mark.parametrize("text, expected", [
    ("pi@10.0.0.5", ("pi", "10.0.0.5", 22)),
    ("pi@10.0.0.5:2222", ("pi", "10.0.0.5", 2222)),
    ("jetson.local", (None, "jetson.local", 22)),
    ("nvidia@[fe80::1]:2200", ("nvidia", "fe80::1", 2200)),
    ("fe80::1", (None, "fe80::1", 22)),
])
def test_parse_host(text, expected) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize("text", ["@host", "pi@", "pi@host:ssh"])
def test_parse_host_refuses_malformed_addresses(text) -> None:
    with pytest.raises(EdgekdError, match="--host"):
        parse_host(text)


def test_device_and_host_counts_must_match_and_names_are_unique() -> None:
    with pytest.raises(EdgekdError, match="one --host per --device"):
        targets_from_cli(["rpi5", "rpi4"], ["pi@a"])
    names = [t.name for t in targets_from_cli(["rpi5", "rpi5", "rpi4"], ["a", "b", "c"])]
    assert names == ["rpi5", "rpi5-2", "rpi4"]


def test_fleet_file_errors_name_the_entry_and_field(tmp_path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("devices:\n  - {device: rpi5, host: 'pi@10.0.0.5:2200'}\n  - {device: rpi4, hots: x}\n")
    with pytest.raises(EdgekdError, match=r"devices\[1\]\.(host|hots)"):
        load_fleet(fleet)
    fleet.write_text("devices:\n  - {device: rpi5, host: 'pi@10.0.0.5:2200'}\n")
    (target,) = load_fleet(fleet)
    assert (target.name, target.user, target.host, target.port) == ("rpi5", "pi", "10.0.0.5", 2200)


def test_shell_command_quotes_every_argument() -> None:
    hostile = "model; rm -rf ~ $(reboot) `id`.onnx"
    line = shell_command(["python3", "runner.py", "profile", hostile], cwd="/tmp/dir with space")
    assert line == f"cd '/tmp/dir with space' && python3 runner.py profile {shlex.quote(hostile)}"
    assert shlex.split(line.split(" && ", 1)[1])[-1] == hostile


def test_runner_shape_rules() -> None:
    assert resolve_shape(["batch", 3, 64, 64], None) == [1, 3, 64, 64]
    assert resolve_shape([None, 3, 64, 64], [2, 3, 64, 64]) == [2, 3, 64, 64]
    with pytest.raises(RunnerError, match="dynamic sizes"):
        resolve_shape([1, 3, "h", "w"], None)
    with pytest.raises(RunnerError, match="takes input shape"):
        resolve_shape([1, 3, 64, 64], [1, 3, 32, 32])


def test_l4t_release_from_nv_tegra_release() -> None:
    text = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n"
    assert _l4t_release(text) == "36.4.3"
    assert _l4t_release("") is None


def test_unknown_device_ids_get_a_suggestion() -> None:
    with pytest.raises(EdgekdError, match="rpi5"):
        targets_from_cli(["rpi-5"], ["pi@10.0.0.5"])
