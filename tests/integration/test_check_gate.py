"""Acceptance of the noise-aware gate on real measurements (issue #4):

"`edgekd check` on two reports of the same unchanged model (re-profiled) passes 20 times out of 20; on a model
made 30% slower it fails."

Real ONNX models, really timed with ONNX Runtime; nothing here fakes a sample. Each pair is profiled with
`profile_side_by_side` (fresh sessions, interleaved rounds), the measurement the docs recommend for a gate on a
shared machine: drift of the host between two separate measurements is not noise the gate can see.
"""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from edgekd.profile.local import ProfileResult, profile_side_by_side
from edgekd.report.compare import compare_reports
from edgekd.report.schema import DeploymentEntry, Report
from unit.test_report import make_report  # tests/ is on sys.path (conftest); unit/ is a namespace package

pytestmark = pytest.mark.slow

WIDTH, ROWS = 256, 64  # a 64x256 activation through 256x256 MatMuls: ~0.3 ms a run for 4 layers on one core
RUNS, PAIRS = 200, 20


def mlp(path: Path, layers: int) -> Path:
    """A MatMul+Relu stack; more layers is proportionally more work, so the slow model is really slower."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, previous = [], [], "x"
    for i in range(layers):
        scaled = rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)  # keeps activations O(1) through the stack
        weights.append(numpy_helper.from_array(scaled.astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        previous = f"r{i}"
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [ROWS, WIDTH]) for name in ("x", previous)]
    model = helper.make_model(helper.make_graph(nodes, "mlp", io[:1], io[1:], weights),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # an IR version every supported ONNX Runtime reads
    onnx.save(model, path)
    return path


def measure(baseline: Path, current: Path) -> tuple[ProfileResult, ProfileResult]:
    results = profile_side_by_side({"baseline": baseline, "current": current}, input_shape=[ROWS, WIDTH],
                                   threads=1, warmup=20, runs=RUNS)
    return results["current"], results["baseline"]


def report_for(result: ProfileResult) -> Report:
    """The unit tests' report with this measurement as the student's latency, as a model and as a deployed file."""
    report = make_report()
    student = report.model("student")
    student.latency = {"onnxruntime": result}
    report.models = [student]
    report.deployments = [DeploymentEntry(role="student", variant="float", backend="onnx", runtime="onnxruntime",
                                          precision="fp32", status="passed", size_bytes=1000, metric=2.1,
                                          latency=result)]
    return report


def gate(current: ProfileResult, baseline: ProfileResult):
    return compare_reports(report_for(current), report_for(baseline), max_metric_drop=0.0, max_latency_ratio=1.2)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gate-models")
    return {"same": mlp(folder / "mlp4.onnx", 4), "slow": mlp(folder / "mlp6.onnx", 6)}


def test_unchanged_model_reprofiled_passes_20_of_20(models) -> None:
    verdicts = []
    for _ in range(PAIRS):
        comparison = gate(*measure(models["same"], models["same"]))
        latency = [row for row in comparison.rows if row.kind == "latency"]
        assert len(latency) == 2 and all(row.interval is not None for row in latency)  # the noise-aware path
        verdicts.append(comparison.failed)
    assert verdicts == [False] * PAIRS


def test_model_made_30_percent_slower_fails(models, tmp_path) -> None:
    current, baseline = measure(models["same"], models["slow"])
    assert current.stats.p50_ms / baseline.stats.p50_ms >= 1.3  # it really is slower; else enlarge the model
    comparison = gate(current, baseline)
    assert [row.kind for row in comparison.rows if not row.ok] == ["latency", "latency"]
    report, base = tmp_path / "report.json", tmp_path / "base.json"
    report.write_text(report_for(current).model_dump_json())
    base.write_text(report_for(baseline).model_dump_json())
    cli = run_cli("check", str(report), "--baseline", str(base), "--junit", str(tmp_path / "gate.xml"))
    assert cli.returncode == 1, cli.stderr
    assert (tmp_path / "gate.xml").read_text().count("<failure") == 2
    assert "2 regressions beyond budget: " in cli.stderr and cli.stderr.count("\n") == 1
