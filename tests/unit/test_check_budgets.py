"""Gate budgets per backend/precision/device, deployment rows, size budgets and the CI outputs (Markdown, JSON,
JUnit) of `edgekd check`, through the API and the real CLI."""

import json
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import run_cli
from edgekd.errors import EdgekdError
from edgekd.report.budgets import load_budgets
from edgekd.report.compare import compare_reports
from edgekd.report.gate_output import to_json, to_junit, to_markdown, verdict_line
from edgekd.report.schema import DeploymentEntry, Report
from test_compare import latency, report

MB = 1_000_000


def deployment(precision: str = "int8", metric: float = 2.0, size: int = MB, status: str = "passed",
               p50: float = 2.0, device: str | None = None) -> DeploymentEntry:
    timed = latency(p50)
    if device:
        timed["environment"] = {**timed["environment"], "device": device}
    return DeploymentEntry.model_validate({
        "role": "student", "variant": "qat" if precision == "int8" else "float", "backend": "onnx",
        "runtime": "onnxruntime", "precision": precision, "status": status, "size_bytes": size, "metric": metric,
        "latency": timed,
    })


def with_deployments(*entries: DeploymentEntry, **changes) -> Report:
    rep = report(**changes)
    rep.deployments = list(entries)
    return rep


def gate(current: Report, baseline: Report, rules=(), **budgets):
    budgets = {"max_metric_drop": 0.1, "max_latency_ratio": 1.2, **budgets}
    return compare_reports(current, baseline, rules=rules, **budgets)


def failed(comparison) -> list[tuple[str, str]]:
    return [(row.label, row.quantity) for row in comparison.rows if not row.ok]


def rules_from(tmp_path, text: str, name: str = "budgets.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_budgets(path)


def test_deployment_rows_compare_metric_latency_and_missing_files() -> None:
    base = with_deployments(deployment("fp32"), deployment("int8"))
    comparison = gate(with_deployments(deployment("fp32", metric=2.5), deployment("int8", p50=3.0)), base)
    assert failed(comparison) == [("student (float/onnx/fp32)", "err"),
                                  ("student (qat/onnx/int8)", "p50 latency, onnxruntime (ms)")]
    assert failed(gate(with_deployments(deployment("fp32")), base)) == [("student (qat/onnx/int8)", "deployment")]
    assert not gate(with_deployments(deployment("fp32"), deployment("int8"), deployment("fp16")), base).failed


def test_a_deployment_that_stopped_passing_fails() -> None:
    comparison = gate(with_deployments(deployment(status="failed")), with_deployments(deployment()))
    assert failed(comparison) == [("student (qat/onnx/int8)", "status")]


def test_rules_override_per_backend_precision_and_device(tmp_path) -> None:
    rules = rules_from(tmp_path, "rules:\n"
                       "  - match: {backend: onnx, precision: int8}\n    max_metric_drop: 0.6\n"
                       "  - match: {device: rpi5}\n    max_latency_ratio: 2.0\n")
    base = with_deployments(deployment("int8"), deployment("fp32"))
    worse_int8 = with_deployments(deployment("int8", metric=2.5), deployment("fp32"))
    assert gate(worse_int8, base).failed  # the global 0.1 budget
    assert not gate(worse_int8, base, rules).failed  # int8 may lose 0.6
    assert gate(with_deployments(deployment("int8"), deployment("fp32", metric=2.5)), base, rules).failed
    on_pi = with_deployments(deployment("int8", p50=3.0, device="rpi5"), deployment("fp32"))
    assert gate(on_pi, base).failed and not gate(on_pi, base, rules).failed


def test_later_rules_win_and_empty_match_is_everything(tmp_path) -> None:
    rules = rules_from(tmp_path, '{"rules": [{"max_metric_drop": 0.6}, {"match": {"role": "student"}, '
                                 '"max_metric_drop": 0.0}]}', "budgets.json")
    comparison = gate(report({"general": 2.3, "personalized": 1.5}), report(), rules)
    assert failed(comparison) == [("student", "err (general)")]


def test_size_budgets_ratio_and_absolute(tmp_path) -> None:
    base = with_deployments(deployment(size=MB))
    bigger = with_deployments(deployment(size=int(1.2 * MB)))
    assert not any(row.kind == "size" for row in gate(bigger, base).rows)  # no size budget, no size rows
    assert ("student (qat/onnx/int8)", "file size (MB)") in failed(gate(bigger, base, max_size_ratio=1.1))
    assert not gate(bigger, base, max_size_ratio=1.25).failed
    rules = rules_from(tmp_path, "rules:\n  - match: {precision: int8}\n    max_size_mb: 1.1\n")
    assert failed(gate(bigger, base, rules)) == [("student (qat/onnx/int8)", "file size (MB)")]
    models = gate(report(), report(), max_size_mb=0.0005)  # the test models are 1000 bytes
    assert [row.ok for row in models.rows if row.kind == "size"] == [False, False]


@pytest.mark.parametrize("text, message", [
    ("rules:\n  - max_metric_dorp: 0.1\n", "rules[0]: unknown key 'max_metric_dorp' (did you mean 'max_metric_drop'?)"),
    ("rules:\n  - match: {precison: int8}\n", "rules[0].match: unknown key 'precison' (did you mean 'precision'?)"),
    ("rule: []\n", "unknown key 'rule' (did you mean 'rules'?)"),
    ("rules:\n  - max_latency_ratio: -1\n", "rules[0].max_latency_ratio: Input should be greater than 0"),
    ("rules: [\n", "not valid YAML"),
])
def test_bad_budgets_file_is_one_line(tmp_path, text: str, message: str) -> None:
    with pytest.raises(EdgekdError) as error:
        rules_from(tmp_path, text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_outputs_markdown_junit_and_strict_json() -> None:
    comparison = gate(report({"general": float("nan"), "personalized": 1.5}, p50=3.0), report())
    markdown = to_markdown(comparison)
    assert markdown.startswith("### edgekd check: ❌ 4 regressions")
    assert "**Regressions**" in markdown and "<details>" in markdown
    suite = ET.fromstring(to_junit(comparison)).find("testsuite")
    assert len(suite.findall("testcase")) == len(comparison.rows) == int(suite.get("tests"))
    assert len(suite.findall("testcase/failure")) == 4 == int(suite.get("failures"))
    data = json.loads(to_json(comparison), parse_constant=pytest.fail)  # NaN is not JSON: written as null
    assert data["failed"] is True and data["rows"][0]["current"] is None
    line = verdict_line(comparison)
    assert line.startswith("4 regressions beyond budget: teacher: ") and line.endswith("; and 1 more")


def write_reports(tmp_path, current: Report, baseline: Report):
    paths = tmp_path / "report.json", tmp_path / "base.json"
    for path, rep in zip(paths, (current, baseline)):
        path.write_text(rep.model_dump_json())
    return paths


def test_cli_writes_every_output_and_exits_1_on_regression(tmp_path) -> None:
    current, base = write_reports(tmp_path, report(p50=3.0, cpu="A much longer CPU name " * 8), report())
    outputs = ["--markdown", str(tmp_path / "g/gate.md"), "--junit", str(tmp_path / "g/gate.xml"),
               "--json-out", str(tmp_path / "g/gate.json")]
    result = run_cli("check", str(current), "--baseline", str(base), "--json", *outputs)
    assert result.returncode == 1, result.stderr
    printed = json.loads(result.stdout)  # long notes are not wrapped into broken JSON
    assert printed == json.loads((tmp_path / "g/gate.json").read_text())
    assert printed["failed"] and "regressions" in (tmp_path / "g/gate.md").read_text()
    assert ET.parse(tmp_path / "g/gate.xml").getroot().tag == "testsuites"
    verdict = result.stderr.strip()  # one line beside the JSON on stdout, naming what regressed
    assert verdict.count("\n") == 0 and "2 regressions beyond budget" in verdict, verdict
    assert "p50 latency, onnxruntime" in verdict and "budget ≤ 1.2×" in verdict


def test_cli_passing_gate_prints_nothing_on_stderr(tmp_path) -> None:
    current, base = write_reports(tmp_path, report(), report())
    result = run_cli("check", str(current), "--baseline", str(base))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "edgekd check" in result.stdout


def test_cli_unknown_budget_key_exits_2_with_one_line(tmp_path) -> None:
    current, base = write_reports(tmp_path, report(), report())
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("rules:\n  - max_latency: 1.5\n")
    result = run_cli("check", str(current), "--baseline", str(base), "--budgets", str(budgets))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown key 'max_latency'" in result.stderr


def test_the_documented_budgets_file_loads() -> None:
    from tests.conftest import REPO

    rules = load_budgets(REPO / "docs" / "ci" / "budgets.yaml")
    assert len(rules) == 5 and rules[0].match.precision == "int8"


def test_the_workflow_in_the_docs_is_the_shipped_file() -> None:
    from tests.conftest import REPO

    shipped = (REPO / "docs" / "ci" / "edgekd.yml").read_text()
    workflow = shipped[shipped.index("name: edgekd gate"):]
    assert f"```yaml\n{workflow}```" in (REPO / "docs" / "ci.md").read_text()
