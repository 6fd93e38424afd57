"""`edgekd yolo-compare` end to end: one YOLOv8n exported by edgekd and by Ultralytics, both checked against
PyTorch and timed side by side — with every network call of the process refused, as on an offline machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_yolo_extra

require_yolo_extra()

REPO = Path(__file__).resolve().parents[2]
# Runs the CLI with socket connections and name lookups refused and recorded; exit 99 if anything tried.
OFFLINE_CLI = """
import socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled by the test")
socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
from edgekd.cli.app import app
try:
    app(sys.argv[1:], prog_name="edgekd")
except SystemExit as done:
    code = done.code or 0
if attempts:
    print("network attempts: " + "; ".join(attempts), file=sys.stderr)
    code = 99
sys.exit(code)
"""


def test_yolo_compare_exports_both_ways_with_parity_and_timing_offline(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics"),
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    args = ["yolo-compare", "--model", "yolov8n", "--imgsz", "64", "--classes", "5", "--runs", "6", "--warmup", "1",
            "--rounds", "2", "--out", str(out), "--json"]
    result = subprocess.run([sys.executable, "-c", OFFLINE_CLI, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report == json.loads((out / "compare.json").read_text())
    assert report["parity_passed"] and report["ultralytics_version"]
    for side in ("edgekd", "ultralytics"):
        row = report[side]
        assert row["parity_passed"] and row["parity_max_abs_diff"] <= row["parity_budget"] == 1e-3, row
        assert Path(row["path"]).is_file() and row["path"].startswith(str(out / side))
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    assert report["edgekd"]["sha256"] != report["ultralytics"]["sha256"]  # two exporters, two different files
    low, high = report["latency_ratio_p50_interval"]
    assert low <= report["latency_ratio_p50"] <= high
    assert report["latency_ratio_p50"] == pytest.approx(report["edgekd"]["p50_ms"] / report["ultralytics"]["p50_ms"],
                                                        rel=1e-3)
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".")]
    assert not leftovers  # no temp files or export folders left behind
