"""Turn a Report into report.json (machines), report.md (a PR comment) and report.html (people: tables + plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.artifacts import atomic_write_json, atomic_write_text
from edgekd.report.schema import ModelEntry, ParityEntry, Report

TEACHER, STUDENT = "teacher", "student"


def ratios(report: Report) -> dict[str, float]:
    """teacher / student for size, compute and p50 latency per runtime (> 1: the student is better).

    Empty unless the report has both a "teacher" and a "student"; a zero student value is skipped.
    """
    teacher, student = report.model(TEACHER), report.model(STUDENT)
    if teacher is None or student is None:
        return {}
    pairs = {
        "parameters": (teacher.parameters, student.parameters),
        "macs": (teacher.macs, student.macs),
        "file_size": (teacher.file_size_bytes, student.file_size_bytes),
    }
    for runtime in teacher.latency.keys() & student.latency.keys():
        pairs[f"latency_p50_{runtime}"] = (teacher.latency[runtime].stats.p50_ms, student.latency[runtime].stats.p50_ms)
    return {key: t / s for key, (t, s) in sorted(pairs.items()) if s > 0}


def to_markdown(report: Report) -> str:
    """The whole report as Markdown: model table, ratio line, deployments, parity, predicted latency, environment,
    notes."""
    sections = [
        f"# edgekd report — {report.recipe} ({report.task})",
        f"Created {report.created} by edgekd {report.edgekd_version}; config `{report.config_hash[:12]}`.",
        "## Models\n\n" + _models_table(report),
    ]
    line = ratio_line(report)
    if line:
        sections.append(f"**{line}**")
    if report.deployments:
        sections.append("## Deployments (one row per exported file)\n\n" + _deployments_table(report))
    if report.deploy:
        sections.append("## Deploy choice\n\n" + "\n".join(
            f"- **{runtime}: {choice.precision or 'none'}** — {choice.reason}" for runtime, choice in report.deploy.items()))
    if report.quantization.get("enabled"):
        sections.append("## Quantization\n\n" + _quantization_section(report))
    if report.parity:
        sections.append("## Parity (exported file vs PyTorch)\n\n" + _parity_table(report.parity))
    if report.predictions:
        sections.append("## Predicted latency (calibrated device model, not measured)\n\n" + _predictions_table(report))
    sections.append("## Environment\n\n" + environment_line(report.environment))
    if report.notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {note}" for note in report.notes))
    return "\n\n".join(sections) + "\n"


def write_report(report: Report, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `out_dir`, each atomically."""
    from edgekd.report.html import to_html  # it imports this module's formatters

    out_dir = Path(out_dir)
    return {
        "json": atomic_write_json(out_dir / "report.json", report.model_dump(mode="json")),
        "md": atomic_write_text(out_dir / "report.md", to_markdown(report)),
        "html": atomic_write_text(out_dir / "report.html", to_html(report)),
    }


def ratio_line(report: Report) -> str:
    """e.g. "student: 12.7× fewer parameters, 11.9× smaller file, 4.1× fewer MACs, 2.0× faster (p50, onnxruntime, 2 threads)"."""
    found = report.ratios or ratios(report)
    parts = [
        _phrase(found.get("parameters"), "fewer parameters", "more parameters", "as many parameters"),
        _phrase(found.get("file_size"), "smaller file", "larger file", "same file size"),
        _phrase(found.get("macs"), "fewer MACs", "more MACs", "as many MACs"),
    ]
    student = report.model(STUDENT)
    for key in sorted(k for k in found if k.startswith("latency_p50_")):
        runtime = key.removeprefix("latency_p50_")
        threads = student.latency[runtime].threads if student and runtime in student.latency else None
        setting = f"p50, {runtime}" + (f", {threads} threads" if threads else "")
        parts.append(_phrase(found[key], "faster", "slower", "same speed") + f" ({setting})")
    parts = [p for p in parts if p]
    return f"{STUDENT}: " + ", ".join(parts) if parts else ""


def environment_line(environment: dict) -> str:
    if not environment:
        return "not recorded"
    packages = environment.get("packages", {})
    names = [name for name in packages if name not in ("edgekd", "timm", "numpy")]  # runtimes, torch, onnx
    versions = ", ".join(f"{name} {packages[name]}" for name in names if name in packages)
    cores = f"{environment.get('logical_cores', '?')} logical cores ({environment.get('usable_cores', '?')} usable)"
    fields = [environment.get("cpu", "unknown CPU"), cores, environment.get("os", ""),
              f"Python {environment.get('python', '?')}", versions]
    return "; ".join(f for f in fields if f)


def _phrase(ratio: float | None, better: str, worse: str, same: str) -> str:
    if not ratio:
        return ""
    if round(ratio, 1) == 1.0 and round(1 / ratio, 1) == 1.0:  # "1.0× fewer" reads as a claim; it is not one
        return same
    return f"{ratio:.1f}× {better}" if ratio >= 1 else f"{1 / ratio:.1f}× {worse}"


def _models_table(report: Report) -> str:
    models = report.models
    if not models:
        return "_no models_"
    rows = [
        ("architecture", [m.arch for m in models]),
        ("parameters", [_count(m.parameters) for m in models]),
        ("trainable parameters", [_count(m.trainable_parameters) for m in models]),
        ("MACs", [_count(m.macs) for m in models]),
        ("file size", [_bytes(m.file_size_bytes) for m in models]),
        *_metric_rows(report),
        *_latency_rows(models),
    ]
    return _table(["", *(m.role for m in models)], [[name, *cells] for name, cells in rows], right_from=1)


def _metric_rows(report: Report) -> list[tuple[str, list[str]]]:
    names = sorted({key for m in report.models for key in m.metrics})
    spec = report.metric
    label = f"{spec.name}, {{}}" + paren(spec.unit, f"{'lower' if spec.lower_is_better else 'higher'} is better")
    rows = [(label.format(n), [_num(m.metrics.get(n)) for m in report.models]) for n in names]
    return rows + [(outcome_label(name, outcome), [_num(_outcome(m, name)) for m in report.models])
                   for name, outcome in _outcome_specs(report).items()]


def paren(*parts: str) -> str:
    """' (a, b)' from the non-empty parts, '' when all are empty: a unitless metric gets no '()'."""
    joined = ", ".join(part for part in parts if part)
    return f" ({joined})" if joined else ""


def outcome_label(name: str, outcome) -> str:
    unit = f"{outcome.unit}, " if outcome.unit else ""
    return f"{name} ({unit}{'lower' if outcome.lower_is_better else 'higher'} is better)"


def _outcome_specs(report: Report) -> dict[str, object]:
    specs: dict[str, object] = {}
    for model in report.models:
        for name, outcome in model.outcomes.items():
            specs.setdefault(name, outcome)
    return dict(sorted(specs.items()))


def _outcome(model: ModelEntry, name: str) -> float | None:
    outcome = model.outcomes.get(name)
    return None if outcome is None else outcome.value


def _latency_rows(models: list[ModelEntry]) -> list[tuple[str, list[str]]]:
    rows = []
    for runtime in sorted({r for m in models for r in m.latency}):
        for pct in ("p50", "p90"):
            cells = [_num(getattr(m.latency[runtime].stats, f"{pct}_ms")) if runtime in m.latency else "-" for m in models]
            rows.append((f"latency {pct}, {runtime} (ms)", cells))
    return rows


def _deployments_table(report: Report) -> str:
    unit = report.metric.unit
    header = ["model", "variant", "backend", "precision", f"{report.metric.name} ({unit})", "Δ vs float PyTorch",
              "size", "int8 kernels", "p50 (ms)", "vs fp32", "status"]
    rows = []
    for e in report.deployments:
        p50 = "-" if e.latency is None else f"{e.latency.stats.p50_ms:.3f}"
        speed = "-" if e.speedup_vs_fp32 is None else f"{e.speedup_vs_fp32:.2f}×"
        delta = "-" if e.metric_delta_vs_float is None else f"{e.metric_delta_vs_float:+.3f}"
        status = e.status if e.status in ("passed", "bundle", "built", "skipped") else f"**{e.status.upper()}**"
        rows.append([e.role, e.variant, e.backend, precision_cell(e), _num(e.metric), delta,
                     "-" if e.size_bytes is None else _bytes(e.size_bytes), kernel_cell(e), p50, speed, status])
    return _table(header, rows, right_from=4) + (
        "\n\n'vs fp32': p50 of the same model's fp32 file on the same runtime divided by this file's p50 "
        "(> 1: faster), all timed side by side in one run. PTQ rows are the calibration-only baseline (not timed: "
        "same graph as QAT). A precision such as 'fp16 (bf16)' names the arithmetic the runtime computed in, for "
        "both the metric and the latency. 'int8 kernels': convs ONNX Runtime's CPU provider runs as int8 kernels out of those "
        "QAT quantized, read from its optimised graph.")


_STORED_AS = {"fp32": "f32", "fp16": "f16", "int8": "f32"}  # the float arithmetic a file's precision implies


def precision_cell(entry: Any) -> str:
    """'fp16 (bf16)' when the file was checked and timed in another arithmetic than its precision implies."""
    arithmetic = entry.inference_precision
    if arithmetic in (None, "as stored") or arithmetic == _STORED_AS.get(entry.precision):
        return entry.precision
    return f"{entry.precision} ({arithmetic})"


def kernel_cell(entry: Any) -> str:
    """'20/20 convs' (+ matrix products where QAT quantized any) for an int8 ONNX file, '-' otherwise."""
    k = entry.int8_kernels
    if not k:
        return "-"
    cell = f"{k['int8_convs']}/{k['quantized_convs']} convs"
    return cell + (f", {k['int8_matmuls']}/{k['quantized_matmuls']} matmuls" if k.get("quantized_matmuls") else "")


def _quantization_section(report: Report) -> str:
    q, unit = report.quantization, report.metric.unit
    lines = [f"{report.metric.name} on {q.get('eval_samples', '?')} held-out samples (PyTorch, fake-quant): "
             f"float {_num(q.get('float'))}{unit}, PTQ int8 {_num(q.get('ptq'))}{unit}, "
             f"QAT int8 {_num(q.get('qat'))}{unit}; {q.get('quantizers', '?')} quantizers."]
    fallback = q.get("fallback") or {}
    if fallback:
        lines.append("Float fallback: " + "; ".join(f"`{p}` → {len(m)} modules" for p, m in fallback.items()))
    top = q.get("sensitivity_top") or []
    if top:
        lines.append("Most sensitive layers (metric recovered by keeping the layer in float, on the PTQ model):")
        lines += [f"- `{t['module']}`: {t['cost']:+.4f}{unit}" for t in top[:5]]
    return "\n".join(lines)


def _parity_table(entries: list[ParityEntry]) -> str:
    header = ["model", "backend", "precision", "max abs Δ", "max rel Δ", "metric (PyTorch)", "metric (runtime)",
              "metric Δ", "passed"]
    rows = [
        [e.role, e.backend, e.precision, abs_diff_cell(e), f"{e.max_rel_diff:.2e}", _num(e.metric_torch),
         _num(e.metric_runtime), "-" if e.metric_delta is None else f"{e.metric_delta:+.2e}", "yes" if e.passed else "**NO**"]
        for e in entries
    ]
    return _table(header, rows, right_from=3)


def _predictions_table(report: Report) -> str:
    header = ["model", "device", "runtime", "unit", "precision (computes)", "latency (ms)", "calibrated",
              "file made here", "p50 here (ms)"]
    rows = []
    for p in sorted(report.predictions, key=lambda p: (p.device, p.runtime, p.unit, p.role, p.precision)):
        made, here = made_here(report, p)
        rows.append([f"{p.role} ({p.variant})", p.device, p.runtime, p.unit, f"{p.precision} ({p.compute_precision})",
                     f"{p.latency_ms:.3f}", "yes" if p.calibrated else "**NO**", made, here])
    return _table(header, rows, right_from=5)


def made_here(report: Report, prediction: Any) -> tuple[str, str]:
    """The file of the predicted (role, variant, runtime, precision) this run made and checked, and its p50 on this
    host: ("ncnn/student.fp16.param (passed)", "5.031"), or ("not made", "-") — the prediction is then for a file
    the recipe did not export."""
    for entry in report.deployments:
        if (entry.role, entry.variant, entry.runtime, entry.precision) == (
                prediction.role, prediction.variant, prediction.runtime, prediction.precision):
            name = "/".join(Path(entry.path).parts[-2:]) if entry.path else entry.backend
            p50 = "-" if entry.latency is None else f"{entry.latency.stats.p50_ms:.3f}"
            return f"{name} ({entry.status})", p50
    return "not made", "-"


def abs_diff_cell(entry: ParityEntry) -> str:
    """The maximum |Δ|, and the statistic the budget gated when it is not the maximum."""
    cell = f"{entry.max_abs_diff:.2e}"
    if entry.error_stat != "max" and entry.abs_diff_stat is not None:
        cell += f" ({entry.error_stat} {entry.abs_diff_stat:.2e} gated)"
    return cell


def _table(header: list[str], rows: list[list[str]], right_from: int) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _count(value: float) -> str:
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return str(value)


def _bytes(value: int) -> str:
    for scale, suffix in ((2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value} B"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
