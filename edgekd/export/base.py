"""The exporter contract: a capability table, an availability check, and one public `export()`.

A backend subclasses `Exporter`, declares the precisions it can produce and implements `_export`.
The public `export()` refuses what the backend cannot do — with the reason — instead of quietly
producing something else (a request for int8 never comes back as fp32).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgekd.errors import EdgekdError


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
    """One export backend. Instances are registered in `edgekd.export.EXPORTERS`.

    >>> from edgekd.export import EXPORTERS
    >>> result = EXPORTERS.get("onnx").export(model, torch.zeros(1, 3, 64, 64), "runs/x/student.onnx")
    """

    name: str = ""
    runtime: str = ""  # the runtime that executes what this backend writes
    precisions: tuple[str, ...] = ()
    # Precisions this backend could be asked for but does not produce, each with the reason.
    refused: dict[str, str] = {}
    file_suffix: str = ""
    # Python modules the backend needs, and the pip extra that installs them (None: a core dependency).
    requires: tuple[str, ...] = ()
    extra_name: str | None = None

    def is_available(self) -> bool:
        return not self._missing_modules()

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
