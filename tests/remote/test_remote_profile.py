"""Remote profiling through a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import pytest

from edgekd.errors import EdgekdError
from edgekd.profile import remote
from edgekd.profile.local import ProfileResult
from edgekd.profile.remote import ProfileSettings, profile_fleet, profile_remote

FAST = ProfileSettings(threads=1, warmup=2, runs=20)


def test_profile_over_ssh_returns_a_measured_remote_result(tiny_onnx, make_target, remote_options) -> None:
    result = profile_remote(tiny_onnx, make_target("rpi5"), FAST, remote_options)
    assert isinstance(result, ProfileResult)
    assert result.mode == "measured-remote" and result.runtime == "onnxruntime"
    assert result.stats.count == 20 and 0 < result.stats.p50_ms <= result.stats.p99_ms
    assert result.input_shape == [1, 3, 8, 8] and result.threads == 1
    assert result.environment["device"] == "rpi5" and result.environment["cpu"]
    assert "onnxruntime" in result.environment["packages"]


def test_an_openvino_ir_without_its_bin_is_refused_before_connecting(tmp_path, make_target, remote_options) -> None:
    (tmp_path / "model.xml").write_text("<net/>")
    with pytest.raises(EdgekdError, match="model.bin must be beside it"):
        profile_remote(tmp_path / "model.xml", make_target(), FAST, remote_options)


def test_a_changed_host_key_is_refused(tiny_onnx, make_target, remote_options, sshd_server, tmp_path) -> None:
    from tests.remote.sshd_fixture import _keygen, write_known_hosts

    other = _keygen(tmp_path / "other_host_key")
    known = write_known_hosts(tmp_path / "known_hosts", sshd_server.port, other.with_suffix(".pub"))
    options = remote.RemoteOptions(**{**remote_options.__dict__, "known_hosts": known})
    with pytest.raises(EdgekdError, match="does not match .*man-in-the-middle"):
        profile_remote(tiny_onnx, make_target(), FAST, options)


def test_an_unknown_host_is_refused_unless_accepting_new_hosts_was_asked(
    tiny_onnx, make_target, remote_options, tmp_path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    warnings: list[str] = []
    strict = remote.RemoteOptions(**{**remote_options.__dict__, "known_hosts": known})
    with pytest.raises(EdgekdError, match="is not in .*insecure-accept-new-host"):
        profile_remote(tiny_onnx, make_target(), FAST, strict)
    assert known.read_text() == ""
    trusting = remote.RemoteOptions(**{**strict.__dict__, "accept_new_host": True, "warn": warnings.append})
    assert profile_remote(tiny_onnx, make_target(), FAST, trusting).mode == "measured-remote"
    assert "accepted NEW host key" in warnings[0] and "ssh-ed25519" in known.read_text()
    profile_remote(tiny_onnx, make_target(), FAST, strict)  # the recorded key now passes the strict check


def test_a_file_changed_on_the_device_is_refused(tiny_onnx, make_target, remote_options, monkeypatch) -> None:
    original = remote.upload

    def upload_then_corrupt(session, files, remote_dir):
        original(session, files, remote_dir)
        session.check(["sh", "-c", 'printf x >> "$1"', "sh", f"{remote_dir}/{tiny_onnx.name}"])

    monkeypatch.setattr(remote, "upload", upload_then_corrupt)
    with pytest.raises(EdgekdError, match=r"refusing to run: sha256 mismatch for tiny.onnx"):
        profile_remote(tiny_onnx, make_target(), FAST, remote_options)


def test_a_connection_that_keeps_dropping_fails_after_the_retries(
    tiny_onnx, make_target, remote_options, dropping_server
) -> None:
    target = make_target("jetson-nano", port=dropping_server.port)
    with pytest.raises(EdgekdError) as caught:
        profile_remote(tiny_onnx, target, FAST, remote_options)
    message = str(caught.value)
    assert f"127.0.0.1:{dropping_server.port}" in message and "failed after 3 attempts" in message
    assert "\n" not in message and dropping_server.accepted == 3


def test_a_connection_dropped_mid_run_is_retried(tiny_onnx, make_target, remote_options, monkeypatch) -> None:
    original, calls = remote.upload, []

    def drop_first_time(session, files, remote_dir):
        calls.append(remote_dir)
        if len(calls) == 1:
            session.client.get_transport().close()
        original(session, files, remote_dir)

    monkeypatch.setattr(remote, "upload", drop_first_time)
    assert profile_remote(tiny_onnx, make_target(), FAST, remote_options).stats.count == 20
    assert len(calls) == 2


def test_three_devices_are_profiled_concurrently(tiny_onnx, make_target, remote_options) -> None:
    from edgekd.profile.targets import unique_names

    targets = unique_names([make_target("rpi5"), make_target("jetson-orin-nano"), make_target("rpi5")])
    outcomes = profile_fleet(tiny_onnx, targets, FAST, remote_options)
    assert [o.target.name for o in outcomes] == ["rpi5", "jetson-orin-nano", "rpi5-2"]
    assert all(o.error is None and o.result.mode == "measured-remote" for o in outcomes), outcomes
    assert {o.result.environment["name"] for o in outcomes} == {"rpi5", "jetson-orin-nano", "rpi5-2"}


def test_a_missing_device_python_is_named(tiny_onnx, make_target, remote_options) -> None:
    options = remote.RemoteOptions(**{**remote_options.__dict__, "python": "/nonexistent/python3"})
    with pytest.raises(EdgekdError, match="'/nonexistent/python3' was not found on the device"):
        profile_remote(tiny_onnx, make_target(), FAST, options)


def test_cli_profiles_a_fleet_file_and_device_pairs_together(tiny_onnx, sshd_server, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from edgekd.cli.app import app

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "devices:\n"
        f"  - {{name: desk-pi, device: rpi4, host: 127.0.0.1, port: {sshd_server.port}, user: {sshd_server.user},"
        f" key_file: {sshd_server.key_file}}}\n"
    )
    args = ["profile", str(tiny_onnx), "--device", "jetson-orin-nano", "--host", sshd_server.address,
            "--fleet", str(fleet), "--known-hosts", str(sshd_server.known_hosts), "--identity",
            str(sshd_server.key_file), "--remote-python", sshd_server.python, "--threads", "1", "--warmup", "1",
            "--runs", "5", "--json", "--output", str(tmp_path / "out" / "profile.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["name"], r["device"], r["ok"]) for r in rows] == [("jetson-orin-nano", "jetson-orin-nano", True),
                                                                 ("desk-pi", "rpi4", True)]
    assert all(r["result"]["mode"] == "measured-remote" and r["result"]["stats"]["count"] == 5 for r in rows)
    assert json.loads((tmp_path / "out" / "profile.json").read_text()) == rows


def test_cli_reports_the_failed_device_and_exits_2(tiny_onnx, sshd_server, dropping_server) -> None:
    from typer.testing import CliRunner

    from edgekd.cli.app import app

    args = ["profile", str(tiny_onnx), "--device", "rpi5", "--host", sshd_server.address,
            "--device", "rpi5", "--host", f"{sshd_server.user}@127.0.0.1:{dropping_server.port}",
            "--known-hosts", str(sshd_server.known_hosts), "--identity", str(sshd_server.key_file),
            "--remote-python", sshd_server.python, "--threads", "1", "--runs", "5", "--attempts", "1"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    assert "measured-remote" in result.stdout and "connection failed after 1 attempts" in result.stdout
    assert "1 of 2 devices failed: rpi5-2" in result.stderr
