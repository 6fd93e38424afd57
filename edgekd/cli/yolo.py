"""`edgekd yolo-compare`: one YOLOv8 exported by edgekd and by Ultralytics, parity and latency side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgekd.cli.common import JsonOpt, err, guarded, out
from edgekd.errors import CheckFailed


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="yolov8n | yolov8s | yolov8m | yolov8l | yolov8x.")]
ImgszOpt = Annotated[int, typer.Option("--imgsz", help="Square input size (a multiple of 32).")]
ClassesOpt = Annotated[int, typer.Option("--classes", help="Classes of the (randomly initialised) head.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="ONNX Runtime threads (parity and timing).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="Untimed runs per file before timing.")]
RunsOpt = Annotated[int, typer.Option("--runs", help="Timed runs per file.")]
RoundsOpt = Annotated[int, typer.Option("--rounds", help="Alternating rounds the timed runs are split into.")]
OpsetOpt = Annotated[int, typer.Option("--opset", help="ONNX opset for both exporters.")]


@guarded
def yolo_compare_command(
    model: ModelOpt = "yolov8n",
    imgsz: ImgszOpt = 320,
    classes: ClassesOpt = 80,
    out_dir: OutOpt = Path("runs/yolo_compare"),
    threads: ThreadsOpt = 1,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 100,
    rounds: RoundsOpt = 5,
    opset: OpsetOpt = 18,
    as_json: JsonOpt = False,
) -> None:
    """Export a YOLOv8 with edgekd and with Ultralytics, check both against PyTorch, time both on ONNX Runtime.

    Needs the optional extra: pip install 'edgekd[yolo]' (Ultralytics, AGPL-3.0). Nothing is downloaded: the
    model is built from Ultralytics' bundled YAML with random weights. Exit 1 when a file fails its parity check.
    """
    from edgekd.paths import check_output_dir
    from edgekd.yolo.export_compare import RESULT_FILE, compare_exports

    check_output_dir(out_dir, "--out")
    with err.status("exporting") as status:
        result = compare_exports(model, imgsz=imgsz, out_dir=out_dir, num_classes=classes, opset=opset,
                                 threads=threads, warmup=warmup, runs=runs, rounds=rounds,
                                 progress=lambda text: status.update(text))
    if as_json:
        out.print(json.dumps(result.to_dict(), indent=2), highlight=False, markup=False, soft_wrap=True)
    else:
        out.print(_table(result))
        out.print(f"results: {escape(str(out_dir / RESULT_FILE))}")
    if not result.parity_passed:
        failed = [side.exporter for side in (result.edgekd, result.ultralytics) if not side.parity_passed]
        raise CheckFailed(f"parity out of budget for the {' and '.join(failed)} file(s)")


def _table(result) -> Table:
    title = (f"{result.model} {result.imgsz}×{result.imgsz}, ONNX Runtime, {result.threads} thread(s), "
             f"Ultralytics {result.ultralytics_version}")
    table = Table("exporter", "parity max |Δ|", "nodes", "size MiB", "p50 ms", "p90 ms", "p99 ms", title=title)
    for side in (result.edgekd, result.ultralytics):
        mark = "" if side.parity_passed else " [bold red]FAILED[/bold red]"
        table.add_row(side.exporter, f"{side.parity_max_abs_diff:.2e}{mark}", str(side.nodes),
                      f"{side.size_bytes / 2**20:.2f}", f"{side.p50_ms:.3g}", f"{side.p90_ms:.3g}",
                      f"{side.p99_ms:.3g}")
    low, high = result.latency_ratio_p50_interval
    table.caption = (f"edgekd / Ultralytics: p50 {result.latency_ratio_p50:.3f} (95% interval {low:.3f}–{high:.3f}), "
                     f"p90 {result.latency_ratio_p90:.3f}; < 1 means edgekd's file is faster")
    return table
