"""The report's figures as inline SVG: accuracy vs latency (Pareto) and per-file latency distributions.

matplotlib is imported inside the functions (it is slow to import and `import edgekd` stays light); figures
are drawn on a bare `Figure` (no pyplot state, no GUI backend). Measured points are filled, predicted ones
hollow, and the legend says so in words, so the distinction survives a grey-scale print.

>>> svg = pareto_svg(report)   # "<svg ...>...</svg>", or None when nothing has both a latency and a metric
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Iterable

from edgekd.profile.local import ProfileResult
from edgekd.report.schema import Report

HOST = "this host"
MARKERS = {"onnxruntime": "o", "openvino": "s", "tensorrt": "^", "pytorch": "D", "tflite": "v", "ncnn": "P"}
WIDE_SPREAD = 10.0  # max/min latency above which the latency axis is logarithmic
# Text as glyph paths: the page then looks the same whatever fonts the browser has (with live text, a wider
# browser font overflows the legends); the hash salt makes the SVG ids reproducible.
RC = {"svg.fonttype": "path", "svg.hashsalt": "edgekd", "font.size": 9}


@dataclass(frozen=True)
class Point:
    """One (model, runtime, precision) on one device: a latency and the task metric."""

    label: str
    device: str
    runtime: str
    precision: str
    latency_ms: float
    metric: float
    measured: bool


def pareto_points(report: Report) -> list[Point]:
    """Measured points (deployments with a p50 and a metric) first, then predicted ones (report.predictions)."""
    points = [
        Point(f"{e.role} {e.variant} {e.precision}", measured_device(e.latency), e.runtime, e.precision,
              e.latency.stats.p50_ms, e.metric, True)
        for e in report.deployments if e.latency is not None and e.metric is not None
    ]
    points += [
        Point(f"{p.role} {p.variant} {p.precision}", p.device, p.runtime, p.precision, p.latency_ms, p.metric, False)
        for p in report.predictions if p.metric is not None and p.latency_ms > 0
    ]
    return points


def pareto_front(points: Iterable[Point], lower_is_better: bool) -> list[Point]:
    """The points no other point beats on both latency and metric, fastest first."""
    sign = 1 if lower_is_better else -1
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.latency_ms, sign * p.metric)):
        if not front or sign * point.metric < sign * front[-1].metric:
            front.append(point)
    return front


def measured_device(result: ProfileResult) -> str:
    if result.mode == "measured-local":
        return HOST
    return str(result.environment.get("device") or result.environment.get("name") or "remote device")


def pareto_svg(report: Report) -> str | None:
    """Accuracy vs latency: colour per device, marker per runtime, filled = measured, hollow = predicted."""
    points = pareto_points(report)
    if not points:
        return None
    from matplotlib import rc_context

    with rc_context(RC):
        fig = _figure((10, 5.6), layout="constrained")
        ax = fig.add_subplot()
        colours = _device_colours(points)
        for device, colour in colours.items():
            _draw_device(ax, [p for p in points if p.device == device], colour, report.metric.lower_is_better)
        _style_pareto(ax, report, points)
        _pareto_legends(fig, points, colours)
        return _svg(fig)


def latency_svg(report: Report) -> str | None:
    """Every timed run of each measured file as a horizontal box plot (log x when the spread is wide)."""
    rows = [(f"{e.role} {e.variant} · {e.runtime} {e.precision}", e.latency.samples_ms)
            for e in report.deployments if e.latency is not None and e.latency.samples_ms]
    if not rows:
        return None
    from matplotlib import rc_context

    with rc_context(RC):
        fig = _figure((10, 1.2 + 0.45 * len(rows)))
        ax = fig.add_subplot()
        _boxes(ax, rows)
        return _svg(fig)


def _figure(size: tuple[float, float], **options: Any) -> Any:
    """A Figure on the Agg canvas: no pyplot, no GUI backend, safe in threads and without a display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, **options)
    FigureCanvasAgg(fig)
    return fig


def _device_colours(points: list[Point]) -> dict[str, Any]:
    from matplotlib import colormaps

    devices = sorted({p.device for p in points}, key=lambda d: (d != HOST, not _is_measured(points, d), d))
    palette = colormaps["tab10"].colors
    return {device: palette[i % len(palette)] for i, device in enumerate(devices)}


def _is_measured(points: list[Point], device: str) -> bool:
    return any(p.measured for p in points if p.device == device)


def _draw_device(ax: Any, points: list[Point], colour: Any, lower_is_better: bool) -> None:
    for p in points:
        ax.scatter(p.latency_ms, p.metric, marker=MARKERS.get(p.runtime, "X"), s=46, linewidths=1.3,
                   facecolors=colour if p.measured else "none", edgecolors=colour, zorder=3)
        if p.measured:
            ax.annotate(p.label, (p.latency_ms, p.metric), xytext=(4, 4), textcoords="offset points", fontsize=7)
    for measured in (True, False):
        front = pareto_front([p for p in points if p.measured == measured], lower_is_better)
        if len(front) > 1:
            ax.step([p.latency_ms for p in front], [p.metric for p in front], where="post", color=colour,
                    linestyle="-" if measured else "--", linewidth=1, alpha=0.8, zorder=2)


def _style_pareto(ax: Any, report: Report, points: list[Point]) -> None:
    spec = report.metric
    latencies = [p.latency_ms for p in points]
    if max(latencies) / min(latencies) > WIDE_SPREAD:
        _log_x(ax)
    ax.set_xlabel("latency, batch 1 (ms): p50 where measured, model estimate where predicted")
    unit = f" ({spec.unit})" if spec.unit else ""
    ax.set_ylabel(f"{spec.name}{unit}, {'lower' if spec.lower_is_better else 'higher'} is better")
    corner = "lower left" if spec.lower_is_better else "upper left"
    ax.set_title(f"Accuracy vs latency: better is toward the {corner}; lines are each device's Pareto front")
    ax.grid(True, which="both", alpha=0.25)


def _pareto_legends(fig: Any, points: list[Point], colours: dict[str, Any]) -> None:
    from matplotlib.lines import Line2D

    def handle(label: str, **style: Any) -> Line2D:
        return Line2D([], [], label=label, linestyle=style.pop("linestyle", "none"), **style)

    devices = [handle(f"{d} ({'measured' if _is_measured(points, d) else 'predicted'})", marker="o", color=c)
               for d, c in colours.items()]
    runtimes = [handle(r, marker=MARKERS.get(r, "X"), color="0.3") for r in sorted({p.runtime for p in points})]
    kinds = [handle("measured (filled)", marker="o", color="0.3"),
             handle("predicted (hollow)", marker="o", color="0.3", markerfacecolor="none"),
             handle("front, measured", color="0.3", linestyle="-"),
             handle("front, predicted", color="0.3", linestyle="--")]
    for handles, title, where in ((devices, "device", "upper"), (runtimes, "runtime", "center"),
                                  (kinds, "source", "lower")):
        fig.legend(handles=handles, title=title, loc=f"outside right {where}", fontsize=7, title_fontsize=8)


def _boxes(ax: Any, rows: list[tuple[str, list[float]]]) -> None:
    samples = [s for _, s in rows]
    style = {"whis": (5, 95), "widths": 0.6, "flierprops": {"markersize": 2, "alpha": 0.5},
             "medianprops": {"color": "C3"}}
    try:
        ax.boxplot(samples, orientation="horizontal", **style)
    except TypeError:  # matplotlib < 3.10 names it vert=False
        ax.boxplot(samples, vert=False, **style)
    ax.set_yticks(range(1, len(rows) + 1), [label for label, _ in rows])
    low, high = min(min(s) for s in samples), max(max(s) for s in samples)
    if high / max(low, 1e-9) > WIDE_SPREAD:
        _log_x(ax)
    ax.invert_yaxis()
    ax.set_xlabel("latency per run (ms), measured; box: p25–p75, line: p50, whiskers: p5–p95, dots: beyond")
    counts = ", ".join(sorted({str(len(s)) for s in samples}))
    ax.set_title(f"Measured latency, every timed run ({counts} runs per file)")
    ax.grid(True, axis="x", which="both", alpha=0.25)


def _log_x(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # "0.5", not "5×10^-1"
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))


def _minor_label(value: float, _: Any) -> str:
    """Label the 2s and 5s between decades, so a short log axis still has numbers to read."""
    if value <= 0:
        return ""
    lead = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if lead in (2, 5) else ""


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: the SVG sits inside HTML
