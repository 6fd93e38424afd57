"""What `edgekd check` writes for CI: Markdown for a PR comment, JSON for machines, JUnit XML for test panels.

Every file is written atomically (`edgekd.artifacts`), so a CI step never reads half a file.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from edgekd.artifacts import atomic_write_text
from edgekd.report.compare import Comparison, ComparisonRow

SUITE = "edgekd check"


def to_json(comparison: Comparison) -> str:
    return json.dumps(_strict_json(comparison.to_dict()), indent=2, ensure_ascii=False) + "\n"


def _strict_json(value: Any) -> Any:
    # NaN/inf are not JSON; strict parsers (jq, JavaScript) reject them. The row's `change` text keeps the story.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    return value


def to_markdown(comparison: Comparison, *, title: str = SUITE) -> str:
    """A PR comment: the verdict first, the regressions next, every row folded below."""
    failures = [r for r in comparison.rows if not r.ok]
    verdict = f"❌ {len(failures)} regression{'s' * (len(failures) != 1)}" if failures else "✅ no regression"
    lines = [f"### {title}: {verdict}"]
    if comparison.notes:
        lines += ["", *(f"> note: {_cell(note)}" for note in comparison.notes)]
    if failures:
        lines += ["", "**Regressions**", "", *_table(failures)]
    lines += ["", f"<details><summary>All {len(comparison.rows)} compared rows</summary>", "",
              *_table(comparison.rows), "", "</details>", ""]
    return "\n".join(lines)


def verdict_line(comparison: Comparison, *, shown: int = 3) -> str:
    """One line naming what regressed, for stderr (the table or JSON on stdout has every row).

    '2 regressions beyond budget: student: p50 latency, onnxruntime (ms) 1.50× (budget ≤ 1.2×); ...'
    """
    failures = [f"{r.label}: {r.quantity} {r.change} (budget {r.budget})" for r in comparison.rows if not r.ok]
    more = f"; and {len(failures) - shown} more" if len(failures) > shown else ""
    plural = "s" * (len(failures) != 1)
    return f"{len(failures)} regression{plural} beyond budget: " + "; ".join(failures[:shown]) + more


def _table(rows: list[ComparisonRow]) -> list[str]:
    head = ["| | model | quantity | baseline | current | change | budget | note |", "|---|---|---|---|---|---|---|---|"]
    body = [
        f"| {'✅' if r.ok else '❌'} | {_cell(r.label)} | {_cell(r.quantity)} | {_num(r.baseline)} | "
        f"{_num(r.current)} | {_cell(r.change)} | {_cell(r.budget)} | {_cell(r.note)} |"
        for r in rows
    ]
    return head + body


def _cell(text: str) -> str:
    # A pipe or a newline inside a cell would break the Markdown table.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: object) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def to_junit(comparison: Comparison) -> str:
    """One testcase per compared row (classname = what, name = quantity); a failure element on a regression."""
    failures = sum(not r.ok for r in comparison.rows)
    suite = ET.Element("testsuite", name=SUITE, tests=str(len(comparison.rows)), failures=str(failures),
                       errors="0", skipped="0")
    for r in comparison.rows:
        case = ET.SubElement(suite, "testcase", classname=f"edgekd.{r.label}", name=r.quantity)
        detail = f"baseline {_num(r.baseline)}, current {_num(r.current)}, change {r.change}, budget {r.budget}"
        if not r.ok:
            failure = ET.SubElement(case, "failure", message=f"{r.quantity}: {r.change} (budget {r.budget})",
                                    type="regression")
            failure.text = detail + (f"\n{r.note}" if r.note else "")
        else:
            ET.SubElement(case, "system-out").text = detail + (f"; {r.note}" if r.note else "")
    root = ET.Element("testsuites", name=SUITE, tests=suite.get("tests"), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_outputs(comparison: Comparison, *, markdown: Path | None = None, json_out: Path | None = None,
                  junit: Path | None = None) -> list[Path]:
    """Write each requested file atomically; returns the paths written."""
    writers = [(markdown, to_markdown), (json_out, to_json), (junit, to_junit)]
    return [atomic_write_text(path, render(comparison)) for path, render in writers if path is not None]
