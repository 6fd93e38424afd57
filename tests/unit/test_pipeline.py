"""Manifests, skipping, --force and --stages, with toy stages (no training)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from edgekd.artifacts import atomic_write_text
from edgekd.errors import EdgekdError
from edgekd.pipeline import Pipeline, Stage


class Recipe(SimpleNamespace):
    pass


def toy_stages(calls: list[str]) -> list[Stage]:
    def make(name: str, text):
        def run(ctx):
            calls.append(name)
            atomic_write_text(ctx.stage_dir / "out.txt", text(ctx))
            return {"wrote": name}

        return run

    return [
        Stage("a", make("a", lambda ctx: f"a{ctx.recipe.a}"), lambda r: {"a": r.a}),
        Stage("b", make("b", lambda ctx: (ctx.stage_path("a") / "out.txt").read_text() + "b"), lambda r: {"b": r.b}, ("a",)),
    ]


def pipeline(tmp_path: Path, calls: list[str], a: int = 1, b: int = 1) -> Pipeline:
    return Pipeline(Recipe(name="toy", a=a, b=b), toy_stages(calls), tmp_path, Console(quiet=True))


def test_manifest_records_config_inputs_outputs_versions(tmp_path: Path) -> None:
    pipeline(tmp_path, []).run()
    manifest = json.loads((tmp_path / "toy" / "b" / "manifest.json").read_text())
    assert manifest["stage"] == "b" and manifest["recipe"] == "toy"
    assert set(manifest["outputs"]) == {"out.txt"}
    assert manifest["inputs"]["a"] == json.loads((tmp_path / "toy" / "a" / "manifest.json").read_text())["outputs_digest"]
    assert "torch" in manifest["versions"] and len(manifest["config_hash"]) == 64
    assert manifest["summary"] == {"wrote": "b"}
    import torch  # this test module's stages run where torch is loaded, as every training stage does

    assert manifest["host"]["torch_threads"] == torch.get_num_threads() and manifest["host"]["cpu"]


def test_rerun_skips_completed_stages(tmp_path: Path) -> None:
    calls: list[str] = []
    pipeline(tmp_path, calls).run()
    outcomes = pipeline(tmp_path, calls).run()
    assert calls == ["a", "b"]
    assert [o.status for o in outcomes] == ["skipped", "skipped"]


def test_config_change_reruns_the_stage_and_its_dependents(tmp_path: Path) -> None:
    calls: list[str] = []
    pipeline(tmp_path, calls).run()
    pipeline(tmp_path, calls, a=2).run()
    assert calls == ["a", "b", "a", "b"]
    assert (tmp_path / "toy" / "b" / "out.txt").read_text() == "a2b"


def test_downstream_config_change_reruns_only_downstream(tmp_path: Path) -> None:
    calls: list[str] = []
    pipeline(tmp_path, calls).run()
    pipeline(tmp_path, calls, b=5).run()
    assert calls == ["a", "b", "b"]


def test_force_and_stage_selection(tmp_path: Path) -> None:
    calls: list[str] = []
    pipeline(tmp_path, calls).run()
    pipeline(tmp_path, calls).run(["b"], force=True)
    assert calls == ["a", "b", "b"]


def test_tampered_output_is_redone(tmp_path: Path) -> None:
    calls: list[str] = []
    pipeline(tmp_path, calls).run()
    (tmp_path / "toy" / "a" / "out.txt").write_text("tampered")
    pipeline(tmp_path, calls).run()
    # a is redone; its output is byte-identical again, so b (content-addressed inputs) stays current.
    assert calls == ["a", "b", "a"]
    assert (tmp_path / "toy" / "a" / "out.txt").read_text() == "a1"


def test_selected_stage_needs_completed_inputs(tmp_path: Path) -> None:
    with pytest.raises(EdgekdError, match="needs stage 'a'"):
        pipeline(tmp_path, []).run(["b"])


def test_a_crashed_stage_has_no_manifest_and_runs_again(tmp_path: Path) -> None:
    def boom(ctx):
        atomic_write_text(ctx.stage_dir / "half.txt", "x")
        raise RuntimeError("crash")

    stages = [Stage("a", boom, lambda r: {})]
    with pytest.raises(RuntimeError):
        Pipeline(Recipe(name="toy"), stages, tmp_path, Console(quiet=True)).run()
    assert not (tmp_path / "toy" / "a" / "manifest.json").exists()


def test_what_a_stage_needs_is_checked_before_any_stage_runs(tmp_path: Path) -> None:
    def needs_extra(recipe) -> None:
        raise EdgekdError("this stage needs an optional extra")

    calls: list[str] = []
    first, second = toy_stages(calls)
    stages = [first, dataclasses.replace(second, needs=needs_extra)]
    with pytest.raises(EdgekdError, match="optional extra"):
        Pipeline(Recipe(name="toy", a=1, b=1), stages, tmp_path, Console(quiet=True)).run()
    assert calls == [] and not (tmp_path / "toy" / "a").exists()
    Pipeline(Recipe(name="toy", a=1, b=1), stages, tmp_path, Console(quiet=True)).run(["a"])  # not selected
    assert calls == ["a"]
