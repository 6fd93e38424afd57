"""Runs ON THE DEVICE: verify artifact hashes, then profile or smoke-test one model, and print one JSON line.

This file is copied to the device next to the artifact and started with the device's own python3, so it
must not import edgekd (or anything beyond the standard library until a mode needs numpy and a runtime).
It duplicates a little of edgekd.profile (input feed, CPU name) on purpose: the device has no edgekd.

    python3 remote_runner.py profile model.onnx --expect model.onnx=<sha256> --runtime onnxruntime \
        --threads 4 --warmup 10 --runs 100
    python3 remote_runner.py verify --expect a.onnx=<sha256> --expect b.xml=<sha256>
    python3 remote_runner.py exec --expect a.onnx=<sha256> -- trtexec --onnx=a.onnx ...

The result is the last stdout line, prefixed with RESULT_MARKER, so runtime chatter on stdout cannot break it.
Timing matches edgekd.profile.local: `run()` only, input built beforehand, perf_counter_ns, seed 0 normal input.
Unlike local profiling, the process is fresh, so `cold_start_ms` includes the runtime's one-time start-up.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata

RESULT_MARKER = "EDGEKD-RESULT "
INPUT_SEED = 0
_PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "ncnn", "executorch",
             "ai-edge-litert")
_CPUINFO_KEYS = ("model name", "Model", "Hardware", "cpu model", "Processor")


class RunnerError(Exception):
    """A refusal with a kind the caller maps to its own error ("hash", "runtime", "input")."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------- hashes


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(expected: dict[str, str]) -> dict[str, str]:
    """Refuse unless every file has exactly the hash the sender computed before upload."""
    for name, want in expected.items():
        if not os.path.isfile(name):
            raise RunnerError("hash", f"{name} is missing on the device")
        have = sha256_file(name)
        if have != want:
            raise RunnerError("hash", f"sha256 mismatch for {name}: expected {want[:16]}…, device has {have[:16]}…")
    return expected


# ---------------------------------------------------------------- environment


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _command(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def cpu_model() -> str:
    fields: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in _CPUINFO_KEYS:
        if fields.get(key):
            return fields[key]
    return _read("/proc/device-tree/model").strip("\x00\n ") or platform.machine() or "unknown"


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _cpu_clocks() -> dict[str, object]:
    # Latency on a board depends on the governor and the clock it is held at as much as on the model.
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    khz = {k: _read(base + k).strip() for k in ("scaling_cur_freq", "scaling_max_freq")}
    return {
        "governor": _read(base + "scaling_governor").strip() or None,
        "cur_mhz": int(khz["scaling_cur_freq"]) // 1000 if khz["scaling_cur_freq"].isdigit() else None,
        "max_mhz": int(khz["scaling_max_freq"]) // 1000 if khz["scaling_max_freq"].isdigit() else None,
    }


def _l4t_release(text: str) -> str | None:
    # "# R36 (release), REVISION: 3.0, GCID: ..." -> "36.3.0"
    head = text.splitlines()[0] if text else ""
    if not head.startswith("# R"):
        return None
    major = head[3:].split(" ", 1)[0]
    revision = head.split("REVISION:", 1)[1].split(",", 1)[0].strip() if "REVISION:" in head else "0"
    return f"{major}.{revision}"


def _gpu_clock_mhz() -> int | None:
    root = "/sys/class/devfreq"
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if "gpu" in name or "ga10b" in name or "gv11b" in name or "gp10b" in name:
            value = _read(f"{root}/{name}/cur_freq").strip()
            if value.isdigit():
                return int(value) // 1_000_000
    return None


def jetson_facts() -> dict[str, object] | None:
    """JetPack/L4T, TensorRT, power mode and GPU clock; None on anything that is not a Jetson."""
    release = _read("/etc/nv_tegra_release")
    if not release and "jetson" not in _read("/proc/device-tree/model").lower():
        return None
    dpkg = ["dpkg-query", "-W", "-f", "${Version}"]
    return {
        "l4t": _l4t_release(release),
        "jetpack": _command(dpkg + ["nvidia-jetpack"]) or None,
        "tensorrt": _command(dpkg + ["tensorrt"]) or _command(dpkg + ["libnvinfer-bin"]) or None,
        "power_mode": " ".join(_command(["nvpmodel", "-q"]).split()) or None,
        "gpu_mhz": _gpu_clock_mhz(),
    }


def _vcgencmd(*args: str) -> str:
    return _command(["vcgencmd", *args])


def _after_equals(text: str) -> str:
    # vcgencmd answers "throttled=0x50005", "frequency(0)=2400023808", "temp=54.8'C"
    return text.partition("=")[2].strip()


def pi_clocks() -> dict[str, object] | None:
    """Raspberry Pi firmware's view: throttle bits, the ARM clock and the SoC temperature; None without vcgencmd."""
    if shutil.which("vcgencmd") is None:
        return None
    # the clock first: it is what the timed runs ended at, and the governor lowers it soon after
    arm, throttled, temp, configured = (_after_equals(_vcgencmd(*a)) for a in (
        ("measure_clock", "arm"), ("get_throttled",), ("measure_temp",), ("get_config", "arm_freq")))
    try:
        throttled_bits = int(throttled, 16) if throttled else None
    except ValueError:
        throttled_bits = None
    return {"throttled": throttled_bits,
            "arm_mhz": int(arm) // 1_000_000 if arm.isdigit() else None,
            "temp_c": _number(temp.rstrip("'C")),
            "arm_freq_config_mhz": int(configured) if configured.isdigit() else None}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _tegrastats_line() -> str:
    """One line of tegrastats (it prints one per interval until stopped)."""
    if shutil.which("tegrastats") is None:
        return ""
    try:
        process = subprocess.Popen(["tegrastats", "--interval", "100"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    except OSError:
        return ""

    def stop() -> None:  # the whole group: a wrapper script's child would keep the pipe open
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(5.0, stop)  # a tegrastats that prints nothing must not hang the runner
    timer.start()
    try:
        return (process.stdout.readline() if process.stdout else "").strip()
    finally:
        timer.cancel()
        stop()
        process.wait(timeout=5)


def parse_tegrastats(line: str) -> dict[str, object]:
    """CPU clocks (MHz per online core), the GPU clock and the temperatures from one tegrastats line, e.g.
    'RAM 2102/7620MB ... CPU [12%@1510,off,8%@1510] EMC_FREQ 0% GR3D_FREQ 0%@[305] cpu@47.2C soc2@45.5C'."""
    facts: dict[str, object] = {}
    words = line.split()
    for i, word in enumerate(words):
        if word == "CPU" and i + 1 < len(words) and words[i + 1].startswith("["):
            cores = words[i + 1].strip("[]").split(",")
            facts["cpu_mhz"] = [int(c.split("@")[1]) for c in cores if "@" in c and c.split("@")[1].isdigit()]
        elif word == "GR3D_FREQ" and i + 1 < len(words) and "@" in words[i + 1]:
            mhz = words[i + 1].split("@")[1].strip("[]").split(",")[0]
            facts["gpu_mhz"] = int(mhz) if mhz.isdigit() else None
        elif "@" in word and word.endswith("C") and not word.startswith("["):
            name, _, value = word.partition("@")
            temp = _number(value[:-1])
            if temp is not None and name.replace("_", "").isalnum():
                facts.setdefault("temps_c", {})[name] = temp
    return facts


def _clocks_locked() -> bool | None:
    """Whether every online CPU's minimum clock equals its maximum: what jetson_clocks does (read without root)."""
    base = "/sys/devices/system/cpu"
    pairs = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if name.startswith("cpu") and name[3:].isdigit():
            low, high = (_read(f"{base}/{name}/cpufreq/scaling_{k}_freq").strip() for k in ("min", "max"))
            if low and high:
                pairs.append(low == high)
    return all(pairs) if pairs else None


def clock_state() -> dict[str, object]:
    """The clocks and throttle state now: taken before warm-up and right after the timed runs."""
    state: dict[str, object] = {"cpu_mhz": _cpu_clocks()["cur_mhz"]}
    pi = pi_clocks()
    if pi is not None:
        state["pi"] = pi
    if os.path.exists("/etc/nv_tegra_release") or shutil.which("tegrastats"):  # cheap: no dpkg queries here
        state["jetson"] = {"power_mode": " ".join(_command(["nvpmodel", "-q"]).split()) or None,
                           "clocks_locked": _clocks_locked(), **parse_tegrastats(_tegrastats_line())}
    return state


def usable_cores() -> int:
    # Containers and taskset pin a process to fewer cores than the board has; latency depends on this one.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def environment() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "board": _read("/proc/device-tree/model").strip("\x00\n ") or None,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": _versions(),
        "cpu_clock": _cpu_clocks(),
        "jetson": jetson_facts(),
    }


# ---------------------------------------------------------------- runtimes


def _import(module: str):
    try:
        return importlib.import_module(module)  # the submodule itself for a dotted name
    except ImportError:
        raise RunnerError("runtime", f"python module {module!r} is not installed on the device") from None


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return None


def resolve_shape(declared: list, requested: list[int] | None) -> list[int]:
    """The requested shape, or the model's own with a symbolic batch taken as 1 (edge inference is batch 1)."""
    if requested:
        if len(requested) != len(declared) or any(isinstance(d, int) and d > 0 and d != r
                                                  for d, r in zip(declared, requested)):
            raise RunnerError("input", f"the model takes input shape {declared}, profiling asked for {requested}")
        return requested
    shape = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else None) for i, d in enumerate(declared)]
    if None in shape:
        raise RunnerError("input", f"the model input {declared} has dynamic sizes; pass --input-shape")
    return shape


class OrtModel:
    name = "onnxruntime"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        ort, np = _import("onnxruntime"), _import("numpy")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise RunnerError("input", f"profiling supports one input, the model has {len(inputs)}")
        dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
        if inputs[0].type not in dtypes:
            raise RunnerError("input", f"input type {inputs[0].type} is not supported for profiling")
        self.shape = resolve_shape(list(inputs[0].shape), shape)
        data = np.random.default_rng(INPUT_SEED).standard_normal(self.shape).astype(dtypes[inputs[0].type])
        self.feed = {inputs[0].name: data}
        self.precision = self.session.get_modelmeta().custom_metadata_map.get("edgekd.precision", "unknown")
        self.settings = {"provider": "CPUExecutionProvider", "threads": threads, "inference_precision": "as stored",
                         "version": ort.__version__}

    def run(self) -> list:
        return self.session.run(None, self.feed)


class OpenVinoModel:
    name = "openvino"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        ov, np = _import("openvino"), _import("numpy")
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
        dtype = model.inputs[0].get_element_type().to_dtype()
        self.feed = np.random.default_rng(INPUT_SEED).standard_normal(self.shape).astype(dtype)
        self.precision = precision  # IR files do not record it; the caller states it
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.settings = {"device": "CPU", "threads": threads, "version": ov.get_version(),
                         "inference_precision": hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)}

    def run(self) -> list:
        return list(self.request.infer([self.feed]).values())


class NcnnModel:
    """An ncnn .param/.bin pair through ncnn's Python binding, one sample per call (ncnn blobs have no batch)."""

    name = "ncnn"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        ncnn, np = _import("ncnn"), _import("numpy")
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        if precision == "fp32":  # as edgekd.export.ncnn's sessions
            pin_ncnn_fp32(self.net.opt)
        weights = os.path.splitext(path)[0] + ".bin"
        if self.net.load_param(path) != 0 or self.net.load_model(weights) != 0:
            raise RunnerError("runtime", f"ncnn cannot load {os.path.basename(path)} with {os.path.basename(weights)}")
        names = list(self.net.input_names())
        if len(names) != 1:
            raise RunnerError("input", f"profiling supports one input, the model has {len(names)}")
        self.input = names[0]
        self.outputs = ncnn_output_order(self.net.output_names())
        self.shape = resolve_shape(ncnn_input_shape(_read(path)), shape)
        if self.shape[0] != 1:
            raise RunnerError("input", f"ncnn runs one sample at a time: the batch must be 1, got {self.shape[0]}")
        sample = np.random.default_rng(INPUT_SEED).standard_normal(self.shape[1:]).astype(np.float32)
        self.feed = ncnn.Mat(np.ascontiguousarray(sample))
        self.precision = precision
        self.settings = {"threads": threads, "version": ncnn.__version__,
                         "inference_precision": "f32" if precision == "fp32" else "ncnn default"}

    def run(self) -> list:
        np = _import("numpy")
        extractor = self.net.create_extractor()
        extractor.input(self.input, self.feed)
        return [np.array(extractor.extract(name)[1])[None] for name in self.outputs]


# ncnn helpers, here because this script runs on the device without edgekd; edgekd.export.ncnn imports them.


def pin_ncnn_fp32(opt) -> None:
    """ncnn's default keeps activations in fp16 where the CPU can: pin fp32 storage and arithmetic throughout."""
    for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(opt, option, False)


def ncnn_output_order(names) -> list:
    """pnnx names outputs out0, out1, ... in the ONNX graph's order; keep that order (not the string order)."""
    return sorted(names, key=lambda n: (int(n[3:]), n) if n.startswith("out") and n[3:].isdigit() else (1 << 30, n))


def ncnn_input_shape(param: str) -> list:
    """[1, c, h, w] from a .param's Input layer `0=w 1=h 2=c` (edgekd writes them); unknown sizes (None) when
    absent: an ncnn blob has no batch dimension, so the batch is 1."""
    for line in param.splitlines():
        fields = line.split()
        if fields and fields[0] == "Input":
            values = dict(field.split("=", 1) for field in fields if "=" in field)
            if all(key in values for key in ("0", "1", "2")):
                return [1, int(values["2"]), int(values["1"]), int(values["0"])]
    return [1, None, None, None]


class ExecuTorchModel:
    """An ExecuTorch program's `forward` (XNNPACK delegate); its input shape is fixed in the program."""

    name = "executorch"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        np, torch = _import("numpy"), _import("torch")
        runtime = _import("executorch.runtime")
        portable = _import("executorch.extension.pybindings.portable_lib")
        if threads:
            portable._unsafe_reset_threadpool(threads)  # XNNPACK's pool is process-wide
        self.method = runtime.Runtime.get().load_program(path).load_method("forward")
        meta = self.method.metadata
        if meta.num_inputs() != 1:
            raise RunnerError("input", f"profiling supports one input, the program has {meta.num_inputs()}")
        self.shape = resolve_shape(list(meta.input_tensor_meta(0).sizes()), shape)
        sample = np.random.default_rng(INPUT_SEED).standard_normal(self.shape).astype(np.float32)
        self.feed = [torch.from_numpy(sample)]
        self.precision = precision
        self.settings = {"threads": portable._threadpool_get_thread_count(), "delegate": "XNNPACK",
                         "version": metadata.version("executorch"), "inference_precision": "as stored"}

    def run(self) -> list:
        return [output.numpy() for output in self.method.execute(self.feed)]


class TfliteModel:
    """A .tflite's default signature through ai-edge-litert's interpreter (XNNPACK on CPU)."""

    name = "tflite"

    def __init__(self, path: str, threads: int, shape: list[int] | None, precision: str) -> None:
        np, litert = _import("numpy"), _import("ai_edge_litert.interpreter")
        interpreter = litert.Interpreter(model_path=path, num_threads=threads)
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise RunnerError("input", f"profiling supports one signature, the file has {len(signatures)}")
        key, signature = next(iter(signatures.items()))
        if len(signature["inputs"]) != 1:
            raise RunnerError("input", f"profiling supports one input, the file has {len(signature['inputs'])}")
        self.runner = interpreter.get_signature_runner(key)
        name = signature["inputs"][0]
        self.shape = resolve_shape([int(d) for d in self.runner.get_input_details()[name]["shape"]], shape)
        sample = np.random.default_rng(INPUT_SEED).standard_normal(self.shape).astype(np.float32)
        self.feed = {name: sample}
        self.outputs = tflite_output_order(signature["outputs"])
        self.precision = precision
        self.settings = {"threads": threads, "delegate": "XNNPACK (default)", "inference_precision": "as stored",
                         "version": metadata.version("ai-edge-litert")}

    def run(self) -> list:
        result = self.runner(**self.feed)
        return [result[name] for name in self.outputs]


def tflite_output_order(names) -> list:
    """litert-torch names a signature's outputs output_0, output_1, ... in the module's order; keep that order."""
    def key(name):
        tail = name.rsplit("_", 1)[-1]
        return (int(tail), name) if tail.isdigit() else (1 << 30, name)
    return sorted(names, key=key)


RUNTIMES = {"onnxruntime": OrtModel, "openvino": OpenVinoModel, "ncnn": NcnnModel, "executorch": ExecuTorchModel,
            "tflite": TfliteModel}


def load(args: argparse.Namespace):
    runtime, path = args.runtime, args.model
    if runtime not in RUNTIMES:
        raise RunnerError("runtime", f"runtime {runtime!r} is not supported by the runner; use {sorted(RUNTIMES)}")
    try:
        return RUNTIMES[runtime](path, args.threads, args.input_shape, args.precision)
    except RunnerError:
        raise
    except Exception as exc:  # runtimes raise their own types for unreadable graphs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunnerError("runtime", f"{runtime} cannot load {os.path.basename(path)}: {first}") from None


# ---------------------------------------------------------------- modes


def profile(args) -> dict[str, object]:
    clocks_before = clock_state()
    before = _rss_mb()
    start = time.perf_counter_ns()
    model = load(args)
    model.run()
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    after_first = _rss_mb()
    for _ in range(args.warmup):
        model.run()
    samples = []
    for _ in range(args.runs):
        tick = time.perf_counter_ns()
        model.run()
        samples.append((time.perf_counter_ns() - tick) / 1e6)
    clocks_after = clock_state()  # at once: the clock the timed runs ended at, before the governor lowers it
    rss = None if before is None else max(after_first, _rss_mb()) - before
    return {"samples_ms": samples, "cold_start_ms": cold_ms, "peak_rss_mb": rss, "input_shape": model.shape,
            "precision": model.precision, "threads": args.threads, "settings": model.settings,
            "clocks": {"before": clocks_before, "after": clocks_after}}


def smoke(args) -> dict[str, object]:
    """One inference; fails when an output holds NaN or Inf (a broken export or a bad runtime build)."""
    np = _import("numpy")
    model = load(args)
    outputs = [np.asarray(o) for o in model.run()]
    finite = all(bool(np.isfinite(o).all()) for o in outputs if o.dtype.kind == "f")
    if not finite:
        raise RunnerError("smoke", "the model produced NaN or Inf on a random input")
    return {"input_shape": model.shape, "output_shapes": [list(o.shape) for o in outputs]}


def run_command(args) -> dict[str, object]:
    """Run a tool the device has (trtexec) and time it here, so SSH latency is not part of the figure.
    JetPack installs trtexec in /usr/src/tensorrt/bin, which is not on PATH."""
    command = list(args.command)
    if command and command[0] == "trtexec" and shutil.which("trtexec") is None:
        command[0] = "/usr/src/tensorrt/bin/trtexec"
    start = time.perf_counter_ns()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except FileNotFoundError:
        raise RunnerError("runtime", f"{command[0]} is not installed on the device") from None
    except subprocess.TimeoutExpired:
        raise RunnerError("runtime", f"{command[0]} ran longer than {args.timeout} s") from None
    return {"returncode": done.returncode, "wall_ms": (time.perf_counter_ns() - start) / 1e6,
            "output": done.stdout + done.stderr}


def _shape(text: str) -> list[int]:
    return [int(part) for part in text.replace("x", ",").split(",") if part.strip()]


def _expect(text: str) -> tuple[str, str]:
    name, sep, digest = text.rpartition("=")
    if not sep or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"--expect wants NAME=SHA256, got {text!r}")
    return name, digest.lower()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="remote_runner")
    argv, command = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser.add_argument("mode", choices=("profile", "smoke", "verify", "environment", "exec"))
    parser.add_argument("model", nargs="?")
    parser.add_argument("--expect", type=_expect, action="append", default=[])
    parser.add_argument("--runtime", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--input-shape", type=_shape, default=None)
    parser.add_argument("--precision", default="fp32", help="for OpenVINO IR, which does not record it")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    args.command = command
    if args.mode in ("profile", "smoke") and not args.model:
        parser.error(f"{args.mode} needs a model file")
    if args.mode == "exec" and not command:
        parser.error("exec needs a command after --")
    args.threads = args.threads or usable_cores()
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        result = {"hashes": verify(dict(args.expect))}
        if args.model and args.model not in result["hashes"]:
            raise RunnerError("hash", f"no expected sha256 was given for {args.model}; refusing to run it")
        modes = {"profile": profile, "smoke": smoke, "exec": run_command}
        result.update(modes[args.mode](args) if args.mode in modes else {})
        result.update(ok=True, environment=environment())
    except RunnerError as error:
        result = {"ok": False, "kind": error.kind, "error": str(error)}
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["ok"] else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
