"""The runner's modes (profile, smoke, verify, environment, exec) and its command line.

The result is the last stdout line, prefixed with RESULT_MARKER, so runtime chatter on stdout cannot break it.
Unlike local profiling, the process is fresh, so `cold_start_ms` includes the runtime's one-time start-up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from . import runtimes
from .board import clock_state, environment
from .common import RESULT_MARKER, RunnerError, import_runtime, rss_mb, usable_cores, verify


def _load(args: argparse.Namespace):
    return runtimes.load(args.runtime, args.model, args.threads, args.input_shape, args.precision)


def profile(args: argparse.Namespace) -> dict[str, object]:
    clocks_before = clock_state()
    before = rss_mb()
    start = time.perf_counter_ns()
    model = _load(args)
    model.run()
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    after_first = rss_mb()
    for _ in range(args.warmup):
        model.run()
    samples = []
    for _ in range(args.runs):
        tick = time.perf_counter_ns()
        model.run()
        samples.append((time.perf_counter_ns() - tick) / 1e6)
    clocks_after = clock_state()  # at once: the clock the timed runs ended at, before the governor lowers it
    rss = None if before is None else max(after_first, rss_mb()) - before
    return {"samples_ms": samples, "cold_start_ms": cold_ms, "peak_rss_mb": rss, "input_shape": model.shape,
            "precision": model.precision, "threads": args.threads, "settings": model.settings,
            "clocks": {"before": clocks_before, "after": clocks_after}}


def smoke(args: argparse.Namespace) -> dict[str, object]:
    """One inference; fails when an output holds NaN or Inf (a broken export or a bad runtime build)."""
    np = import_runtime("numpy")
    model = _load(args)
    outputs = [np.asarray(o) for o in model.run()]
    finite = all(bool(np.isfinite(o).all()) for o in outputs if o.dtype.kind == "f")
    if not finite:
        raise RunnerError("smoke", "the model produced NaN or Inf on a random input")
    return {"input_shape": model.shape, "output_shapes": [list(o.shape) for o in outputs]}


def run_command(args: argparse.Namespace) -> dict[str, object]:
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
    parser = argparse.ArgumentParser(prog="edgekd_runner")
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
        result: dict[str, object] = {"hashes": verify(dict(args.expect))}
        if args.model and args.model not in result["hashes"]:
            raise RunnerError("hash", f"no expected sha256 was given for {args.model}; refusing to run it")
        modes = {"profile": profile, "smoke": smoke, "exec": run_command}
        result.update(modes[args.mode](args) if args.mode in modes else {})
        result.update(ok=True, environment=environment(runtimes.packages()))
    except RunnerError as error:
        result = {"ok": False, "kind": error.kind, "error": str(error)}
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["ok"] else 3
