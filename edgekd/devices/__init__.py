"""Device specs: the typed model of `devices/*.yaml` and its loader.

>>> from edgekd.devices import load_device, list_devices
>>> load_device("jetson-orin-nano-super").gpu.max_clock_mhz.value
1020.0
"""

from edgekd.devices.loader import devices_dir, list_devices, load_device
from edgekd.devices.spec import PRECISIONS, RUNTIMES, UNITS, DeviceSpec

__all__ = ["DeviceSpec", "load_device", "list_devices", "devices_dir", "RUNTIMES", "PRECISIONS", "UNITS"]
