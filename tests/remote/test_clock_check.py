"""A device measurement says whether it can be trusted: fake `vcgencmd`, `tegrastats` and `nvpmodel` programs on the
"device" (the local sshd) report throttling and clocks, the runner records them before and after timing, and edgekd
flags the run. The judge itself is also fed records directly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edgekd.profile.clock_check import judge, nominal_mhz, summary
from edgekd.profile.remote import ProfileSettings, profile_remote
from edgekd.device_runner.board import parse_tegrastats
from tests.conftest import run_cli

FAST = ProfileSettings(threads=1, warmup=2, runs=10)
TEGRASTATS = ("RAM 2102/7620MB (lfb 4x4MB) CPU [12%@{mhz},off,8%@{mhz},3%@{mhz}] EMC_FREQ 0% GR3D_FREQ 0%@[305] "
              "cpu@47.2C soc2@45.5C tj@48.1C")


def _program(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _device_with(tmp_path: Path, remote_options, **programs: str):
    """RemoteOptions whose device Python sees fake board programs first on its PATH."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, body in programs.items():
        _program(bin_dir, name, body)
    wrapper = tmp_path / "device-python"
    wrapper.write_text(f'#!/bin/sh\nPATH="{bin_dir}:$PATH" exec "{remote_options.python}" "$@"\n')
    wrapper.chmod(0o755)
    return dataclasses.replace(remote_options, python=str(wrapper))


def _vcgencmd(state: Path, throttled_before: str, throttled_after: str, arm_hz: int) -> str:
    """get_throttled answers `throttled_before` on its first call and `throttled_after` on later ones."""
    return (f'case "$1" in\n'
            f'  get_throttled) if [ -e "{state}" ]; then echo "throttled={throttled_after}"; '
            f'else touch "{state}"; echo "throttled={throttled_before}"; fi ;;\n'
            f'  measure_clock) echo "frequency(0)={arm_hz}" ;;\n'
            f'  measure_temp) echo "temp=61.3\'C" ;;\n'
            f'  get_config) echo "arm_freq=2400" ;;\n'
            f'esac\n')


def test_a_pi_that_throttled_during_the_timed_runs_is_flagged(tiny_onnx, make_target, remote_options,
                                                               tmp_path) -> None:
    options = _device_with(tmp_path, remote_options,
                           vcgencmd=_vcgencmd(tmp_path / "called", "0x0", "0x50005", 2_400_000_000))
    result = profile_remote(tiny_onnx, make_target("rpi5"), FAST, options)
    check = result.environment["clock_check"]
    assert check["before"]["pi"] == {"throttled": 0, "arm_mhz": 2400, "temp_c": 61.3, "arm_freq_config_mhz": 2400}
    assert check["after"]["pi"]["throttled"] == 0x50005
    assert not check["trusted"]
    assert "under-voltage after timing (vcgencmd get_throttled 0x50005)" in check["flags"]
    assert "throttled after timing (vcgencmd get_throttled 0x50005)" in check["flags"]
    assert "throttled during the timed runs" in check["flags"]
    assert summary(check).startswith("UNTRUSTED: under-voltage")


def test_a_healthy_pi_at_its_clock_is_trusted(tiny_onnx, make_target, remote_options, tmp_path) -> None:
    options = _device_with(tmp_path, remote_options,
                           vcgencmd=_vcgencmd(tmp_path / "called", "0x0", "0x0", 2_400_000_000))
    check = profile_remote(tiny_onnx, make_target("rpi5"), FAST, options).environment["clock_check"]
    assert check["trusted"] and check["flags"] == [] and check["clock_mhz"] == 2400 and check["nominal_mhz"] == 2400


def test_a_pi_below_its_nominal_clock_is_flagged_in_the_cli_table_and_json(tiny_onnx, make_target, remote_options,
                                                                            sshd_server, tmp_path) -> None:
    options = _device_with(tmp_path, remote_options,
                           vcgencmd=_vcgencmd(tmp_path / "called", "0x0", "0x0", 1_500_000_000))
    host = f"{sshd_server.user}@127.0.0.1:{sshd_server.port}"
    common = ["profile", str(tiny_onnx), "--device", "rpi5", "--host", host, "-i", str(sshd_server.key_file),
              "--known-hosts", str(sshd_server.known_hosts), "--remote-python", options.python,
              "--runs", "10", "--warmup", "1", "--threads", "1"]
    table = run_cli(*common, env={"COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    assert "UNTRUSTED: ran at 1500 MHz, below the nominal 2400 MHz" in table.stdout
    (row,) = json.loads(run_cli(*common, "--json").stdout)
    assert row["result"]["environment"]["clock_check"]["flags"] == ["ran at 1500 MHz, below the nominal 2400 MHz"]


def test_a_jetson_records_its_power_mode_clocks_and_temperatures(tiny_onnx, make_target, remote_options,
                                                                 tmp_path) -> None:
    options = _device_with(tmp_path, remote_options,
                           tegrastats=f'echo "{TEGRASTATS.format(mhz=729)}"\nsleep 30\n',
                           nvpmodel='echo "NV Power Mode: 15W"\necho 0\n')
    check = profile_remote(tiny_onnx, make_target("jetson-orin-nano"), FAST, options).environment["clock_check"]
    jetson = check["after"]["jetson"]
    assert jetson["power_mode"] == "NV Power Mode: 15W 0" and jetson["cpu_mhz"] == [729, 729, 729]
    assert jetson["gpu_mhz"] == 305 and jetson["temps_c"] == {"cpu": 47.2, "soc2": 45.5, "tj": 48.1}
    if check["after"]["cpu_mhz"] is None:  # no cpufreq on this host: tegrastats' clock is the one judged
        assert check["flags"] == ["ran at 729 MHz, below the nominal 1500 MHz"]


def test_a_tegrastats_that_prints_nothing_does_not_hang_the_runner(tmp_path, monkeypatch) -> None:
    import time

    from edgekd.device_runner import board

    _program(tmp_path, "tegrastats", "sleep 60\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    start = time.monotonic()
    assert board._tegrastats_line() == ""
    assert time.monotonic() - start < 15


# ------------------------------------------------------------------ the judge on records

def test_the_judge_passes_a_clean_record_and_fails_each_kind_of_bad_one() -> None:
    clean = {"before": {"pi": {"throttled": 0, "arm_mhz": 1500}}, "after": {"pi": {"throttled": 0, "arm_mhz": 2400}}}
    assert judge(clean, 2400)["trusted"]
    capped = {"before": clean["before"], "after": {"pi": {"throttled": 0x2, "arm_mhz": 2400}}}
    assert judge(capped, 2400)["flags"] == ["ARM clock capped after timing (vcgencmd get_throttled 0x2)"]
    earlier = {"before": {"pi": {"throttled": 0x40000, "arm_mhz": 2400}},
               "after": {"pi": {"throttled": 0x40000, "arm_mhz": 2400}}}
    verdict = judge(earlier, 2400)
    assert verdict["trusted"] and "already occurred since boot" in verdict["notes"][0]  # not during this run
    slow = {"before": {}, "after": {"cpu_mhz": 2000}}
    assert not judge(slow, 2400)["trusted"] and judge(slow, None)["trusted"]
    # an early Pi 4 configured for 1500 MHz is at its own nominal clock, whatever the catalogue's maximum
    own = {"before": {}, "after": {"pi": {"throttled": 0, "arm_mhz": 1500, "arm_freq_config_mhz": 1500}}}
    assert judge(own, 1800)["trusted"]
    assert judge(None, 2400) | {} and judge(None, 2400)["recorded"] is False


def test_parse_tegrastats_reads_cores_gpu_and_temperatures() -> None:
    facts = parse_tegrastats(TEGRASTATS.format(mhz=1510))
    assert facts == {"cpu_mhz": [1510, 1510, 1510], "gpu_mhz": 305,
                     "temps_c": {"cpu": 47.2, "soc2": 45.5, "tj": 48.1}}
    assert parse_tegrastats("") == {}


@pytest.mark.parametrize(("device", "mode", "mhz"), [
    ("rpi5", None, 2400), ("jetson-orin-nano", "NV Power Mode: 7W 1", 960), ("jetson-orin-nano", None, 1500),
    ("no-such-board", None, None)])
def test_the_nominal_clock_follows_the_power_mode(device, mode, mhz) -> None:
    assert nominal_mhz(device, mode) == mhz
