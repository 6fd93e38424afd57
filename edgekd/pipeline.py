"""Stages and the runner: skip what is done, re-run what changed, write a manifest per stage.

A stage folder is complete only when its manifest.json exists and matches: the same config hash, the same
upstream output digests, and every recorded output still on disk with its sha256. The manifest is written
last, so a crash mid-stage leaves an incomplete folder that the next run redoes (training resumes from its
checkpoints/, which are state, not outputs).
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from rich.console import Console

from edgekd import distributed as dist
from edgekd.artifacts import (
    MANIFEST_NAME, arithmetic_host, atomic_write_json, package_versions, sha256_file, sha256_json,
)
from edgekd.errors import EdgekdError
from edgekd.registry import unknown_name_message
from edgekd.run_lock import run_lock

MANIFEST_VERSION = 1
STATE_DIRS = ("checkpoints",)
ATTEMPT_NAME = "attempt.json"  # what the current (maybe crashed) attempt is computing; decides resume vs restart


@dataclass
class StageContext:
    recipe: Any
    run_dir: Path
    stage_dir: Path
    console: Console

    def stage_path(self, name: str) -> Path:
        return self.run_dir / name


@dataclass(frozen=True)
class Stage:
    """A step of a task's pipeline. `config` picks the recipe parts whose change must re-run it."""

    name: str
    run: Callable[[StageContext], Optional[dict[str, Any]]]
    config: Callable[[Any], Any]
    inputs: tuple[str, ...] = ()
    distributed: bool = False
    help: str = ""
    # What the stage needs from the environment (an optional extra), checked for every selected stage before the
    # first one runs; raises EdgekdError. Recipe validation does not call it, so it needs no optional extra.
    needs: Optional[Callable[[Any], None]] = None


@dataclass
class StageOutcome:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def config_hash(stage: Stage, recipe: Any) -> str:
    section = stage.config(recipe)
    dumped = section.model_dump(mode="json") if hasattr(section, "model_dump") else section
    return sha256_json({"stage": stage.name, "manifest_version": MANIFEST_VERSION, "config": dumped})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_manifest(stage_dir: Path) -> Optional[dict[str, Any]]:
    return _read_json(stage_dir / MANIFEST_NAME)


def outputs_intact(stage_dir: Path, manifest: dict[str, Any]) -> bool:
    for rel, digest in manifest.get("outputs", {}).items():
        path = stage_dir / rel
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def collect_outputs(stage_dir: Path) -> dict[str, str]:
    outputs = {}
    for path in sorted(stage_dir.rglob("*")):
        rel = path.relative_to(stage_dir)
        if not path.is_file() or path.name in (MANIFEST_NAME, ATTEMPT_NAME) or rel.parts[0] in STATE_DIRS:
            continue
        if path.name.endswith(".tmp"):
            continue
        outputs[rel.as_posix()] = sha256_file(path)
    return outputs


class Pipeline:
    """Runs a task's stages for one recipe under `runs_dir/<recipe.name>/`."""

    def __init__(self, recipe: Any, stages: list[Stage], runs_dir: Path, console: Console | None = None) -> None:
        self.recipe = recipe
        self.stages = {stage.name: stage for stage in stages}
        self.run_dir = Path(runs_dir) / recipe.name
        self.console = console or Console(stderr=True)

    def select(self, names: Optional[list[str]]) -> list[Stage]:
        if not names:
            return list(self.stages.values())
        for name in names:
            if name not in self.stages:
                raise EdgekdError(unknown_name_message("stage", name, list(self.stages)))
        return [stage for stage in self.stages.values() if stage.name in names]

    def input_digests(self, stage: Stage) -> dict[str, str]:
        digests = {}
        for upstream in stage.inputs:
            manifest = read_manifest(self.run_dir / upstream)
            if manifest is None or not self.is_current(self.stages[upstream]):
                raise EdgekdError(
                    f"stage '{stage.name}' needs stage '{upstream}', which has not completed for recipe "
                    f"'{self.recipe.name}' (run it, or leave it in --stages)"
                )
            digests[upstream] = manifest["outputs_digest"]
        return digests

    def is_current(self, stage: Stage) -> bool:
        stage_dir = self.run_dir / stage.name
        manifest = read_manifest(stage_dir)
        if manifest is None or manifest.get("config_hash") != config_hash(stage, self.recipe):
            return False
        for upstream in stage.inputs:
            up = read_manifest(self.run_dir / upstream)
            if up is None or manifest.get("inputs", {}).get(upstream) != up.get("outputs_digest"):
                return False
        return outputs_intact(stage_dir, manifest)

    def run(self, names: Optional[list[str]] = None, force: bool = False) -> list[StageOutcome]:
        selected = self.select(names)
        for stage in selected:
            if stage.needs is not None:
                stage.needs(self.recipe)
        if force or not all(self.is_current(stage) for stage in selected):
            check_compute(self.recipe)
        # one process per run folder (torchrun's other ranks share rank 0's run and write no manifest)
        with run_lock(self.run_dir) if dist.is_main() else contextlib.nullcontext():
            return self._run_selected(selected, force)

    def _run_selected(self, selected: list[Stage], force: bool) -> list[StageOutcome]:
        outcomes = []
        for stage in selected:
            if not force and self.is_current(stage):
                self.console.print(f"[dim]- {stage.name}: up to date, skipped[/dim]")
                outcomes.append(StageOutcome(stage.name, "skipped", summary=self._summary(stage)))
                continue
            outcomes.append(self._run_stage(stage, force))
        return outcomes

    def _summary(self, stage: Stage) -> dict[str, Any]:
        return (read_manifest(self.run_dir / stage.name) or {}).get("summary", {})

    def _prepare_stage_dir(self, stage: Stage, stage_dir: Path, inputs: dict[str, str], force: bool) -> None:
        """Keep a crashed attempt's checkpoints only when this attempt is the same work; else start clean.

        Resuming a checkpoint written under another config (or other upstream outputs, or after --force)
        would silently mix two runs, so the folder is wiped instead.
        """
        attempt = {"config_hash": config_hash(stage, self.recipe), "inputs": inputs}
        marker = stage_dir / ATTEMPT_NAME
        same = marker.is_file() and _read_json(marker) == attempt
        if stage_dir.exists() and (force or not same):
            shutil.rmtree(stage_dir)
        (stage_dir / MANIFEST_NAME).unlink(missing_ok=True)  # the folder is incomplete from here on
        atomic_write_json(marker, attempt)

    def _run_stage(self, stage: Stage, force: bool = False) -> StageOutcome:
        inputs = self.input_digests(stage)
        stage_dir = self.run_dir / stage.name
        ctx = StageContext(self.recipe, self.run_dir, stage_dir, self.console)
        self.console.print(f"[bold cyan]▶ {stage.name}[/bold cyan] {stage.help}")
        started = time.perf_counter()
        summary: dict[str, Any] = {}
        if dist.is_main():
            self._prepare_stage_dir(stage, stage_dir, inputs, force)
        dist.barrier()
        if stage.distributed or dist.is_main():
            seed_everything(getattr(self.recipe, "seed", 0), stage.name)
            summary = stage.run(ctx) or {}
        dist.barrier()
        seconds = time.perf_counter() - started
        if dist.is_main():
            self._write_manifest(stage, stage_dir, inputs, summary, seconds)
        dist.barrier()
        self.console.print(f"[green]✔ {stage.name}[/green] in {seconds:.1f} s")
        return StageOutcome(stage.name, "ran", seconds, summary)

    def _write_manifest(self, stage: Stage, stage_dir: Path, inputs, summary, seconds: float) -> None:
        outputs = collect_outputs(stage_dir)
        section = stage.config(self.recipe)
        atomic_write_json(
            stage_dir / MANIFEST_NAME,
            {
                "manifest_version": MANIFEST_VERSION,
                "stage": stage.name,
                "recipe": self.recipe.name,
                "config_hash": config_hash(stage, self.recipe),
                "config": section.model_dump(mode="json") if hasattr(section, "model_dump") else section,
                "inputs": inputs,
                "outputs": outputs,
                "outputs_digest": sha256_json(outputs),
                "summary": summary,
                "versions": package_versions(),
                "host": arithmetic_host(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(seconds, 3),
            },
        )


def check_compute(recipe: Any) -> None:
    """Before any stage runs: every train section's device and precision must exist on this machine (one
    EdgekdError naming the section otherwise). `device` is in no stage's config key, so `--set device=cpu` runs
    a recipe written for a GPU here without redoing its finished stages."""
    from edgekd.compute import probe, resolve
    from edgekd.recipe.common import train_sections

    sections = train_sections(recipe) if hasattr(type(recipe), "model_fields") else {}
    hardware = probe() if sections else None
    for path, train in sections.items():  # a value the section inherited is named by the recipe's own key
        device_key = "device" if train.device == recipe.device else f"{path}.device"
        precision_key = "precision" if train.precision == recipe.precision else f"{path}.precision"
        resolve(train.device or "auto", train.precision, hardware, where=device_key, precision_where=precision_key)


def seed_everything(seed: int, stage: str) -> None:
    """Seed torch, numpy and random from (recipe seed, stage name) before a stage runs.

    Model initialisation then depends only on the recipe, so a stage run alone, re-run with --force, or
    resumed after a crash starts from the same weights as it did in the full pipeline.
    """
    import numpy as np
    import torch

    value = (seed * 1_000_003 + zlib.crc32(stage.encode())) % (2**32)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
