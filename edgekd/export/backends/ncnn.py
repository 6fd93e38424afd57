"""ncnn (.param + .bin) through pnnx, from the same ONNX graph the other backends use.

ncnn is what Raspberry Pi users run first (the fastest CPU runtime for small detectors there). pnnx converts the
ONNX file edgekd has already checked, rather than a TorchScript trace: one graph for every runtime, and the
tracer is deprecated in current torch (docs/decisions.md, "ncnn: from the ONNX file, through pnnx").

fp32 stores fp32 weights; fp16 stores fp16 weights (pnnx `fp16=1`, half the file). What ncnn computes in is a
runtime option, not a file property: by default it keeps activations in fp16 wherever the CPU can (fp16
arithmetic on ARMv8.2 such as the Pi 5, fp16 storage with F16C on x86). So, as with OpenVINO, a session says
which execution it is: "timed" and "f32" pin fp32 storage and arithmetic for an fp32 file; "default" (and an fp16
file when timed) is ncnn's own choice, which the parity check then covers.

int8 is refused: ncnn quantizes with its C++ tools ncnn2table and ncnn2int8, which are not in the Python wheel.

The batch dimension is not part of an ncnn blob: a session runs one sample at a time and reports batch 1. The
input's shape is written into the .param's Input layer (`0=w 1=h 2=c`), so the file pair describes itself on a
device too.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgekd.artifacts import atomic_path, sha256_file
from edgekd.device_runner.runtimes.ncnn import ncnn_input_shape, ncnn_output_order, pin_ncnn_fp32
from edgekd.errors import EdgekdError
from edgekd.export.base import Exporter, ExportResult
from edgekd.export.ncnn_onnx import (
    channels_last_linear_as_conv, fold_for_batch, identity_gathers_as_reshape, scatter_add_as_matmul,
)
from edgekd.profile.sessions import ARITHMETIC, Session, run_in_fixed_batches

PNNX_TIMEOUT_S = 600
NCNN_PARAM_MAGIC = "7767517"  # the first line of every ncnn .param file


class NcnnExporter(Exporter):
    name = "ncnn"
    listing_order = 40
    runtime = "ncnn"
    precisions = ("fp32", "fp16")
    refused = {"int8": "ncnn quantizes with its C++ tools ncnn2table and ncnn2int8, which the ncnn wheel does not "
                       "include"}
    # Opt-in in recipes (`export.backends: {ncnn: [fp32, fp16]}`) until every task's student is verified through
    # pnnx; `edgekd export timm:NAME -b ncnn` and the profile of an ncnn file work as they are.
    default_precisions = ()
    file_suffix = ".param"
    companion_suffixes = (".bin",)
    requires = ("ncnn", "pnnx")
    extra_name = "ncnn"
    doctor_modules = ("ncnn", "pnnx")
    remote_runner = "ncnn"
    host_cpu = True
    reads_suffixes = (".param",)

    def declared_input(self, path: Path) -> list:
        from edgekd.paths import read_text

        text = read_text(path, "ncnn .param file")
        if text.split("\n", 1)[0].strip() != NCNN_PARAM_MAGIC:
            raise EdgekdError(f"{path}: not an ncnn .param file (its first line is not {NCNN_PARAM_MAGIC})")
        return ncnn_input_shape(text)

    def open_session(self, path, *, threads, precision, static_shape=None, arithmetic="timed"):
        return NcnnSession(Path(path), threads, precision, arithmetic)

    def _export(self, model, example_input, out_path, *, precision, opset, input_names, output_names,
                source_onnx: str | Path | None = None, simplify: bool = True, **_: Any) -> ExportResult:
        shape = tuple(int(d) for d in example_input.shape)
        with _onnx_file(model, example_input, source_onnx, opset, input_names, output_names, simplify) as onnx_path:
            _convert(onnx_path, out_path, shape, fp16=precision == "fp16")
        bin_path = out_path.with_suffix(".bin")
        return ExportResult(
            backend=self.name, precision=precision, path=out_path, sha256=sha256_file(out_path),
            size_bytes=out_path.stat().st_size + bin_path.stat().st_size, opset=None,
            extra={"bin_sha256": sha256_file(bin_path), "converter": f"pnnx {_version('pnnx')} from ONNX",
                   "input_shape": list(shape)},
        )


@contextlib.contextmanager
def _onnx_file(model: Any, example_input: Any, source_onnx: str | Path | None, opset: int,
               input_names: Sequence[str], output_names: Sequence[str], simplify: bool) -> Iterator[Path]:
    """The ONNX file to convert: the one given, or the ONNX exporter's, written to a temporary folder."""
    if source_onnx is not None:
        yield Path(source_onnx)
        return
    from edgekd.export.backends.onnx import OnnxExporter

    with tempfile.TemporaryDirectory(prefix="edgekd-ncnn-") as folder:
        path = Path(folder) / "model.onnx"
        OnnxExporter().export(model, example_input, path, precision="fp32", opset=opset, input_names=input_names,
                              output_names=output_names, simplify=simplify)
        yield path


def _convert(onnx_path: Path, out_path: Path, shape: tuple[int, ...], *, fp16: bool) -> None:
    """pnnx ONNX → ncnn, in a scratch folder (pnnx writes several side files); the pair lands atomically."""
    import pnnx

    if _has_qdq(onnx_path):
        raise EdgekdError(f"{onnx_path.name} is a Q/DQ (int8) graph: ncnn converts float graphs only")
    with tempfile.TemporaryDirectory(prefix="edgekd-pnnx-") as scratch:
        work = Path(scratch)
        local = work / "model.onnx"
        shutil.copyfile(onnx_path, local)
        channels_last_linear_as_conv(local)  # before the fold: onnxslim turns the MatMul into Reshape-Gemm-Reshape
        fold_for_batch(local, shape[0])
        scatter_add_as_matmul(local)
        identity_gathers_as_reshape(local)
        argv = [pnnx.EXEC_PATH, str(local), f"inputshape={_shape_arg(shape)}", f"fp16={int(fp16)}",
                *(f"{key}={work / name}" for key, name in _PNNX_OUTPUTS.items())]
        try:
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise EdgekdError(f"pnnx did not finish converting {onnx_path.name} in {PNNX_TIMEOUT_S} s") from None
        param, weights = work / "model.ncnn.param", work / "model.ncnn.bin"
        if done.returncode != 0 or not param.is_file() or not weights.is_file():
            raise EdgekdError(f"pnnx cannot convert {onnx_path.name} to ncnn (exit {done.returncode}): "
                              f"{_last_line(done.stderr or done.stdout)}")
        text = _with_input_shape(param.read_text(encoding="utf-8"), shape)
        text = fix_single_axis_reductions(text, (work / "model.pnnx.param").read_text(encoding="utf-8"), onnx_path)
        _check_supported(text, onnx_path)
        with atomic_path(out_path.with_suffix(".bin")) as tmp:
            shutil.copyfile(weights, tmp)
        with atomic_path(out_path) as tmp:
            tmp.write_text(text, encoding="utf-8")


_PNNX_OUTPUTS = {"ncnnparam": "model.ncnn.param", "ncnnbin": "model.ncnn.bin", "ncnnpy": "model_ncnn.py",
                 "pnnxparam": "model.pnnx.param", "pnnxbin": "model.pnnx.bin", "pnnxpy": "model_pnnx.py",
                 "pnnxonnx": "model.pnnx.onnx"}


def _shape_arg(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _with_input_shape(param: str, shape: tuple[int, ...]) -> str:
    """Write the input's (w, h, c) into the Input layer, which pnnx leaves empty: `0=w 1=h 2=c`."""
    if len(shape) != 4:
        return param
    _, channels, height, width = shape
    lines = param.splitlines()
    for index, line in enumerate(lines):
        fields = line.split()
        if fields and fields[0] == "Input" and not any("=" in field for field in fields):
            lines[index] = f"{line} 0={width} 1={height} 2={channels}"
    return "\n".join(lines) + "\n"


_TORCH_REDUCTIONS = ("torch.mean", "torch.sum", "torch.amax", "torch.amin", "torch.prod")


def fix_single_axis_reductions(param: str, pnnx_param: str, onnx_path: Path) -> str:
    """Give back the axis pnnx drops from a reduction over one axis.

    pnnx's ONNX frontend turns `ReduceMean(axes=[-1])` into `torch.mean(dim=-1)`, an int rather than a list, and its
    ncnn writer reads only a list: the Reduction comes out with no axes and reduce-all off (`1=0 -23303=0`), which
    ncnn runs as a pass-through. ConvNeXt V2's GRN divides by such a mean, so the gaze teacher came out at 42 dB
    instead of 122 dB. The pnnx graph written beside it still has each dim and the input's shape, and lists the
    reductions of one kind (`torch.mean` → ncnn `mean_*`) in the same order, so the axis is restored from there.
    A reduction it cannot pair is refused.
    """
    dims = _pnnx_reduction_dims(pnnx_param)
    lines = param.splitlines()
    kinds = [line.split()[1].rsplit("_", 1)[0] for line in lines if line.split()[:1] == ["Reduction"]]
    seen: dict[str, int] = {}
    for index, line in enumerate(lines):
        fields = line.split()
        if not fields or fields[0] != "Reduction":
            continue
        kind = fields[1].rsplit("_", 1)[0]
        position = seen[kind] = seen.get(kind, -1) + 1
        if "1=0" not in fields or "-23303=0" not in fields:
            continue
        ops = dims.get(kind, [])
        if len(ops) != kinds.count(kind) or ops[position] is None:  # the two graphs do not pair up
            raise EdgekdError(f"{onnx_path.name}: pnnx wrote the reduction {fields[1]} with no axes, and its axis "
                              "could not be recovered; ncnn would pass its input through")
        dim, rank = ops[position]
        axis = dim % rank - 1  # ncnn blobs have no batch dimension
        if axis < 0:
            raise EdgekdError(f"{onnx_path.name}: the reduction {fields[1]} is over the batch dimension, which ncnn "
                              "does not have")
        lines[index] = line.replace("-23303=0", f"-23303=1,{axis}", 1)
    return "\n".join(lines) + "\n"


def _pnnx_reduction_dims(pnnx_param: str) -> dict[str, list[tuple[int, int] | None]]:
    """Per kind ('mean', 'sum', ...), the pnnx graph's reductions in order: (dim, input rank) for a single int dim,
    None for any other (a list of dims, which pnnx converts correctly)."""
    found: dict[str, list[tuple[int, int] | None]] = {}
    for line in pnnx_param.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] not in _TORCH_REDUCTIONS:
            continue
        values = dict(field.split("=", 1) for field in fields[6:] if "=" in field)
        dim, shape = values.get("dim", ""), values.get(f"#{fields[4]}", "")
        single = dim.lstrip("-").isdigit() and shape.startswith("(")
        entry = (int(dim), shape[1:shape.index(")")].count(",") + 1) if single else None
        found.setdefault(fields[0].removeprefix("torch."), []).append(entry)
    return found


def _check_supported(param: str, onnx_path: Path) -> None:
    """pnnx writes an operator ncnn has no layer for under its ONNX or torch name (mono3d's ScatterND, a
    `pnnx.Expression`); ncnn would refuse it only when the file is loaded, on the device. Refuse it here by
    asking this ncnn build for each layer type."""
    import ncnn

    types = {line.split()[0] for line in param.splitlines()[2:] if line.split()}
    unknown = sorted(kind for kind in types if ncnn.layer_to_index(kind) < 0)
    if unknown:
        raise EdgekdError(f"{onnx_path.name}: ncnn has no layer for {', '.join(unknown)}, which pnnx kept as is")


def _has_qdq(onnx_path: Path) -> bool:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "unknown"


class NcnnSession(Session):
    """An ncnn Net on this host's CPU, one sample per call to its extractor."""

    runtime = "ncnn"

    def __init__(self, path: Path, threads: int, precision: str, arithmetic: str = "timed") -> None:
        try:
            import ncnn
        except ImportError as exc:
            raise EdgekdError("the ncnn runtime is not installed: pip install 'edgekd[ncnn]'") from exc
        if arithmetic not in ARITHMETIC:
            raise EdgekdError(f"arithmetic must be one of {', '.join(ARITHMETIC)}, got {arithmetic!r}")
        super().__init__(path)
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.pinned = arithmetic == "f32" or (arithmetic == "timed" and precision == "fp32")
        if self.pinned:
            pin_ncnn_fp32(self.net.opt)
        weights = path.with_suffix(".bin")
        if not weights.is_file():
            raise EdgekdError(f"{path.name}: its weights {weights.name} must be beside it")
        if self.net.load_param(str(path)) != 0 or self.net.load_model(str(weights)) != 0:
            raise EdgekdError(f"{path.name}: ncnn cannot load it (not an ncnn .param/.bin pair, or a layer this "
                              "ncnn build lacks)")
        self.inputs, self.outputs = list(self.net.input_names()), ncnn_output_order(self.net.output_names())
        if len(self.inputs) != 1:
            raise EdgekdError(f"{path.name}: one input is supported, the model has {len(self.inputs)}")
        self._shape = ncnn_input_shape(path.read_text(encoding="utf-8"))
        self.threads, self.precision = threads, precision

    @property
    def input_shape(self) -> list[int | str | None]:
        return self._shape

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return run_in_fixed_batches(array, 1, self._one_sample)  # ncnn blobs carry no batch dimension

    def _one_sample(self, chunk: np.ndarray) -> list[np.ndarray]:
        import ncnn

        extractor = self.net.create_extractor()
        extractor.input(self.inputs[0], ncnn.Mat(np.ascontiguousarray(chunk[0])))
        outputs = []
        for name in self.outputs:
            status, mat = extractor.extract(name)
            if status != 0:
                raise EdgekdError(f"{self.path.name}: ncnn failed to compute {name} (status {status})")
            outputs.append(np.array(mat)[None])
        return outputs

    def metadata(self) -> dict[str, str]:
        return {"edgekd.precision": self.precision}

    def settings(self) -> dict[str, Any]:
        import ncnn

        return {"threads": self.threads, "version": ncnn.__version__,
                "inference_precision": "f32" if self.pinned else "ncnn default (fp16 storage/arithmetic where the "
                                                                  "CPU has it)"}
