"""LiteRT (.tflite, formerly TensorFlow Lite): the runtime of Coral, Android and the NPUs that only take TFLite.

Like ExecuTorch, a .tflite is made from a `torch.export` program of the PyTorch module (litert-torch lowers it
through StableHLO), not from the ONNX file. The conversion runs in another process and, by default, another
Python environment (edgekd.export.litert_env says why); the runtime, ai-edge-litert, runs here.

fp32, and int8 through PT2E with LiteRT's own quantizer: as for ExecuTorch, the QAT model's fine-tuned weights
are carried over (the float module under NNCF's quantizers) and PT2E calibrates its own ranges on the
calibration inputs; the file's inputs and outputs are float32 (quantize/dequantize ops inside, which
edgekd.export.litert_convert puts back where the converter made them int8), and it is judged against the
quantized model on the recipe's int8 budget. fp16 is refused: LiteRT's CPU kernels dequantize fp16
weights to fp32 on load, so an fp16 file would only be a smaller fp32 one, and edgekd has no check for the
GPU delegate that would run it in fp16.

litert-torch keeps PyTorch's NCHW layout at the file's inputs and outputs (it transposes inside), so a session
feeds the same arrays as every other runtime. The input shape is fixed at conversion (batch 1 at export).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgekd.artifacts import atomic_path, sha256_file
from edgekd.device_runner.runtimes.tflite import tflite_output_order
from edgekd.errors import EdgekdError, first_line
from edgekd.export.base import Exporter, ExportResult
from edgekd.profile.sessions import Session, run_in_fixed_batches
from edgekd.quant.nncf_quant import float_twin

CONVERT_TIMEOUT_S = 1800
_CONVERTER = Path(__file__).resolve().parent.parent / "litert_convert.py"  # it runs in the converter env


class LiteRtExporter(Exporter):
    name = "litert"
    listing_order = 60
    runtime = "tflite"  # the name the device catalogue and the latency calibration already use
    precisions = ("fp32", "int8")
    refused = {"fp16": "LiteRT's CPU kernels turn fp16 weights back into fp32 on load; the GPU delegate that "
                       "computes in fp16 cannot be checked here"}
    calibrates_int8 = True
    default_precisions = ()  # opt-in: an optional extra with a converter environment of its own
    file_suffix = ".tflite"
    requires = ("ai_edge_litert",)
    extra_name = "litert"
    doctor_modules = ("ai-edge-litert",)
    remote_runner = "tflite"
    host_cpu = True
    reads_suffixes = (".tflite",)

    def doctor_note(self) -> str:
        from edgekd.export import litert_env

        return f"converter: {litert_env.describe()}"

    def setup(self, log: Any = print, force: bool = False) -> None:
        from edgekd.export import litert_env

        litert_env.create(force=force, log=log)

    def open_session(self, path, *, threads, precision, static_shape=None, arithmetic="timed"):
        return LiteRtSession(Path(path), threads, precision)

    def declared_input(self, path: Path) -> Optional[list]:
        if not self.is_available():
            return None
        details = _interpreter(path, threads=1).get_input_details()
        return [int(d) for d in details[0]["shape"]] if len(details) == 1 else None

    def _export(self, model, example_input, out_path, *, precision, opset, input_names, output_names,
                calibration: Any = None, **_: Any) -> ExportResult:
        import torch

        from edgekd.export.litert_env import require_converter

        python = require_converter()
        int8 = precision == "int8"
        if int8 and calibration is None:
            raise EdgekdError("LiteRT int8 needs calibration inputs: PT2E calibrates its own ranges")
        with tempfile.TemporaryDirectory(prefix="edgekd-litert-") as scratch:
            program = Path(scratch) / "model.pt2"
            try:
                with torch.no_grad():
                    module = float_twin(model) if int8 else model.eval()
                    torch.export.save(torch.export.export(module, (example_input,)), program)
            except Exception as error:  # torch.export raises many types, with long messages
                raise EdgekdError(f"LiteRT: torch.export cannot trace {type(model).__name__}: "
                                  f"{first_line(error)}") from error
            written = Path(scratch) / "model.tflite"
            argv = [python, str(_CONVERTER), str(program), str(written)]
            if int8:
                np.save(Path(scratch) / "calibration.npy", np.asarray(calibration, dtype=np.float32))
                argv += ["--calibration", str(Path(scratch) / "calibration.npy")]
            facts = _run_converter(argv, type(model).__name__)
            with atomic_path(out_path) as tmp:
                shutil.copyfile(written, tmp)
        return ExportResult(
            backend=self.name, precision=precision, path=out_path, sha256=sha256_file(out_path),
            size_bytes=out_path.stat().st_size, opset=None,
            extra={"converter": f"litert-torch {facts.get('litert_torch', '?')} (torch.export)",
                   "input_shape": list(example_input.shape), "io": "float32",
                   **({"int8": _INT8_RECIPE} if int8 else {})},
        )


_INT8_RECIPE = {"quantizer": "litert_torch PT2EQuantizer, symmetric per-channel weights, static activations",
                "ranges": "PT2E calibration on the QAT model's weights", "io": "float32 (QUANTIZE/DEQUANTIZE inside)"}


def _run_converter(argv: list[str], model_name: str) -> dict:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgekdError(f"the LiteRT converter did not finish {model_name} in {CONVERT_TIMEOUT_S} s") from None
    except OSError as error:
        raise EdgekdError(f"cannot start the LiteRT converter {argv[0]}: {error.strerror or error}") from None
    if done.returncode != 0:
        from edgekd.export.litert_env import REPAIR_HINT

        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else "no message"
        repair = f"; {REPAIR_HINT}" if "ModuleNotFoundError" in last or "ImportError" in last else ""
        raise EdgekdError(f"LiteRT cannot convert {model_name} (exit {done.returncode}): {last}{repair}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}


def _interpreter(path: Path, *, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:  # a file that is not a .tflite
        raise EdgekdError(f"{path}: LiteRT cannot load it ({first_line(error)})") from None
    return interpreter


class LiteRtSession(Session):
    """A .tflite's default signature through ai-edge-litert's interpreter (XNNPACK on CPU), one call per batch."""

    runtime = "tflite"

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        if not LiteRtExporter().is_available():
            raise EdgekdError("the LiteRT runtime is not installed: pip install 'edgekd[litert]'")
        super().__init__(path)
        self.interpreter = _interpreter(path, threads=threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise EdgekdError(f"{path.name}: one signature is supported, the file has {len(signatures)}")
        key, signature = next(iter(signatures.items()))
        if len(signature["inputs"]) != 1:
            raise EdgekdError(f"{path.name}: one input is supported, the file has {len(signature['inputs'])}")
        self.runner = self.interpreter.get_signature_runner(key)
        self.input_name = signature["inputs"][0]
        self.outputs = tflite_output_order(signature["outputs"])
        self._shape = [int(d) for d in self.runner.get_input_details()[self.input_name]["shape"]]
        self.threads, self.precision = threads, precision

    @property
    def input_shape(self) -> list[int | str | None]:
        return self._shape

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        batch = self._shape[0] if self._shape else 1  # the batch is fixed at conversion
        return run_in_fixed_batches(array, batch, self._call)

    def _call(self, chunk: np.ndarray) -> list[np.ndarray]:
        result = self.runner(**{self.input_name: chunk})
        return [result[name] for name in self.outputs]

    def metadata(self) -> dict[str, str]:
        return {"edgekd.precision": self.precision}

    def settings(self) -> dict[str, Any]:
        from importlib import metadata

        return {"threads": self.threads, "delegate": "XNNPACK (default)", "inference_precision": "as stored",
                "version": metadata.version("ai-edge-litert")}
