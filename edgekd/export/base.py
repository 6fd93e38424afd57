"""The backend contract: one registered object per runtime edgekd ships files to.

A backend owns everything about its runtime: the exporter and its capability table (the precisions it
produces, those it refuses and why), the runtime that executes its files and how to open a session on
this host (parity checks and timing share it), its file suffixes, the modules and pip extra it needs, the
name the on-device runner knows it by, and the int8 placement its files start from. Everything else —
the recipe schema, the CLI, `doctor`, profiling local and remote, the report — reads the registry in
`edgekd.export` instead of spelling a runtime's name (docs/decisions.md, "Adding a backend").

The public `export()` refuses what the backend cannot do — with the reason — instead of quietly
producing something else (a request for int8 never comes back as fp32).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from edgekd.errors import EdgekdError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportResult:
    """What an export wrote: enough to find, verify and describe the file later."""

    backend: str
    precision: str
    path: Path
    sha256: str
    size_bytes: int
    opset: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


class Exporter(ABC):
    """One backend. Instances are registered in `edgekd.export.BACKENDS` (alias `EXPORTERS`).

    >>> from edgekd.export import BACKENDS
    >>> result = BACKENDS.get("onnx").export(model, torch.zeros(1, 3, 64, 64), "runs/x/student.onnx")
    """

    name: str = ""  # the recipe's export.backends key and `--backend`
    # Where the backend comes among the others: tables, CLI choices and the default profile runtimes follow it.
    listing_order: int = 100
    runtime: str = ""  # the runtime that executes what this backend writes: export.deploy and profile.runtimes keys
    precisions: tuple[str, ...] = ()
    # Precisions this backend could be asked for but does not produce, each with the reason.
    refused: dict[str, str] = {}
    default_precisions: tuple[str, ...] = ()  # what a recipe exports when it does not say
    deploy_default: str = "auto"  # the recipe's export.deploy default for this runtime
    file_suffix: str = ""
    companion_suffixes: tuple[str, ...] = ()  # files that must travel beside the primary one (OpenVINO's .bin)
    # Python modules the backend needs, and the pip extra that installs them (None: a core dependency).
    requires: tuple[str, ...] = ()
    extra_name: Optional[str] = None
    doctor_modules: tuple[str, ...] = ()  # distributions `doctor` reports the versions of
    # int8: the ONNX placement its file is made from (edgekd.export.int8_graph): "onnxruntime" or "explicit".
    int8_placement: str = "explicit"
    # The runtime the device runner times this backend's files under (its module edgekd/device_runner/runtimes/
    # NAME.py); None when the device route is another (TensorRT: trtexec).
    remote_runner: Optional[str] = None
    # Its files run on a CPU session on any host where its modules are installed (parity checks and timing
    # here); False for a runtime that needs the device (TensorRT).
    host_cpu: bool = False
    # File suffixes the runtime executes, the backend's own first (OpenVINO also reads ONNX directly).
    reads_suffixes: tuple[str, ...] = ()
    # int8: the backend quantizes the model itself and needs the calibration inputs (`calibration=` in export)
    calibrates_int8: bool = False

    def runs_here(self) -> bool:
        """Whether this host can execute the backend's files now (parity checks and timing): a CPU runtime whose
        modules are installed."""
        return self.host_cpu and self.is_available()

    def open_session(self, path: Path, *, threads: int, precision: str, static_shape: Optional[Sequence[int]] = None,
                     arithmetic: str = "timed") -> Any:
        """A loaded model on this host's CPU (`edgekd.profile.sessions.Session`); `arithmetic` as in
        `edgekd.profile.sessions.open_session`."""
        raise EdgekdError(f"{self.runtime} cannot run on this host: {self.missing_reason() or 'no local session'}")

    def declared_input(self, path: Path) -> Optional[list]:
        """The input dims a file of this backend declares (ints; strings or None for dynamic sizes), read without
        a runtime; EdgekdError when the file is not of this format. None: the format is not read here."""
        return None

    def profile_on_device(self, files: Any, target: Any, settings: Any, options: Any) -> Any:
        """Time `files` on a device over SSH when the runner script does not run this runtime (`remote_runner`
        None); a backend with its own device route (TensorRT: trtexec) overrides this."""
        raise EdgekdError(f"{self.runtime} has no device profiling route")

    def device_bundle(self, onnx_path: Path, out_dir: Path, *, precision: str, input_name: str,
                      input_shape: Sequence[int], settings: Any) -> Optional[dict[str, Any]]:
        """Where the backend cannot build here: what the device needs to build the file itself, as
        {"path", "sha256", "size_bytes", "errors", "note", "extra"}; None when the backend has no such route."""
        return None

    def is_available(self) -> bool:
        return not self._missing_modules()

    def doctor_note(self) -> str:
        """One line `doctor` prints about what this backend needs beyond its modules ("" for nothing)."""
        return ""

    def setup(self, log: Any = print, force: bool = False) -> None:
        """`edgekd setup BACKEND`: prepare what the backend needs beyond its pip extra (a converter environment)."""
        raise EdgekdError(f"the {self.name} backend needs nothing set up beyond pip install "
                          f"'edgekd[{self.extra_name}]'" if self.extra_name else f"the {self.name} backend needs "
                          "nothing set up")

    def capabilities(self) -> dict[str, Any]:
        """What this backend produces, what it refuses and why, and whether it can run here."""
        return {
            "backend": self.name,
            "runtime": self.runtime,
            "precisions": list(self.precisions),
            "refused": dict(self.refused),
            "file_suffix": self.file_suffix,
            "available": self.is_available(),
            "missing": self.missing_reason(),
        }

    def missing_reason(self) -> str:
        missing = self._missing_modules()
        if not missing:
            return ""
        install = f"pip install 'edgekd[{self.extra_name}]'" if self.extra_name else f"pip install {' '.join(missing)}"
        return f"the {self.name} exporter needs {', '.join(missing)}: {install}"

    def export(
        self,
        model: Any,
        example_input: Any,
        out_path: str | Path,
        *,
        precision: str = "fp32",
        opset: int = 18,
        input_names: Sequence[str] = ("input",),
        output_names: Sequence[str] = ("output",),
        **options: Any,
    ) -> ExportResult:
        """Export `model` (traced with `example_input`) to `out_path`; backend options go in `options`."""
        self._check_request(precision, Path(out_path))
        return self._export(
            model, example_input, Path(out_path), precision=precision, opset=opset,
            input_names=tuple(input_names), output_names=tuple(output_names), **options,
        )

    def _check_request(self, precision: str, out_path: Path) -> None:
        if not self.is_available():
            raise EdgekdError(self.missing_reason())
        if precision not in self.precisions:
            reason = self.refused.get(precision, "not implemented by this backend")
            raise EdgekdError(
                f"the {self.name} exporter cannot produce precision '{precision}': {reason} "
                f"(supported: {', '.join(self.precisions)})"
            )
        if self.file_suffix and out_path.suffix != self.file_suffix:
            raise EdgekdError(f"{out_path}: the {self.name} exporter writes '{self.file_suffix}' files")

    def _missing_modules(self) -> list[str]:
        return [module for module in self.requires if importlib.util.find_spec(module) is None]

    @abstractmethod
    def _export(
        self,
        model: Any,
        example_input: Any,
        out_path: Path,
        *,
        precision: str,
        opset: int,
        input_names: tuple[str, ...],
        output_names: tuple[str, ...],
        **options: Any,
    ) -> ExportResult:
        """Write the file; the request has already been checked against the capability table."""
