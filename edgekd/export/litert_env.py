"""The Python environment the LiteRT converter runs in, apart from edgekd's own.

litert-torch needs jax, transformers and an xdsl that pins typing-extensions below what pydantic and cattrs
need here; installed next to edgekd it downgrades them. So edgekd keeps it in an environment of its own, made
by `edgekd setup litert`: a venv that holds litert-torch and its dependencies and reaches edgekd's environment
only after its own packages (a .pth file at the end of its path), so torch and numpy are not installed twice and
its pinned packages win inside it. The converter runs there as a script (edgekd.export.litert_convert); the
.tflite runtime (ai-edge-litert) has no such conflict and lives in edgekd's environment (`edgekd[litert]`).

Which interpreter converts, first found:
1. `EDGEKD_LITERT_PYTHON`, a Python the user names (their own env with litert-torch);
2. the managed environment, `<edgekd's prefix>/edgekd-litert` (or `EDGEKD_LITERT_ENV`);
3. edgekd's own interpreter, when litert-torch is importable in it (a user who accepted the downgrades).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from typing import Callable, Optional

from edgekd.errors import EdgekdError

CONVERTER_REQUIREMENTS = ("litert-torch>=0.10,<0.11",)
SETUP_HINT = "run `edgekd setup litert` (a separate environment for litert-torch; docs/export.md, LiteRT)"
# A converter that cannot import a module: the layered environment lost a package it took from edgekd's.
REPAIR_HINT = "edgekd setup litert --force makes the converter's environment anew"
_PTH_NAME = "zz-edgekd-parent.pth"  # sorts last: the environment's own packages come first


def managed_env() -> Path:
    override = os.environ.get("EDGEKD_LITERT_ENV")
    return Path(override) if override else Path(sys.prefix) / "edgekd-litert"


def _env_python(env: Path) -> Path:
    return env / "bin" / "python"


def converter_python() -> Optional[tuple[str, str]]:
    """(interpreter, where it came from) for the converter, or None when there is none."""
    named = os.environ.get("EDGEKD_LITERT_PYTHON")
    if named:
        return named, "EDGEKD_LITERT_PYTHON"
    managed = _env_python(managed_env())
    if managed.exists() and (managed_env() / ".edgekd-ready").exists():
        return str(managed), f"managed environment {managed_env()}"
    if importlib.util.find_spec("litert_torch") is not None:
        return sys.executable, "edgekd's environment"
    return None


def require_converter() -> str:
    found = converter_python()
    if found is None:
        raise EdgekdError(f"the LiteRT converter (litert-torch) is not set up: {SETUP_HINT}")
    return found[0]


def create(env: Optional[Path] = None, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Make the managed environment: a venv layered over edgekd's, with litert-torch installed into it.
    `force` makes it anew (after edgekd's environment lost a package the converter used from it). It is built
    beside its final place and moved there only once pip succeeded, so a failed build leaves the old one working."""
    env = Path(env or managed_env())
    ready = env / ".edgekd-ready"
    if ready.exists() and not force:
        log(f"the LiteRT converter environment is ready: {env}")
        return env
    if env.exists() and (not env.is_dir() or (any(env.iterdir()) and not (env / "pyvenv.cfg").exists())):
        raise EdgekdError(f"{env} exists and is not a Python environment; edgekd will not replace it "
                          "(set EDGEKD_LITERT_ENV to an empty or new folder)")
    building = env.with_name(env.name + ".building")
    log(f"creating {env} (litert-torch and its dependencies, about 900 MB)")
    try:
        shutil.rmtree(building, ignore_errors=True)
        venv.EnvBuilder(with_pip=True).create(building)
        _install(building, log)
        (building / ".edgekd-ready").write_text("\n".join(CONVERTER_REQUIREMENTS) + "\n")
        _replace(env, building)
    except OSError as error:
        raise EdgekdError(f"cannot create {env}: {error.strerror or error}") from None
    except subprocess.CalledProcessError as error:
        raise EdgekdError(f"cannot create {env}: {' '.join(map(str, error.cmd))} failed "
                          f"(exit {error.returncode})") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log(f"the LiteRT converter environment is ready: {env}")
    return env


def _install(env: Path, log: Callable[[str], None]) -> None:
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(_env_python(env)), "-c", where], check=True, capture_output=True,
                               text=True).stdout.strip())
    (site / _PTH_NAME).write_text("\n".join(_parent_paths()) + "\n")
    command = [str(_env_python(env)), "-m", "pip", "install", "--quiet", *CONVERTER_REQUIREMENTS]
    log(" ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
        raise EdgekdError(f"installing litert-torch into {env} failed: {tail[-1] if tail else 'pip failed'}")


def _replace(env: Path, built: Path) -> None:
    """Move the new environment into place; the old one (a venv, checked by the caller) goes only after."""
    old = env.with_name(env.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if env.exists():
        env.rename(old)
    built.rename(env)
    shutil.rmtree(old, ignore_errors=True)


def _parent_paths() -> list[str]:
    """edgekd's own site-packages, for the layered environment (the converter script imports no edgekd)."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(paths))


def describe() -> str:
    """One line for `doctor`."""
    found = converter_python()
    if found is None:
        return f"not set up: {SETUP_HINT}"
    return f"{found[0]} ({found[1]})"
