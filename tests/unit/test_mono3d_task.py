"""mono3d task glue: recipe sections, the loader, the objectives' KD switches, the QAT maps loss (golden numbers),
detections as KITTI objects, and the maps → detections → KITTI evaluation chain on ground-truth maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.recipe import load_recipe
from edgekd.tasks.mono3d import common
from edgekd.tasks.mono3d.config import Mono3dKD
from edgekd.tasks.mono3d.dataset import SceneDataset, depth_map, read_split
from edgekd.tasks.mono3d.kitti_eval import evaluate_kitti
from edgekd.tasks.mono3d.kitti_io import read_label_file
from edgekd.tasks.mono3d.lift import BevGrid, DepthBins
from edgekd.tasks.mono3d.models import NetConfig
from edgekd.tasks.mono3d.objectives import TakdObjective, depth_bin_targets
from edgekd.tasks.mono3d.qat import maps_loss
from edgekd.tasks.mono3d.scenes import generate_kitti_scenes


torch.set_num_threads(1)
HEAD_GRID = common.head_grid(NetConfig())
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitti")
    generate_kitti_scenes(root, train=2, val=20, seed=3)
    return root


# ---- recipe ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["recipes/mono3d/takd.yaml", "tests/recipes/tiny_mono3d.yaml"])
def test_recipes_load(path: str) -> None:
    recipe = load_recipe(REPO / path)
    assert recipe.task == "mono3d" and recipe.student.kd.cmrd_weight == 0.2 and recipe.student.kd.cls_weight == 2.0


@pytest.mark.parametrize("text, fragment", [
    ("data: {source: kitti}", "needs data.root"),
    ("model: {z_range: [0, 41]}", "multiple of 2·cell·bev_stride"),
    ("student: {gt_weight: 0, kd: {imd_detach: true, cmrd: false, logit_kd: false}}", "no loss with a gradient"),
    ("ablation: {arms: [{name: a}, {name: a}]}", "must be unique"),
])
def test_bad_sections_are_refused(write_yaml, text: str, fragment: str) -> None:
    with pytest.raises(EdgekdError, match=fragment):
        load_recipe(write_yaml(f"task: mono3d\nname: x\n{text}\n"))


# ---- loader ----------------------------------------------------------------------------------------------------


def test_depth_map_projects_and_keeps_the_nearest_return() -> None:
    P2 = np.array([[100.0, 0, 50, 0], [0, 100.0, 20, 0], [0, 0, 1, 0]])
    # (1, 0.5, 10) → u = 100·0.1 + 50 = 60, v = 100·0.05 + 20 = 25; at half size: col 30, row 12, 10 m = 1000 cm.
    # (1.2, 0.6, 12) lands on the same pixel further away; (0, 0, −5) is behind the camera.
    points = np.array([[1.0, 0.5, 10.0], [1.2, 0.6, 12.0], [0.0, 0.0, -5.0]])
    out = depth_map(points, P2, (100, 40), np.array([0.5, 0.5]), (20, 50))
    assert out[12, 30] == 1000 and np.count_nonzero(out) == 1


def test_depth_bin_targets_by_hand() -> None:
    # 4 bins over [2, 12): edges 2 + 1·i(i+1)/2·... (δ = 2·10/20 = 1): 2, 3, 5, 8, 12.
    bins = DepthBins(2.0, 12.0, 4)
    depth = torch.zeros(1, 1, 4, 8)
    depth[0, 0, 0, 0] = 6.0       # feature pixel (0, 0): bin 2
    depth[0, 0, 1, 5] = 2.5       # feature pixel (0, 1): bin 0
    targets = depth_bin_targets(depth, bins, stride=4)
    assert targets.tolist() == [[[2, 0]]]
    depth[0, 0, 1, 5] = 0.0       # no return left in (0, 1)
    assert depth_bin_targets(depth, bins, stride=4).tolist() == [[[2, -1]]]


def test_split_reads_every_frame(scenes_dir: Path) -> None:
    arrays = read_split(scenes_dir / "val", width=320, height=96, grid=BevGrid())
    assert arrays.images.shape == (20, 96, 320, 3) and arrays.pillars.shape == (20, 4, 64, 64)
    assert (arrays.depth_cm > 0).mean() > 0.01                     # LiDAR returns in the image
    labels = sum(len(read_label_file(scenes_dir / "val" / "label_2" / f"{i}.txt")["name"]) for i in arrays.frame_ids)
    assert len(arrays.boxes) == labels
    image, depth, pillars, targets, fg = SceneDataset(arrays, HEAD_GRID)[0]
    assert image.shape == (3, 96, 320) and depth.shape == (1, 96, 320) and targets.shape == (11, 32, 32)
    assert fg.shape == (1, 24, 80) and fg.sum() > 0
    inside = sum(1 for b in arrays.boxes[arrays.box_frame == 0] if 0 <= b[5] < 40 and -20 <= b[3] < 20)
    assert targets[10].sum().item() == inside                     # one centre cell per car on the grid


def test_image_without_label_is_a_one_line_error(scenes_dir: Path, tmp_path: Path) -> None:
    import shutil

    split = tmp_path / "val"
    shutil.copytree(scenes_dir / "val", split)
    (split / "label_2" / "000004.txt").unlink()
    with pytest.raises(EdgekdError) as error:
        read_split(split, width=320, height=96, grid=BevGrid())
    message = str(error.value)
    assert "000004.png" in message and "label_2" in message and "\n" not in message


# ---- detections and scoring ------------------------------------------------------------------------------------


def test_to_objects_projects_corners_and_applies_the_threshold() -> None:
    P2 = np.array([[100.0, 0, 50, 0], [0, 100.0, 20, 0], [0, 0, 1, 0]])
    # A 2 × 2 × 2 m box (h, w, l) at (0, 1, 10), ry 0: corners x ±1, y 1 and −1, z 9 and 11.
    # u = 50 + 100·x/z spans 50 − 100/9 … 50 + 100/9; v = 20 + 100·y/z spans 20 − 100/9 … 20 + 100/9.
    boxes = np.array([[2.0, 2.0, 2.0, 0.0, 1.0, 10.0, 0.0], [2.0, 2.0, 2.0, 5.0, 1.0, 10.0, 0.0]])
    objects = common.to_objects(boxes, np.array([0.9, 0.01]), P2, (100, 40), threshold=0.05)
    assert len(objects["name"]) == 1 and objects["score"].tolist() == [0.9]
    assert objects["bbox"][0].tolist() == pytest.approx([50 - 100 / 9, 20 - 100 / 9, 50 + 100 / 9, 20 + 100 / 9])
    assert objects["alpha"][0] == pytest.approx(0.0)              # ry − atan2(0, 10)


def test_ground_truth_maps_score_near_perfect(scenes_dir: Path) -> None:
    # The decode → KITTI objects → evaluation chain on maps made from the labels themselves: every car whose centre
    # lies on the 40 m grid is found with its exact box, so AP is limited only by the cars beyond it.
    arrays = read_split(scenes_dir / "val", width=320, height=96, grid=BevGrid())
    data = SceneDataset(arrays, HEAD_GRID)
    maps = torch.stack([data.targets(i)[:10] for i in range(len(data))]).numpy()
    gt = [read_label_file(scenes_dir / "val" / "label_2" / f"{i}.txt") for i in arrays.frame_ids]
    held_out = common.HeldOut(gt, arrays.P2, arrays.image_size, 320 / 1242, HEAD_GRID, 0.05, 32)
    result = evaluate_kitti(gt, common.detections(maps, held_out), 320 / 1242)
    assert result["AP3D_R40@0.7/moderate"] > 90 and result["AP2D_R40@0.7/moderate"] > 90
    assert common.score_maps(maps, held_out) == result["AP3D_R40@0.5/moderate"]
    assert len(held_out[:5]) == 5 and held_out[:5].P2.shape == (5, 3, 4)
    maps[:, 0] *= 0.01                                             # every score under the threshold: nothing found
    assert common.score_maps(maps, held_out) == 0.0


# ---- losses ----------------------------------------------------------------------------------------------------


def test_qat_loss_against_ground_truth_by_hand() -> None:
    # Two cells; cell 0 is a car centre (heatmap 1, mask 1, box 0.1 in all 6 channels, axis (0, 1), direction 1).
    # Output: score 0.5 at cell 0, 0.2 at cell 1 (target 0.5 there), box and axis 0, direction probability .5.
    #   focal at the peak: −(1 − .5)²·ln .5 = .25·.693147 = .173287
    #   cell 1: −(1 − .5)⁴·.2²·ln(1 − .2) = .0625·.04·.223144 = .000558    → heatmap .173844 (/ 1 peak)
    #   box L1 at the centre: 6·.1 = .6; axis: |0 − 0| + |0 − 1| = 1
    #   direction: 0.2 · BCE(.5 → 1) = 0.2 · ln 2 = .138629                  → total 1.912473
    outputs = torch.zeros(1, 10, 1, 2)
    outputs[0, 0] = torch.tensor([[0.5, 0.2]])
    outputs[0, 9] = 0.5
    targets = torch.zeros(1, 11, 1, 2)
    targets[0, 0] = torch.tensor([[1.0, 0.5]])
    targets[0, 1:7, 0, 0] = 0.1
    targets[0, 8, 0, 0] = 1.0
    targets[0, 9, 0, 0] = 1.0
    targets[0, 10, 0, 0] = 1.0
    assert maps_loss(outputs, targets).item() == pytest.approx(1.912473, abs=1e-5)


def test_qat_loss_against_float_maps_by_hand() -> None:
    # One cell, float score .5 (a positive: > .1), int8 score .25, boxes equal, both directions 1 − 1e-6.
    #   QFL = BCE(.25 → .5)·|.25 − .5|² = −(.5·ln .25 + .5·ln .75)·.0625 = .836988·.0625 = .052312
    #   × cls weight 2.0 = .104624 (/ 1 positive); box term 0; direction: BCE of a certain target ≈ 1e-6 · 14.8
    outputs, reference = torch.zeros(1, 10, 1, 1), torch.zeros(1, 10, 1, 1)
    outputs[0, 0], reference[0, 0] = 0.25, 0.5
    outputs[0, 9] = reference[0, 9] = 1.0
    assert maps_loss(outputs, reference).item() == pytest.approx(0.104624, abs=1e-5)
    assert maps_loss(reference, reference).item() == pytest.approx(0.0, abs=1e-5)
    outputs[0, 9] = 0.5                                       # direction .5 vs 1: 0.4 · .5 · ln 2 = .138629 more
    assert maps_loss(outputs, reference).item() == pytest.approx(0.104624 + 0.138629, abs=1e-5)


def _takd(kd: Mono3dKD) -> tuple[TakdObjective, list]:
    torch.manual_seed(0)
    cfg = NetConfig(bev_channels=8, backbone_width=8, head_width=4, image_channels=4, camera_width=8)
    objective = TakdObjective(common.build("student", cfg, residual_branch=kd.cmrd), common.build("teacher", cfg),
                              common.build("assistant", cfg), kd, gt_weight=0.0, depth_weight=0.0)
    depth = torch.zeros(2, 1, 96, 320)
    depth[:, :, 60:, :] = 8.0                                    # returns on the lower rows: the TA lifts something
    batch = [torch.randn(2, 3, 96, 320), depth, torch.rand(2, 4, 64, 64), torch.zeros(2, 11, 32, 32),
             torch.zeros(2, 1, 24, 80)]
    return objective, batch


def test_takd_switches_pick_the_terms_and_imd_detach_stops_its_gradient() -> None:
    objective, batch = _takd(Mono3dKD())
    terms = objective(batch)
    assert {"imd", "cmrd", "logit_cls", "logit_box", "logit_dir"} <= set(terms) and "gt" not in terms
    only_imd = Mono3dKD(cmrd=False, logit_kd=False)
    objective, batch = _takd(only_imd)
    loss = objective(batch)["loss"]
    loss.backward()
    assert objective.student.collapse[0].weight.grad.abs().sum() > 0      # IMD trains F_S
    assert all(p.grad is None for p in objective.assistant.parameters())  # the TA is a frozen target
    objective, batch = _takd(only_imd.model_copy(update={"imd_detach": True}))
    assert not objective(batch)["loss"].requires_grad                  # the official, detached IMD trains nothing


def test_student_starts_from_the_assistant_except_its_residual_branch() -> None:
    from edgekd.tasks.mono3d.stages import start_from

    cfg = NetConfig(bev_channels=8, backbone_width=8, head_width=4, image_channels=4, camera_width=8)
    torch.manual_seed(0)
    assistant, student = common.build("assistant", cfg), common.build("student", cfg, residual_branch=True)
    residual_before = {k: v.clone() for k, v in student.state_dict().items() if k.startswith("residual.")}
    start_from(student, assistant)
    state = student.state_dict()
    for key, value in assistant.state_dict().items():
        assert torch.equal(state[key], value), key
    for key, value in residual_before.items():
        assert torch.equal(state[key], value), key
    wider = common.build("assistant", NetConfig(bev_channels=16, backbone_width=8, head_width=4, image_channels=4,
                                                camera_width=8))
    with pytest.raises(RuntimeError):
        start_from(student, wider)


def test_ablation_arms_carry_kd_switches_and_init_apart() -> None:
    from edgekd.tasks.mono3d.config import Mono3dAblation

    arms = {arm.name: arm for arm in Mono3dAblation().arms}
    assert arms["no_kd"].init == "scratch" and arms["ta_init_no_kd"].init is None
    assert arms["no_kd"].kd_switches() == {"imd": False, "cmrd": False, "logit_kd": False, "imd_detach": False}
    assert "init" not in arms["imd_only"].kd_switches()
