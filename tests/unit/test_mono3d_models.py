"""MonoTAKD models: shapes, sizes, the deployable student graph, the decoder, and a LiDAR-teacher overfit smoke test."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from edgekd.models import count_parameters
from edgekd.tasks.mono3d.bev import pillar_features
from edgekd.tasks.mono3d.heads import atan2, decode, feature_grid, yaw_of
from edgekd.tasks.mono3d.lift import BevGrid
from edgekd.tasks.mono3d.models import CameraDetector, LidarDetector, NetConfig, StudentExport
from edgekd.tasks.mono3d.targets import centre_targets, detection_loss, stack_targets

CFG = NetConfig()
# Pinned sizes at the default config (a change here is a deliberate architecture change). The student's
# residual branch (131,600) trains only; the deployed student is the TA's architecture.
SMOKE_CFG = NetConfig(bev_channels=32, backbone_width=32, head_width=16)
PARAMS = {"teacher": 221_514, "assistant": 296_883, "student": 428_483, "deployed": 296_883}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    student = CameraDetector(CFG, "predicted", residual_branch=True)
    return {"teacher": LidarDetector(CFG), "assistant": CameraDetector(CFG, "lidar"), "student": student,
            "deployed": StudentExport(student)}


def test_parameter_counts(models) -> None:
    assert {name: count_parameters(m) for name, m in models.items()} == PARAMS
    assert PARAMS["student"] < 1_000_000


def test_feature_shapes(models) -> None:
    image, depth = torch.randn(2, 3, 96, 320), torch.zeros(2, 1, 96, 320)
    teacher = models["teacher"](torch.randn(2, 4, 64, 64))
    assistant = models["assistant"](image, depth)
    student = models["student"](image)
    for out in (teacher, assistant, student):
        assert out["bev"].shape == (2, 64, 32, 32)
        assert {k: tuple(v.shape) for k, v in out["head"].items()} == {
            "heatmap": (2, 1, 32, 32), "box": (2, 6, 32, 32), "rot": (2, 2, 32, 32), "dir": (2, 1, 32, 32)}
    assert student["residual"].shape == (2, 64, 32, 32) and assistant["residual"] is None
    assert student["depth_logits"].shape == (2, 33, 24, 80)
    assert assistant["lifted"].abs().sum().item() == 0.0      # no LiDAR returns → no TA features


def test_pillar_features_hand_cell() -> None:
    # points (x, y, z): two in cell (row ⌊10.1/.625⌋ = 16, col ⌊(1.1 + 20)/.625⌋ = 33),
    # heights 1.65 − y = 1.15 and 0.65 → occupancy 1, max 1.15, mean 0.9, log(1 + 2)
    points = torch.tensor([[1.1, 0.5, 10.1, 0.0], [1.2, 1.0, 10.2, 0.0], [50.0, 0.0, 10.0, 0.0]])
    grid = pillar_features(points, BevGrid())
    assert grid[:, 16, 33].tolist() == pytest.approx([1.0, 1.15, 0.9, math.log(3.0)])
    assert grid[0].sum().item() == 1.0      # the third point is outside the grid


def test_decode_hand_peak() -> None:
    head = {"heatmap": torch.full((1, 1, 32, 32), -10.0), "box": torch.zeros(1, 6, 32, 32),
            "rot": torch.zeros(1, 2, 32, 32), "dir": torch.ones(1, 1, 32, 32)}
    head["heatmap"][0, 0, 8, 20] = 2.0
    head["heatmap"][0, 0, 8, 21] = 1.0        # a weaker neighbour: suppressed by the 3×3 max-pool
    head["box"][0, :, 8, 20] = torch.tensor([0.25, 0.5, 1.6, math.log(1.5), math.log(1.6), math.log(3.9)])
    head["rot"][0, :, 8, 20] = torch.tensor([1.0, 0.0])    # sin 2ry, cos 2ry → axis π/4; direction + → ry = π/4
    boxes, scores = decode(head, feature_grid(BevGrid(), 2), top_k=3)
    # cell 1.25 m: x = −20 + (20 + .25)·1.25 = 5.3125, z = (8 + .5)·1.25 = 10.625
    expected = [1.5, 1.6, 3.9, 5.3125, 1.6, 10.625, math.pi / 4]
    assert boxes[0, 0].tolist() == pytest.approx(expected, abs=1e-5)
    assert scores[0, 0].item() == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert scores[0, 1].item() < 0.01     # the neighbour (score .73) is not a peak


@pytest.mark.parametrize("ry", [0.0, 0.3, 1.2, 2.0, 3.1, -0.4, -1.5, -2.2, -3.0])
def test_yaw_comes_back_from_axis_and_direction(ry: float) -> None:
    # The targets' encoding (sin 2ry, cos 2ry, direction cos ry > 0) decodes to ry itself.
    targets = centre_targets(torch.tensor([[1.5, 1.6, 3.9, 0.3, 1.6, 10.3, ry]]), feature_grid(BevGrid(), 2))
    at = targets["mask"][0] > 0
    sin2, cos2, direction = targets["rot"][0][at], targets["rot"][1][at], targets["dir"][0][at] * 2 - 1
    assert yaw_of(sin2, cos2, direction).item() == pytest.approx(ry, abs=1e-5)
    flipped = yaw_of(sin2, cos2, -direction).item()                      # the other direction: the opposite yaw
    assert math.cos(flipped - ry) == pytest.approx(-1.0, abs=1e-6)


def test_atan2_covers_all_quadrants() -> None:
    y = torch.tensor([0.0, 1.0, 1.0, -1.0, 0.0, -1.0, 0.5])
    x = torch.tensor([1.0, 0.0, -1.0, -1.0, -1.0, 0.0, 2.0])
    assert atan2(y, x).tolist() == pytest.approx([math.atan2(a, b) for a, b in zip(y.tolist(), x.tolist())], abs=1e-6)


def _initializer_elements(path) -> int:
    import onnx

    return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)


def _export(model: torch.nn.Module, example: torch.Tensor, path, opset: int = 18) -> None:
    from edgekd.export import EXPORTERS

    EXPORTERS.get("onnx").export(model.eval(), example, path, opset=opset, input_names=("image",),
                                 output_names=("score", "box", "rot"), dynamic_batch=False)


def test_student_export_is_the_camera_path_only(models, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import onnx

    image = torch.randn(1, 3, 96, 320)
    path = tmp_path / "maps.onnx"
    deployed = StudentExport(models["student"], outputs="maps").eval()
    _export(deployed, image, path)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image"]          # no LiDAR depth, no point cloud
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": image.numpy()})
    with torch.no_grad():
        expected = deployed(image)
    for runtime, reference in zip(got, expected):
        np.testing.assert_allclose(runtime, reference.numpy(), atol=1e-4)


def test_student_export_leaves_the_training_only_branch_out(tmp_path) -> None:
    # The residual branch's weights are absent from the deployed graph; fusing it (FFM) adds exactly them.
    # (TorchScript exporter, opset 17, with the scatter it supports: the same graph content, ten times faster.)
    cfg = NetConfig(lift_backend="elements")
    torch.manual_seed(0)
    separate = CameraDetector(cfg, "predicted", residual_branch=True)
    fused = CameraDetector(cfg, "predicted", residual_branch=True, fuse_residual=True)
    image = torch.randn(1, 3, 96, 320)
    _export(StudentExport(separate, outputs="maps"), image, tmp_path / "separate.onnx", opset=17)
    _export(StudentExport(fused, outputs="maps"), image, tmp_path / "fused.onnx", opset=17)
    residual = count_parameters(separate.residual)
    growth = _initializer_elements(tmp_path / "fused.onnx") - _initializer_elements(tmp_path / "separate.onnx")
    assert residual * 0.95 <= growth <= residual * 1.05


class HandDecode(torch.nn.Module):
    def forward(self, heatmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        box = torch.zeros(1, 6, 32, 32) + torch.arange(6.0).view(1, 6, 1, 1) * 0.1
        return decode({"heatmap": heatmap, "box": box, "rot": torch.ones(1, 2, 32, 32),
                       "dir": torch.ones(1, 1, 32, 32)}, feature_grid(BevGrid(), 2), 8)


def test_decoded_export_matches_pytorch_on_ties(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    heatmap = torch.full((1, 1, 32, 32), -10.0)                  # a plateau: every cell ties, all are peaks
    heatmap[0, 0, 8, 20], heatmap[0, 0, 30, 3] = 2.0, 1.0
    path = tmp_path / "decode.onnx"
    from edgekd.export import EXPORTERS

    EXPORTERS.get("onnx").export(HandDecode(), heatmap, path, input_names=("heatmap",),
                                 output_names=("boxes", "scores"), dynamic_batch=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(None, {"heatmap": heatmap.numpy()})
    ref_boxes, ref_scores = HandDecode()(heatmap)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-6)
    np.testing.assert_allclose(boxes, ref_boxes.numpy(), atol=1e-5)
    # the two peaks first (z offset .1: z = (8 + .1)·1.25, (30 + .1)·1.25), then the plateau in cell order
    # (0, 0), (0, 1), (0, 2) → x = −20 + col·1.25
    assert ref_boxes[0, :2, 5].tolist() == pytest.approx([10.125, 37.625])
    assert ref_boxes[0, 2:5, 3].tolist() == pytest.approx([-20.0, -18.75, -17.5])


def _box_points(box: tuple[float, ...], rng: np.random.Generator, count: int = 300) -> np.ndarray:
    """Points on the four vertical faces of a KITTI box (h, w, l, x, y, z, ry), camera frame, intensity 0."""
    h, w, l, x, y, z, ry = box
    side = rng.integers(0, 4, count)
    along = rng.uniform(-0.5, 0.5, count)
    local_x = np.where(side < 2, along * l, np.where(side == 2, l / 2, -l / 2))
    local_z = np.where(side < 2, np.where(side == 0, w / 2, -w / 2), along * w)
    cos, sin = math.cos(ry), math.sin(ry)
    px = x + cos * local_x + sin * local_z
    pz = z - sin * local_x + cos * local_z
    py = y - rng.uniform(0, h, count)
    return np.stack([px, py, pz, np.zeros(count)], axis=1)


def test_lidar_teacher_overfits_two_scenes() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [[(1.5, 1.6, 3.9, -4.0, 1.65, 12.0, 0.3)],
              [(1.5, 1.7, 4.1, 3.0, 1.65, 20.0, -1.2), (1.4, 1.6, 3.8, -6.0, 1.65, 28.0, 1.5)]]
    pillars, targets = [], []
    for boxes in scenes:
        ground = np.stack([rng.uniform(-20, 20, 400), np.full(400, 1.65), rng.uniform(2, 40, 400), np.zeros(400)], 1)
        points = np.concatenate([ground, *[_box_points(b, rng) for b in boxes]])
        pillars.append(pillar_features(torch.tensor(points, dtype=torch.float32), CFG.grid))
        targets.append(centre_targets(torch.tensor(boxes), feature_grid(CFG.grid, CFG.bev_stride)))
    pillars, batch = torch.stack(pillars), stack_targets(targets)
    teacher = LidarDetector(SMOKE_CFG)
    optimiser = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    start, losses, heatmap = time.perf_counter(), [], []
    for _ in range(30):
        terms = detection_loss(teacher(pillars)["head"], batch)
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
        losses.append(terms["total"].item())
        heatmap.append(terms["heatmap"].item())
    assert time.perf_counter() - start < 20
    assert losses[-1] < 0.5 * losses[0], losses
    assert heatmap[-1] < 0.5 * heatmap[0], heatmap      # it learns where the cars are, not only their sizes
