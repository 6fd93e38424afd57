"""The device's environment and its clock and throttle state, read with the board's own tools.

Latency on a board depends on the governor, the clock it is held at and whether it throttled as much as on the
model; edgekd.profile.clock_check judges what `clock_state` records before and after the timed runs.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import threading
from importlib import metadata

from .common import command_output, number, read_text, usable_cores

_CPUINFO_KEYS = ("model name", "Model", "Hardware", "cpu model", "Processor")
_BASE_PACKAGES = ("numpy", "tensorrt")  # tensorrt: trtexec runs through `exec`, not a runtimes/ file


def cpu_model() -> str:
    fields: dict[str, str] = {}
    for line in read_text("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in _CPUINFO_KEYS:
        if fields.get(key):
            return fields[key]
    return read_text("/proc/device-tree/model").strip("\x00\n ") or platform.machine() or "unknown"


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _cpu_clocks() -> dict[str, object]:
    # Latency on a board depends on the governor and the clock it is held at as much as on the model.
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    khz = {k: read_text(base + k).strip() for k in ("scaling_cur_freq", "scaling_max_freq")}
    return {
        "governor": read_text(base + "scaling_governor").strip() or None,
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
            value = read_text(f"{root}/{name}/cur_freq").strip()
            if value.isdigit():
                return int(value) // 1_000_000
    return None


def jetson_facts() -> dict[str, object] | None:
    """JetPack/L4T, TensorRT, power mode and GPU clock; None on anything that is not a Jetson."""
    release = read_text("/etc/nv_tegra_release")
    if not release and "jetson" not in read_text("/proc/device-tree/model").lower():
        return None
    dpkg = ["dpkg-query", "-W", "-f", "${Version}"]
    return {
        "l4t": _l4t_release(release),
        "jetpack": command_output(dpkg + ["nvidia-jetpack"]) or None,
        "tensorrt": command_output(dpkg + ["tensorrt"]) or command_output(dpkg + ["libnvinfer-bin"]) or None,
        "power_mode": " ".join(command_output(["nvpmodel", "-q"]).split()) or None,
        "gpu_mhz": _gpu_clock_mhz(),
    }


def _vcgencmd(*args: str) -> str:
    return command_output(["vcgencmd", *args])


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
            "temp_c": number(temp.rstrip("'C")),
            "arm_freq_config_mhz": int(configured) if configured.isdigit() else None}


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
            temp = number(value[:-1])
            if temp is not None and name.replace("_", "").isalnum():
                facts.setdefault("temps_c", {})[name] = temp
    return facts


def _clocks_locked() -> bool | None:
    """Whether every online CPU's minimum clock equals its maximum: what jetson_clocks does (read without root)."""
    base = "/sys/devices/system/cpu"
    pairs = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if name.startswith("cpu") and name[3:].isdigit():
            low, high = (read_text(f"{base}/{name}/cpufreq/scaling_{k}_freq").strip() for k in ("min", "max"))
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
        state["jetson"] = {"power_mode": " ".join(command_output(["nvpmodel", "-q"]).split()) or None,
                           "clocks_locked": _clocks_locked(), **parse_tegrastats(_tegrastats_line())}
    return state


def environment(runtime_packages: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "board": read_text("/proc/device-tree/model").strip("\x00\n ") or None,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": _versions(_BASE_PACKAGES + runtime_packages),
        "cpu_clock": _cpu_clocks(),
        "jetson": jetson_facts(),
    }
