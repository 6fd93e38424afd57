"""The Jetson TensorRT route through the real SSH server. There is no GPU here, so the device's `trtexec`
is a stand-in script that answers the way trtexec does (summary text, --exportTimes JSON, engine file);
everything else — upload, on-device hash check, quoting, parsing, statistics — is the real code path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.profile import remote
from edgekd.profile.remote import ProfileSettings, profile_remote

pytest.importorskip("edgekd.export.trtexec")

FAKE_TRTEXEC = '''#!{python}
import json, sys
args = dict(a[2:].partition("=")[::2] for a in sys.argv[1:] if a.startswith("--"))
open({log!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
if "loadEngine" in args and not __import__("os").path.exists(args["loadEngine"]):
    sys.exit("engine missing")
if "saveEngine" in args:
    open(args["saveEngine"], "wb").write(b"engine")
runs = int(args.get("iterations", 10))
if "exportTimes" in args:
    times = [{{"count": runs}}] + [{{"latencyMs": 1.0 + i / 100, "computeMs": 0.8}} for i in range(runs)]
    open(args["exportTimes"], "w").write(json.dumps(times))
print("&&&& RUNNING TensorRT.trtexec [TensorRT v8602] # trtexec")
print("[11/30/2026-12:00:00] [I] Selected Device: Orin")
print("[11/30/2026-12:00:00] [I] === Performance summary ===")
print("[11/30/2026-12:00:00] [I] Throughput: 950.5 qps")
print("[11/30/2026-12:00:00] [I] Latency: min = 1.0 ms, max = 1.2 ms, mean = 1.1 ms, median = 1.1 ms, "
      "percentile(90%) = 1.2 ms, percentile(95%) = 1.2 ms, percentile(99%) = 1.2 ms")
print("&&&& PASSED TensorRT.trtexec [TensorRT v8602] # trtexec")
'''


@pytest.fixture
def fake_trtexec(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "trtexec-calls.jsonl"
    script = tmp_path / "bin dir" / "trtexec"
    script.parent.mkdir()
    script.write_text(FAKE_TRTEXEC.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    return script, log


def test_tensorrt_builds_on_the_jetson_and_times_with_trtexec(tiny_onnx, make_target, remote_options,
                                                              fake_trtexec) -> None:
    script, log = fake_trtexec
    options = remote.RemoteOptions(**{**remote_options.__dict__, "trtexec": str(script)})
    result = profile_remote(tiny_onnx, make_target("jetson-orin-nano"),
                            ProfileSettings(runtime="tensorrt", runs=25), options)
    assert (result.mode, result.runtime, result.precision) == ("measured-remote", "tensorrt", "fp32")
    assert result.stats.count == 25 and result.stats.min_ms == pytest.approx(1.0)
    assert result.cold_start_ms > 0 and result.environment["gpu"] == "Orin"
    build, cold = [json.loads(line) for line in log.read_text().splitlines()]
    assert "--onnx=tiny.onnx" in build and "--saveEngine=tiny.fp32.engine" in build
    assert "--shapes=x:1x3x8x8" in build and "--iterations=25" in build
    assert cold[:2] == ["--loadEngine=tiny.fp32.engine", "--shapes=x:1x3x8x8"]


def test_tensorrt_is_refused_on_a_device_that_is_not_a_jetson(tiny_onnx, make_target, remote_options) -> None:
    with pytest.raises(EdgekdError, match="tensorrt runs on Jetson devices; rpi5 is not one"):
        profile_remote(tiny_onnx, make_target("rpi5"), ProfileSettings(runtime="tensorrt"), remote_options)


def test_a_missing_trtexec_is_named(tiny_onnx, make_target, remote_options) -> None:
    with pytest.raises(EdgekdError, match="trtexec is not installed on the device"):
        profile_remote(tiny_onnx, make_target("jetson-nano"), ProfileSettings(runtime="tensorrt"), remote_options)
