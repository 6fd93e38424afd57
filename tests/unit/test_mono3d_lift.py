"""Frustum → BEV lift: hand-computed cells, the TA's one-hot LiDAR lift, and ONNX Runtime / OpenVINO parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.tasks.mono3d.lift import BevGrid, DepthBins, FrustumToBev, lidar_depth_probs

P2 = np.array([[186.0, 0.0, 157.0, 0.0], [0.0, 186.0, 45.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
SIZE = (320, 96)
# δ = 2·(12 − 2)/(4·5) = 1 → edges 2 + δ·i(i+1)/2 = [2, 3, 5, 8, 12], centres [2.5, 4, 6.5, 10]
HAND_BINS = DepthBins(2.0, 12.0, 4)
# Feature pixel (row 12, column 50) at stride 4 is centred on image (u, v) = (201.5, 49.5). At the centre of bin 3
# (z = 10 m): x = (201.5 − 157)·10/186 = 2.3925 m, y = (49.5 − 45)·10/186 = 0.242 m (inside the y band [−1, 2]).
# BEV cell: column ⌊(2.3925 + 20)/0.625⌋ = ⌊35.83⌋ = 35, row ⌊10/0.625⌋ = 16.
ROW, COL, BIN, CELL = 12, 50, 3, (16, 35)


def one_pixel(bin_index: int = BIN, row: int = ROW, value: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (1, 1, 24, 80) = value at one pixel; depth (1, 4, 24, 80) with all that pixel's mass in one bin."""
    features = torch.zeros(1, 1, 24, 80)
    features[0, 0, row, COL] = value
    depth = torch.zeros(1, 4, 24, 80)
    depth[0, bin_index, row, COL] = 1.0
    return features, depth


def test_lid_bin_edges_and_indices() -> None:
    np.testing.assert_allclose(HAND_BINS.edges(), [2, 3, 5, 8, 12])
    assert DepthBins().edges()[-1] == pytest.approx(46.8)
    depths = torch.tensor([0.0, 2.5, 4.99, 5.0, 12.0, 13.0])
    assert HAND_BINS.index(depths).tolist() == [-1, 0, 1, 2, -1, -1]


def test_one_pixel_in_one_bin_lands_in_the_hand_cell() -> None:
    lift = FrustumToBev(P2, SIZE, 4, HAND_BINS, BevGrid(), reduce="sum", depth_samples=1)
    bev = lift(*one_pixel(value=3.0))[0, 0]
    assert bev.shape == (64, 64)
    assert bev[CELL].item() == pytest.approx(3.0)
    assert bev.sum().item() == pytest.approx(3.0)


def test_mean_divides_by_the_rays_reaching_the_cell() -> None:
    # At z = 10 columns j with x ∈ [1.875, 2.5): 4j + 1.5 − 157 ∈ [34.875, 46.5) → j ∈ {48, 49, 50}: 3 rays
    lift = FrustumToBev(P2, SIZE, 4, HAND_BINS, BevGrid(), reduce="mean", depth_samples=1)
    assert lift(*one_pixel(value=3.0))[0, 0][CELL].item() == pytest.approx(1.0)


def test_depth_samples_spread_a_bin_along_its_ray() -> None:
    # Bin 3 spans 8–12 m; 4 samples at 8.5, 9.5, 10.5, 11.5 m, x = 44.5·z/186 = 2.034, 2.273, 2.512, 2.751 →
    # cells (row, col) = (13, 35), (15, 35), (16, 36), (18, 36), a quarter of the mass each.
    lift = FrustumToBev(P2, SIZE, 4, HAND_BINS, BevGrid(), reduce="sum", depth_samples=4)
    bev = lift(*one_pixel())[0, 0]
    for cell in [(13, 35), (15, 35), (16, 36), (18, 36)]:
        assert bev[cell].item() == pytest.approx(0.25)
    assert bev.sum().item() == pytest.approx(1.0)


def test_points_outside_the_height_band_are_dropped() -> None:
    # Row 21 → v = 85.5 → y = (85.5 − 45)·10/186 = 2.18 m > 2 m (below the ground band): nothing lands
    lift = FrustumToBev(P2, SIZE, 4, HAND_BINS, BevGrid(), reduce="sum", depth_samples=1)
    assert lift(*one_pixel(row=21))[0, 0].abs().sum().item() == 0.0


def test_lidar_one_hot_lifts_to_the_lidar_points_cell() -> None:
    # One return at image (u, v) = (201, 49), depth 10 m: the point is x = 44·10/186 = 2.366 m, z = 10 m →
    # cell (16, 35); its feature pixel (12, 50) gets a one-hot bin 3, every other pixel none.
    depth_map = torch.zeros(1, 1, 96, 320)
    depth_map[0, 0, 49, 201] = 10.0
    probs = lidar_depth_probs(depth_map, HAND_BINS, 4)
    assert probs.sum().item() == pytest.approx(1.0) and probs[0, BIN, ROW, COL].item() == 1.0
    lift = FrustumToBev(P2, SIZE, 4, HAND_BINS, BevGrid(), reduce="sum", depth_samples=1)
    bev = lift(torch.ones(1, 2, 24, 80), probs)[0]      # features everywhere, LiDAR at one pixel only
    assert bev[:, CELL[0], CELL[1]].tolist() == [1.0, 1.0]
    assert bev.sum().item() == pytest.approx(2.0)


def test_lidar_block_with_two_returns_shares_its_mass() -> None:
    depth_map = torch.zeros(1, 1, 8, 8)
    depth_map[0, 0, 0, 0], depth_map[0, 0, 1, 1] = 2.5, 10.0      # bins 0 and 3, same 4×4 block
    probs = lidar_depth_probs(depth_map, HAND_BINS, 4)
    assert probs[0, :, 0, 0].tolist() == [0.5, 0.0, 0.0, 0.5]
    assert probs[0, :, 1, 1].sum().item() == 0.0


def test_backends_agree_and_skewed_projections_are_refused() -> None:
    torch.manual_seed(0)
    features, depth = torch.randn(2, 4, 24, 80), torch.rand(2, 32, 24, 80)
    outputs = [FrustumToBev(P2, SIZE, 4, backend=b)(features, depth) for b in ("rows", "elements", "dense")]
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0], rtol=1e-5, atol=1e-5)
    skewed = P2.copy()
    skewed[0, 1] = 5.0
    with pytest.raises(EdgekdError, match="rectified"):
        FrustumToBev(skewed, SIZE, 4)


class LogitLift(torch.nn.Module):
    """The student's use of the lift: features and depth logits (D + 1 bins) in, BEV out."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.lift = FrustumToBev(P2, SIZE, 4, backend=backend)

    def forward(self, features: torch.Tensor, depth_logits: torch.Tensor) -> torch.Tensor:
        return self.lift.from_logits(features, depth_logits)


@pytest.mark.parametrize("backend", ["rows", "elements"])
def test_onnx_runtime_and_openvino_match_pytorch(backend: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    ov = pytest.importorskip("openvino")
    from edgekd.export import EXPORTERS

    torch.manual_seed(1)
    model = LogitLift(backend).eval()
    features, logits = torch.randn(2, 8, 24, 80), torch.randn(2, 33, 24, 80)
    path = tmp_path / "lift.onnx"
    EXPORTERS.get("onnx").export(model, (features, logits), path, input_names=("features", "depth_logits"),
                                 output_names=("bev",))
    expected = model(features, logits).detach().numpy()
    feeds = {"features": features.numpy(), "depth_logits": logits.numpy()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=0, atol=1e-5)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled(feeds)[0], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", ["rows", "elements"])
def test_torchscript_export_at_opset_17_keeps_the_scatter_add(backend: str, tmp_path) -> None:
    # opset 17 goes through the TorchScript exporter (the int8 Q/DQ route), which writes a bare index_add as a
    # ScatterND without its "add" reduction: the rows backend must bring its own, and the sums must stay exact.
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from edgekd.export import EXPORTERS

    features, logits = torch.randn(1, 8, 24, 80), torch.randn(1, 33, 24, 80)
    model = LogitLift(backend).eval()
    path = tmp_path / f"{backend}.onnx"
    EXPORTERS.get("onnx").export(model, (features, logits), path, opset=17, input_names=("features", "depth_logits"),
                                 output_names=("bev",))
    scatters = [n for n in onnx.load(str(path)).graph.node if n.op_type.startswith("Scatter")]
    assert scatters and all(a.s == b"add" for n in scatters for a in n.attribute if a.name == "reduction")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"features": features.numpy(), "depth_logits": logits.numpy()})[0]
    np.testing.assert_allclose(got, model(features, logits).detach().numpy(), rtol=0, atol=1e-5)
