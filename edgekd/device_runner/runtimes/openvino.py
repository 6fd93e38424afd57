"""OpenVINO's CPU plugin on a static shape, latency hint."""

from __future__ import annotations

from ..common import RunnerError, import_runtime, random_input, resolve_shape

PACKAGES = ("openvino",)


class Model:
    name = "openvino"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        ov = import_runtime("openvino")
        core = ov.Core()
        model = core.read_model(path)
        if len(model.inputs) != 1:
            raise RunnerError("input", f"profiling supports one input, the model has {len(model.inputs)}")
        declared = [d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape()]
        self.shape = resolve_shape(declared, shape)
        model.reshape(self.shape)  # OpenVINO compiles faster and runs faster on a static shape
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision in ("fp32", "int8"):  # as edgekd.profile.sessions: keep the plugin from running bf16
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = core.compile_model(model, "CPU", config)
        self.request = compiled.create_infer_request()
        self.feed = random_input(self.shape, model.inputs[0].get_element_type().to_dtype())
        self.precision = precision  # IR files do not record it; the caller states it
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.settings = {"device": "CPU", "threads": threads, "version": ov.get_version(),
                         "inference_precision": hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)}

    def run(self) -> list:
        return list(self.request.infer([self.feed]).values())
