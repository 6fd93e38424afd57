"""Atomic writes leave the old file or the new one; hashes and the registry behave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgekd.artifacts import (
    atomic_path, atomic_torch_save, atomic_write_text, load_checkpoint, load_state_into, sha256_file, sha256_json,
)
from edgekd.errors import EdgekdError
from edgekd.registry import Registry


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "f.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


class NotAllowed:
    """Any class outside torch's allow-list: a weights_only load must refuse to build it."""


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    atomic_torch_save({"w": torch.ones(2), "step": 3}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 3
    torch.save({"obj": NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(EdgekdError, match="evil.pt: refused: .*weights_only=True"):
        load_checkpoint(tmp_path / "evil.pt")


def test_equal_weights_saved_twice_give_files_with_equal_sha256(tmp_path: Path) -> None:
    """The temporary name of an atomic write must not reach the file: reproducible runs compare sha256."""
    weights = torch.nn.Linear(3, 2).state_dict()
    atomic_torch_save(weights, tmp_path / "a" / "teacher.pt")
    atomic_torch_save(weights, tmp_path / "b" / "teacher.pt")
    assert sha256_file(tmp_path / "a" / "teacher.pt") == sha256_file(tmp_path / "b" / "teacher.pt")
    weights["weight"][0, 0] += 1e-6
    atomic_torch_save(weights, tmp_path / "c" / "teacher.pt")
    assert sha256_file(tmp_path / "c" / "teacher.pt") != sha256_file(tmp_path / "a" / "teacher.pt")


def test_a_truncated_checkpoint_in_a_run_folder_names_the_file_and_how_to_start_the_stage_over(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "tiny"
    (run / "distill" / "checkpoints").mkdir(parents=True)
    (run / ".lock").touch()  # what makes a folder a run folder (edgekd.run_lock)
    last = run / "distill" / "checkpoints" / "last.pt"
    atomic_torch_save({"w": torch.ones(1000)}, last)
    last.write_bytes(last.read_bytes()[:500])
    with pytest.raises(EdgekdError, match=r"last.pt: not a readable PyTorch checkpoint.*--force --stages distill"):
        load_checkpoint(last)


def test_a_state_dict_of_another_model_names_the_file_and_the_mismatch(tmp_path: Path) -> None:
    atomic_torch_save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(EdgekdError, match=r"linear.pt: does not fit Conv2d: .*weight"):
        load_state_into(torch.nn.Conv2d(3, 2, 1), tmp_path / "linear.pt")
    load_state_into(torch.nn.Linear(3, 2), tmp_path / "linear.pt")


def test_hashes_are_stable(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "f", "abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_json({"b": 1, "a": 2}) == sha256_json({"a": 2, "b": 1})


def test_registry_suggests_the_closest_name() -> None:
    things: Registry[int] = Registry("widget")
    things.register("masked_mse")(1)
    with pytest.raises(EdgekdError, match="did you mean 'masked_mse'"):
        things.get("masked_mes")
    with pytest.raises(ValueError, match="twice"):
        things.register("masked_mse")(2)


def test_atomic_writes_get_the_usual_file_mode(tmp_path) -> None:
    import os
    import stat

    from edgekd.artifacts import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
