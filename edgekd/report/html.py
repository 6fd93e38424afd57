"""report.html: the whole report as one self-contained page (inline CSS and SVG plots, nothing fetched).

Every text that comes from the report goes through `html.escape`: recipe names, notes and reasons are user data.

>>> Path("report.html").write_text(to_html(report))
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable, Sequence

from edgekd.report.render import (
    _bytes,
    _count,
    _num,
    _outcome,
    _outcome_specs,
    abs_diff_cell,
    environment_line,
    kernel_cell,
    made_here,
    precision_cell,
    outcome_label,
    paren,
    ratio_line,
)
from edgekd.report.schema import DeploymentEntry, Report

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.5rem 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;white-space:nowrap}
th{background:#f6f8fa;white-space:normal}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#ffebe9}td.reason{font-size:11px;min-width:14rem;white-space:normal}tr.predicted td{color:#444;font-style:italic}
.tag{display:inline-block;border-radius:3px;padding:0 4px;font-size:11px;border:1px solid #8c959f}
.tag.predicted{border-style:dashed}.muted{color:#57606a}.summary{font-weight:600}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}figcaption{color:#57606a;font-size:12px}
code{background:#f6f8fa;padding:0 3px}
"""

Cell = str | tuple[str, str]  # text, or (text, css class)


def to_html(report: Report) -> str:
    """The report as a standalone HTML document."""
    title = f"edgekd report — {report.recipe} ({report.task})"
    body = "\n".join(section(report) for section in SECTIONS)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n"
            f"{body}\n</body></html>\n")


def table(header: Sequence[str], rows: Sequence[Sequence[Cell]], row_classes: Sequence[str] = (),
          numeric_from: int = 1) -> str:
    """An escaped HTML table; cells from column `numeric_from` on are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = [f"<tr>{head}</tr>"]
    for index, row in enumerate(rows):
        css = row_classes[index] if index < len(row_classes) else ""
        cells = "".join(_cell(cell, i >= numeric_from) for i, cell in enumerate(row))
        lines.append(f'<tr class="{escape(css)}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return '<div class="scroll"><table>\n' + "\n".join(lines) + "\n</table></div>"


def _cell(cell: Cell, numeric: bool) -> str:
    text, css = cell if isinstance(cell, tuple) else (cell, "num" if numeric else "")
    return f'<td class="{escape(css)}">{escape(text)}</td>' if css else f"<td>{escape(text)}</td>"


def _section(title: str, content: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{content}\n</section>'


def _paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{escape(text)}</p>' if css else f"<p>{escape(text)}</p>"


def header_section(report: Report) -> str:
    meta = (f"Created {report.created} by edgekd {report.edgekd_version}; config {report.config_hash[:12]}; "
            f"report schema {report.schema_version}.")
    line = ratio_line(report)
    return _paragraph(meta, "muted") + (_paragraph(line, "summary") if line else "")


# --- teacher vs student vs int8 ---------------------------------------------------------------------------------

def models_section(report: Report) -> str:
    if not report.models:
        return _section("Models", _paragraph("no models recorded"), "models")
    columns = _model_columns(report)
    rows = [(name, [cell(c) for c in columns]) for name, cell in _model_rows(report, columns)]
    note = ("The int8 column is the QAT student exported with Q/DQ: same network as the student, so parameters and "
            "MACs repeat. Latency cells say how they were obtained (measured-local: timed on this host).")
    return _section("Teacher vs student vs int8", table(["", *(c["name"] for c in columns)],
                                                        [[n, *cells] for n, cells in rows]) + _paragraph(note, "muted"),
                    "models")


def _model_columns(report: Report) -> list[dict[str, Any]]:
    columns = [{"name": m.role, "model": m, "files": _files(report, m.role, "float", "fp32"), "int8": False}
               for m in report.models]
    int8 = _files(report, "student", "qat", "int8")
    student = report.model("student")
    if int8 and student is not None:
        columns.append({"name": "student int8 (QAT)", "model": student, "files": int8, "int8": True})
    return columns


def _files(report: Report, role: str, variant: str, precision: str) -> list[DeploymentEntry]:
    found = [d for d in report.deployments if (d.role, d.variant, d.precision) == (role, variant, precision)]
    return sorted(found, key=lambda d: d.backend != "onnx")  # the ONNX file first: it is the source of the rest


def _model_rows(report: Report, columns: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict], str]]]:
    spec = report.metric
    better = "lower" if spec.lower_is_better else "higher"
    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("architecture", lambda c: c["model"].arch),
        ("parameters", lambda c: _count(c["model"].parameters)),
        ("MACs", lambda c: _count(c["model"].macs)),
        ("file size (ONNX)", lambda c: _bytes(c["files"][0].size_bytes) if c["files"] and c["files"][0].size_bytes
         else _bytes(c["model"].file_size_bytes)),
    ]
    for variant in sorted({k for m in report.models for k in m.metrics}):
        rows.append((f"{spec.name}, {variant}" + paren(spec.unit, f"{better} is better"),
                     lambda c, v=variant: "-" if c["int8"] else _num(c["model"].metrics.get(v))))
    for name, outcome in _outcome_specs(report).items():
        rows.append((outcome_label(name, outcome),
                     lambda c, n=name: "-" if c["int8"] else _num(_outcome(c["model"], n))))
    rows.append((f"{spec.name} of the exported file, parity set" + paren(spec.unit),
                 lambda c: _num(c["files"][0].metric) if c["files"] else "-"))
    for runtime in sorted({r for c in columns for r in _latencies(c)}):
        rows.append((f"latency p50, {runtime} (ms)", lambda c, r=runtime: _latency_cell(_latencies(c).get(r))))
    return rows


def _latencies(column: dict[str, Any]) -> dict[str, Any]:
    if column["int8"]:
        return {f.runtime: f.latency for f in column["files"] if f.latency is not None}
    return dict(column["model"].latency)


def _latency_cell(result: Any) -> str:
    return "-" if result is None else f"{result.stats.p50_ms:.3f} ({latency_source(result)})"


def latency_source(result: Any) -> str:
    """The measurement mode, and why not to trust it when the device throttled or ran below its clock."""
    from edgekd.profile.clock_check import summary

    untrusted = summary(result.environment.get("clock_check"))
    return result.mode + (f", {untrusted}" if untrusted else "")


# --- deployments, deploy choice ---------------------------------------------------------------------------------

def deployments_section(report: Report) -> str:
    if not report.deployments:
        return ""
    spec = report.metric
    header = ["model", "variant", "backend", "runtime", "precision", "status", f"{spec.name}{paren(spec.unit)}",
              "Δ vs float PyTorch", "size", "int8 kernels", "p50 (ms)", "p90 (ms)", "vs fp32", "latency source"]
    rows = [_deployment_row(e) for e in report.deployments]
    classes = ["" if e.status in ("passed", "bundle", "built", "skipped") else "bad" for e in report.deployments]
    note = ("One row per exported file. 'vs fp32': p50 of the same model's fp32 file on the same runtime divided by "
            "this file's p50 (> 1: faster), timed side by side. PTQ rows are the calibration-only baseline "
            "(not timed). 'int8 kernels': convs ONNX Runtime runs as int8 kernels out of those QAT quantized.")
    content = table(header, rows, classes, numeric_from=6) + _paragraph(note, "muted")
    return _section("Deployments", content, "deployments")


def _deployment_row(e: DeploymentEntry) -> list[Cell]:
    stats = e.latency.stats if e.latency else None
    status = e.status + (f": {e.reason}" if e.reason else "")
    return [e.role, e.variant, e.backend, e.runtime, precision_cell(e), (status, "reason"), _num(e.metric),
            "-" if e.metric_delta_vs_float is None else f"{e.metric_delta_vs_float:+.3f}",
            "-" if e.size_bytes is None else _bytes(e.size_bytes), kernel_cell(e),
            "-" if stats is None else f"{stats.p50_ms:.3f}", "-" if stats is None else f"{stats.p90_ms:.3f}",
            "-" if e.speedup_vs_fp32 is None else f"{e.speedup_vs_fp32:.2f}×",
            ("-" if e.latency is None else latency_source(e.latency), "")]


def deploy_section(report: Report) -> str:
    if not report.deploy:
        return ""
    rows = [[runtime, choice.precision or "none", (choice.reason, "reason")]
            for runtime, choice in report.deploy.items()]
    content = table(["runtime", "precision", "why"], rows, numeric_from=99)
    return _section("Deploy choice per runtime", content, "deploy")


# --- plots and predictions --------------------------------------------------------------------------------------

def pareto_section(report: Report) -> str:
    from edgekd.report.plots import pareto_svg

    caption = ("Filled markers: measured (p50 on this host, or on a device over SSH). Hollow markers: predicted by "
               "the calibrated roofline (edgekd predict) for devices not measured here; their accuracy is the "
               "source file's measured metric. Only calibrated (device, runtime, precision) groups are shown.")
    alt = "Accuracy vs latency per device and runtime: measured points filled, predicted points hollow"
    content = _figure("plot-pareto", pareto_svg, report, (alt, caption), "no file has both a latency and a metric")
    return _section("Accuracy vs latency (Pareto)", content + predictions_table(report), "pareto")


def predictions_table(report: Report) -> str:
    if not report.predictions:
        return _paragraph("No predicted latencies in this report.", "muted")
    header = ["source", "device", "runtime", "unit", "precision (computes)", "latency (ms)", "metric",
              "calibration error, median |%| (fit / leave-one-model-out)", "calibration models", "mode",
              "file made here", "p50 here (ms)"]
    rows = [[f"{p.role} {p.variant}", p.device, p.runtime, p.unit, f"{p.precision} ({p.compute_precision})",
             f"{p.latency_ms:.3f}", _num(p.metric), _error(p.fit_error) + " / " + _error(p.lomo_error),
             (", ".join(p.calibration_models) or "-", "reason"),
             ("predicted" + ("" if p.calibrated else ", UNCALIBRATED"), ""), *made_here(report, p)]
            for p in sorted(report.predictions, key=lambda p: (p.device, p.runtime, p.role, p.precision))]
    return ("<details><summary>Predicted latencies (" + str(len(rows)) + " rows, mode: predicted)</summary>\n"
            + table(header, rows, ["predicted"] * len(rows), numeric_from=5) + "\n</details>")


def _error(error: dict[str, float | int] | None) -> str:
    if not error or error.get("median_abs_pct") is None:
        return "-"
    return f"{error['median_abs_pct']:.0f}% (n={int(error.get('n', 0))})"


def latency_section(report: Report) -> str:
    from edgekd.report.plots import latency_svg

    caption = "Measured on this host: every timed run of each file (samples_ms), interleaved rounds."
    alt = "Box plots of every measured run's latency, one per file"
    content = _figure("plot-latency", latency_svg, report, (alt, caption), "no per-run latency samples in this report")
    return _section("Latency distributions (measured)", content, "latency")


def _figure(anchor: str, draw: Callable[[Report], str | None], report: Report, text: tuple[str, str],
            empty: str) -> str:
    try:
        svg = draw(report)
    except Exception as error:  # a plotting problem must not cost the page its tables
        return _paragraph(f"plot not drawn: {type(error).__name__}: {error}", "muted")
    if svg is None:
        return _paragraph(empty, "muted")
    alt, caption = text
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(alt)}" ', 1)
    return f'<figure class="plot" id="{anchor}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


# --- quantization, parity, environment, notes -------------------------------------------------------------------

def quantization_section(report: Report) -> str:
    q, spec = report.quantization, report.metric
    if not q.get("enabled"):
        return ""
    summary = table(["", f"{spec.name}{paren(spec.unit)}"],
                    [[name, _num(q.get(key))] for name, key in (("float", "float"), ("PTQ int8", "ptq"),
                                                                  ("QAT int8", "qat"))])
    parts = [_paragraph(f"PyTorch fake-quant on {q.get('eval_samples', '?')} held-out samples; "
                        f"{q.get('quantizers', '?')} quantizers."), summary]
    for pattern, modules in (q.get("fallback") or {}).items():
        parts.append(_paragraph(f"Float fallback {pattern}: {len(modules)} modules"))
    top = q.get("sensitivity_top") or []
    if top:
        parts.append(_paragraph("Most sensitive layers (metric recovered by keeping the layer in float, PTQ model):"))
        parts.append(table(["module", f"cost{paren(spec.unit)}"], [[t["module"], f"{t['cost']:+.4f}"] for t in top[:10]]))
    return _section("Quantization", "\n".join(parts), "quantization")


def parity_section(report: Report) -> str:
    if not report.parity:
        return ""
    header = ["model", "backend", "precision", "max abs Δ", "max rel Δ", "metric (PyTorch)", "metric (runtime)",
              "metric Δ", "passed"]
    rows = [[e.role, e.backend, e.precision, abs_diff_cell(e), f"{e.max_rel_diff:.2e}", _num(e.metric_torch),
             _num(e.metric_runtime), "-" if e.metric_delta is None else f"{e.metric_delta:+.2e}",
             "yes" if e.passed else "NO"] for e in report.parity]
    classes = ["" if e.passed else "bad" for e in report.parity]
    return _section("Parity (exported file vs PyTorch)", table(header, rows, classes, numeric_from=3), "parity")


def environment_section(report: Report) -> str:
    env = report.environment
    keys = ("cpu", "logical_cores", "usable_cores", "machine", "os", "python")
    rows = [[key, str(env[key])] for key in keys if key in env]
    rows += [[name, str(version)] for name, version in sorted((env.get("packages") or {}).items())]
    content = table(["", "value"], rows, numeric_from=99) if rows else _paragraph(environment_line(env))
    return _section("Environment", content, "environment")


def notes_section(report: Report) -> str:
    if not report.notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in report.notes)
    return _section("Notes", f"<ul>{items}</ul>", "notes")


SECTIONS = (header_section, models_section, deployments_section, deploy_section, pareto_section, latency_section,
            quantization_section, parity_section, environment_section, notes_section)
