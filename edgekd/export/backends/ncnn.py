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
        _fold_for_batch(local, shape[0])
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


def _fold_for_batch(onnx_path: Path, batch: int) -> None:
    """Fix the input's batch to the one ncnn runs (an ncnn blob has none) and fold what that makes constant:
    shape arithmetic the dynamo exporter writes for a dynamic batch (Shape → Range → Gather) becomes constants
    ncnn can take. onnxslim is the simplifier the ONNX export already uses; if it fails, the file stays as it was."""
    import onnx
    import onnxslim

    model = onnx.load(str(onnx_path))
    for value in model.graph.input[:1]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    try:
        onnx.save(onnxslim.slim(model), str(onnx_path))
    except Exception:  # noqa: BLE001 - a simplifier failure leaves the exporter's own graph, which pnnx then judges
        pass


def identity_gathers_as_reshape(onnx_path: Path) -> int:
    """Rewrite, in place, a Gather that picks every element of a 1-D tensor in order (indices 0..n-1 in any
    shape) as the Reshape it is. The dynamo exporter writes a flatten of a pooled tensor that way (`as_strided`;
    the gaze students' timm head), and ncnn has no Gather layer. Returns how many were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    lengths = _static_lengths(model)
    rewritten = 0
    for node in list(graph.node):
        index = constants.get(node.input[1]) if node.op_type == "Gather" and len(node.input) > 1 else None
        if index is None or lengths.get(node.input[0]) != index.size \
                or not np.array_equal(index.reshape(-1), np.arange(index.size)):
            continue
        shape_name = f"{node.name or node.output[0]}_shape"
        graph.initializer.append(numpy_helper.from_array(np.array(index.shape, np.int64), shape_name))
        graph.node.insert(list(graph.node).index(node), helper.make_node(
            "Reshape", [node.input[0], shape_name], [node.output[0]], name=f"{node.name}_as_reshape"))
        graph.node.remove(node)
        rewritten += 1
    if rewritten:
        _drop_dead_nodes(graph)
        onnx.save(model, str(onnx_path))
    return rewritten


def channels_last_linear_as_conv(onnx_path: Path) -> int:
    """Rewrite, in place, a Linear on an (N, H, W, C) tensor (MatMul by a constant (C, K) matrix, and the Add of a
    constant (K,) bias that follows it) as the 1×1 convolution it is, between two Transposes. Returns how many.

    timm's ConvNeXt runs its MLP that way. From ONNX, pnnx turns such a MatMul into Gemm between Reshapes whose
    second one writes a 4-D blob that keeps the batch, while the reductions after it (GRN's mean over the channels)
    get axes for a blob without one: ncnn then averaged over H instead of C, and the trained gaze networks came out
    at 21–41 dB. As a convolution between Permutes every blob has the batch-less layout the axes assume."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    ranks = {name: len(dims) for name, dims in _known_dims(model).items()}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewritten = 0
    for node in list(graph.node):
        weight = constants.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or weight.ndim != 2 or ranks.get(node.input[0]) != 4:
            continue
        bias, output, replaced = _linear_bias(node, consumers, constants, weight.shape[1])
        stem = node.name or node.output[0]
        names = {key: f"{stem}_{key}" for key in ("nchw", "conv", "w", "b")}
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(weight.T[:, :, None, None]).astype(weight.dtype), names["w"]))
        conv_inputs = [names["nchw"], names["w"]]
        if bias is not None:
            graph.initializer.append(numpy_helper.from_array(bias.astype(weight.dtype), names["b"]))
            conv_inputs.append(names["b"])
        at = list(graph.node).index(node)
        graph.node.insert(at, helper.make_node("Transpose", [node.input[0]], [names["nchw"]], perm=[0, 3, 1, 2],
                                               name=f"{stem}_to_nchw"))
        graph.node.insert(at + 1, helper.make_node("Conv", conv_inputs, [names["conv"]], kernel_shape=[1, 1],
                                                   name=f"{stem}_as_conv"))
        graph.node.insert(at + 2, helper.make_node("Transpose", [names["conv"]], [output], perm=[0, 2, 3, 1],
                                                   name=f"{stem}_to_nhwc"))
        for old in replaced:
            graph.node.remove(old)
        rewritten += 1
    if rewritten:
        _drop_dead_nodes(graph)
        onnx.save(model, str(onnx_path))
    return rewritten


def _linear_bias(matmul: Any, consumers: dict, constants: dict, width: int) -> tuple[Any, str, list[Any]]:
    """The constant bias a lone Add puts on the MatMul's output (None if there is none), the name the rewritten
    Linear must produce, and the nodes it replaces."""
    users = consumers.get(matmul.output[0], [])
    if len(users) == 1 and users[0].op_type == "Add":
        add = users[0]
        other = add.input[1] if add.input[0] == matmul.output[0] else add.input[0]
        bias = constants.get(other)
        if bias is not None and bias.shape == (width,):
            return bias, add.output[0], [matmul, add]
    return None, matmul.output[0], [matmul]


def _known_dims(model: Any) -> dict[str, tuple[int | None, ...]]:
    """The dims (None where dynamic) of every graph value shape inference gives a shape; one inference per rewrite."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model).graph
    known = {}
    for value in [*inferred.value_info, *inferred.input, *inferred.output]:
        if value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            known[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return known


def _static_lengths(model: Any) -> dict[str, int]:
    """The length of every value (or initializer) known to be 1-D and static."""
    lengths = {name: dims[0] for name, dims in _known_dims(model).items() if len(dims) == 1 and dims[0] is not None}
    lengths.update({i.name: i.dims[0] for i in model.graph.initializer if len(i.dims) == 1})
    return lengths


def scatter_add_as_matmul(onnx_path: Path) -> int:
    """Rewrite, in place, each gather → weight → scatter-add into zeros with constant indices as one matrix product.

    ncnn has no ScatterND layer. A ScatterND (reduction "add") into a zero tensor whose updates are
    `Gather(table, rows) * weights`, with rows, weights and indices constant, is the product D @ table with the
    constant D[cell, row] = the summed weights of the pairs (row → cell): exact, and ncnn runs it as a MatMul. This
    is the mono3d lift's `rows` form (edgekd.tasks.mono3d.lift), made the `dense` form for ncnn only. Returns how
    many scatters were rewritten; other ScatterND nodes are left for `_check_supported` to refuse.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    producer = {out: node for node in graph.node for out in node.output}
    dims = _known_dims(model)
    rewritten = 0
    for node in list(graph.node):
        plan = _scatter_plan(node, producer, constants, dims)
        if plan is None:
            continue
        table, dense = plan
        name = f"{node.name or node.output[0]}_as_matmul"
        graph.initializer.append(numpy_helper.from_array(dense, f"{name}_weights"))
        graph.node.insert(list(graph.node).index(node),
                          helper.make_node("MatMul", [f"{name}_weights", table], [node.output[0]], name=name))
        graph.node.remove(node)
        rewritten += 1
    if rewritten:
        _drop_dead_nodes(graph)
        onnx.save(model, str(onnx_path))
    return rewritten


def _scatter_plan(node: Any, producer: dict, constants: dict, dims: dict) -> tuple[str, np.ndarray] | None:
    """(table input, dense weights) when `node` is a constant-index scatter-add of weighted gathered rows."""
    reduction = next((a.s for a in node.attribute if a.name == "reduction"), b"none")
    if node.op_type != "ScatterND" or reduction != b"add" or node.input[1] not in constants:
        return None
    zeros, mul = producer.get(node.input[0]), producer.get(node.input[2])
    zero_constant = constants.get(node.input[0])
    if zero_constant is not None:  # a static shape: the exporter stored the zeros themselves
        if np.any(zero_constant):
            return None
    elif zeros is None or zeros.op_type != "ConstantOfShape" or _fill_value(zeros) != 0:
        return None
    if mul is None or mul.op_type != "Mul":
        return None
    gather_name, weights_name = ((mul.input[0], mul.input[1]) if mul.input[1] in constants
                                 else (mul.input[1], mul.input[0]))
    gather = producer.get(gather_name)
    if weights_name not in constants or gather is None or gather.op_type != "Gather" \
            or gather.input[1] not in constants or any(a.name == "axis" and a.i != 0 for a in gather.attribute):
        return None
    table = gather.input[0]
    cells_index = constants[node.input[1]].reshape(-1).astype(np.int64)
    rows_index = constants[gather.input[1]].reshape(-1).astype(np.int64)
    weights = constants[weights_name]
    # one weight per gathered row ((N,) would scale columns), a 2-D table (a 3-D one would batch the MatMul)
    table_dims = dims.get(table, ())
    if len(table_dims) != 2 or table_dims[0] is None or weights.ndim != 2 or weights.shape[1] != 1 \
            or not (len(cells_index) == len(rows_index) == len(weights)):
        return None
    table_rows = table_dims[0]
    weights = weights.reshape(-1).astype(np.float32)
    if len(rows_index) and (rows_index.min() < 0 or rows_index.max() >= table_rows or cells_index.min() < 0):
        return None
    cells = ((dims.get(node.output[0]) or (None,))[0] or (zero_constant.shape[0] if zero_constant is not None else 0)
             or _cells_hint(constants, producer, zeros))
    if not cells or (len(cells_index) and int(cells_index.max()) >= cells):
        return None
    dense = np.zeros((cells, table_rows), np.float32)
    np.add.at(dense, (cells_index, rows_index), weights)
    return table, dense


def _fill_value(node: Any) -> float | None:
    from onnx import numpy_helper

    value = next((a.t for a in node.attribute if a.name == "value"), None)
    return 0.0 if value is None else float(numpy_helper.to_array(value).reshape(-1)[0])


def _cells_hint(constants: dict, producer: dict, zeros: Any) -> int:
    """The zero tensor's first dimension (the number of cells) when its shape's first entry is a constant: the shape
    itself, or a Concat of a constant first part and the batch-dependent rest (the dynamo exporter's form)."""
    shape = constants.get(zeros.input[0])
    concat = producer.get(zeros.input[0])
    if shape is None and concat is not None and concat.op_type == "Concat":
        shape = constants.get(concat.input[0])
    return int(shape.reshape(-1)[0]) if shape is not None and shape.size else 0


def _drop_dead_nodes(graph: Any) -> None:
    """Remove nodes none of whose outputs is used (the zero tensor's shape computation, after a rewrite), then the
    initializers nothing reads."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            for initializer in [i for i in graph.initializer if i.name not in used]:
                graph.initializer.remove(initializer)
            return
        for node in dead:
            graph.node.remove(node)


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
