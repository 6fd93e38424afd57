"""Whether a device measurement can be trusted: the clocks and throttle state the runner recorded before and after
timing (edgekd/device_runner/board.py `clock_state`), judged against the device's nominal clock.

Published Raspberry Pi and Jetson latencies often fail to reproduce because the board throttled (a weak supply,
heat) or ran below its clock (a governor, a power mode); a measurement that did is flagged, not dropped, and the
flag travels with the latency into `edgekd profile`'s table and JSON and the report.
"""

from __future__ import annotations

from typing import Any, Optional

# `vcgencmd get_throttled`: bits 0-3 hold now, bits 16-19 have held since boot (Raspberry Pi documentation).
PI_THROTTLE_BITS = {0x1: "under-voltage", 0x2: "ARM clock capped", 0x4: "throttled", 0x8: "soft temperature limit"}
SINCE_BOOT_SHIFT = 16
# A clock below this share of the nominal one reads as "ran below its nominal clock" (governors land a few % off).
BELOW_NOMINAL = 0.95


def judge(clocks: Optional[dict[str, Any]], nominal_mhz: Optional[int]) -> dict[str, Any]:
    """{"trusted", "flags", "notes", "clock_mhz", "nominal_mhz", "before", "after"} for one measurement. A Pi's own
    configured clock (`vcgencmd get_config arm_freq`) is its nominal one when it reports it."""
    clocks = clocks or {}
    before, after = clocks.get("before") or {}, clocks.get("after") or {}
    pi_before, pi_after = before.get("pi") or {}, after.get("pi") or {}
    nominal_mhz = pi_after.get("arm_freq_config_mhz") or nominal_mhz
    flags = _pi_flags(pi_before.get("throttled"), pi_after.get("throttled"))
    clock = _clock_after(after)
    if nominal_mhz and clock and clock < BELOW_NOMINAL * nominal_mhz:
        flags.append(f"ran at {clock} MHz, below the nominal {nominal_mhz} MHz")
    notes = []
    if (after.get("jetson") or {}).get("clocks_locked") is False:
        notes.append("jetson_clocks off: the governor sets the CPU clock")
    sticky = (pi_before.get("throttled") or 0) >> SINCE_BOOT_SHIFT
    if sticky:  # a throttle that came and went during the runs cannot be told from the earlier one
        notes.append(f"throttling had already occurred since boot (vcgencmd get_throttled "
                     f"{pi_before['throttled']:#x}): one during the timed runs that cleared again would not show; "
                     "reboot for a clean reading")
    return {"trusted": not flags, "flags": flags, "notes": notes, "clock_mhz": clock, "nominal_mhz": nominal_mhz,
            "before": before, "after": after, "recorded": bool(clocks)}


def _pi_flags(before: Optional[int], after: Optional[int]) -> list[str]:
    flags: list[str] = []
    seen: set[str] = set()
    for when, bits in (("before timing", before), ("after timing", after)):
        for bit, what in PI_THROTTLE_BITS.items():
            if bits and bits & bit and what not in seen:
                seen.add(what)
                flags.append(f"{what} {when} (vcgencmd get_throttled {bits:#x})")
    if before is not None and after is not None:
        new = (after >> SINCE_BOOT_SHIFT) & ~(before >> SINCE_BOOT_SHIFT)
        flags += [f"{what} during the timed runs" for bit, what in PI_THROTTLE_BITS.items() if new & bit]
    return flags


def _clock_after(after: dict[str, Any]) -> Optional[int]:
    """The CPU clock the timed runs ended at: the Pi firmware's ARM clock, else cpufreq's (read first, before the
    governor lowers it), else the fastest core in tegrastats (read last, about 100 ms later)."""
    pi_clock = (after.get("pi") or {}).get("arm_mhz")
    jetson_cores = (after.get("jetson") or {}).get("cpu_mhz") or []
    return pi_clock or after.get("cpu_mhz") or (max(jetson_cores) if jetson_cores else None)


def nominal_mhz(device: str, power_mode_line: Optional[str] = None) -> Optional[int]:
    """The device's nominal CPU clock: that of the power mode `nvpmodel -q` names when the spec knows it, else the
    spec's default mode, else its maximum clock; None for a device id the catalogue does not have."""
    from edgekd.devices import load_device
    from edgekd.errors import EdgekdError

    try:
        spec = load_device(device)
    except EdgekdError:
        return None
    named = [m for m in spec.power_modes if power_mode_line and m.name in power_mode_line.split()]
    mode = named[0] if named else spec.power_mode(None)
    ghz = (mode.cpu_max_ghz if mode is not None else None) or spec.cpu.max_clock_ghz.value
    return round(ghz * 1000)


def summary(check: Optional[dict[str, Any]]) -> str:
    """'' for a trusted (or unrecorded) measurement, else 'UNTRUSTED: flag; flag'."""
    if not check or check.get("trusted", True):
        return ""
    return "UNTRUSTED: " + "; ".join(check["flags"])
