"""Import Ultralytics with every network feature off: no online checks, no pip auto-install, no telemetry.

Ultralytics decides at import time whether it is online (a DNS lookup), and may later pip-install missing
requirements or send usage events. edgekd promises neither: the environment switches are set before the first
import, and the module-level flags are switched off as well in case Ultralytics was imported earlier by the user.
"""

from __future__ import annotations

import os
from types import ModuleType

from edgekd.errors import EdgekdError

INSTALL_HINT = "pip install 'edgekd[yolo]'"
# Forced, not defaults: an edgekd run never downloads or installs anything behind the user's back.
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}


def require_ultralytics() -> ModuleType:
    """The `ultralytics` module, imported offline; EdgekdError (exit 2) with the install line when it is missing.

    >>> ultralytics = require_ultralytics()
    >>> ultralytics.__version__
    """
    os.environ.update(OFFLINE_ENV)
    os.environ.setdefault("YOLO_VERBOSE", "0")  # its per-call logging would drown edgekd's own output
    try:
        import ultralytics
    except ImportError:
        raise EdgekdError(f"this command needs Ultralytics (AGPL-3.0, an optional extra): {INSTALL_HINT}") from None
    _switch_off_network()
    _restore_pil_open()
    return ultralytics


def ultralytics_version() -> str | None:
    """The installed Ultralytics version, without importing it (None when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("ultralytics")
    except metadata.PackageNotFoundError:
        return None


def _switch_off_network() -> None:
    # The same switches as the environment variables, for a process that imported Ultralytics before edgekd did.
    # Where each flag lives differs between Ultralytics versions, so each is set only where it exists.
    import importlib

    modules = []
    for name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    for module in modules:
        for flag in ("ONLINE", "AUTOINSTALL"):
            if hasattr(module, flag):
                setattr(module, flag, False)
        tracker = getattr(module, "events", None)  # the usage-event sender (an `Events` instance)
        if hasattr(tracker, "enabled"):
            tracker.enabled = False


def _restore_pil_open() -> None:
    """Undo Ultralytics' process-wide replacement of PIL's `Image.open`.

    Its replacement tries to install HEIF support on the first file PIL cannot identify and, with installs off,
    raises ModuleNotFoundError instead of PIL's UnidentifiedImageError: importing the extra would change how every
    other part of the process reports an unreadable image. edgekd never hands Ultralytics an image file.
    """
    try:
        from ultralytics.utils import patches
    except ImportError:
        return
    from PIL import Image

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original
