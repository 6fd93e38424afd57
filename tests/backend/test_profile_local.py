"""Local ONNX Runtime profiling: sample counts, percentile order, interleaved side-by-side ranking."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgekd.artifacts import sha256_file  # noqa: E402
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.export import EXPORTERS  # noqa: E402
from edgekd.profile.local import ProfileResult, profile_onnxruntime, profile_side_by_side  # noqa: E402

SHAPE = (1, 32, 32, 32)


def conv_stack(depth: int) -> nn.Module:
    return nn.Sequential(*[nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU()) for _ in range(depth)]).eval()


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("profile")
    exporter = EXPORTERS.get("onnx")
    torch.manual_seed(0)
    return {
        name: exporter.export(conv_stack(depth), torch.zeros(SHAPE), folder / f"{name}.onnx", simplify=False).path
        for name, depth in (("small", 1), ("big", 20))
    }


def test_profile_onnxruntime_counts_and_percentiles(onnx_files) -> None:
    seen = []
    result = profile_onnxruntime(onnx_files["small"], input_shape=SHAPE, threads=1, warmup=3, runs=20,
                                 progress=lambda done, total: seen.append((done, total)))
    stats = result.stats
    assert result.runs == stats.count == 20
    assert stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert result.mode == "measured-local" and result.runtime == "onnxruntime" and result.precision == "fp32"
    assert result.model == "small.onnx" and result.sha256 == sha256_file(onnx_files["small"])
    assert result.input_shape == list(SHAPE) and result.batch_size == 1 and result.threads == 1
    assert result.cold_start_ms > 0 and result.peak_rss_mb is not None
    assert result.environment["cpu"] and "onnxruntime" in result.environment["packages"]
    assert seen[-1] == (20, 20)
    assert ProfileResult.model_validate_json(result.model_dump_json()) == result


def test_side_by_side_ranks_models_by_size(onnx_files) -> None:
    results = profile_side_by_side(onnx_files, input_shape=SHAPE, threads=1, warmup=2, runs=21, rounds=5)
    assert set(results) == {"small", "big"}
    assert all(r.stats.count == 21 and r.rounds == 5 for r in results.values())
    # 20 convolutions against 1: a behaviour check on the ranking, not on absolute times
    assert results["big"].stats.p50_ms > 3 * results["small"].stats.p50_ms


def test_dynamic_batch_file_profiles_at_another_batch(onnx_files) -> None:
    result = profile_onnxruntime(onnx_files["small"], input_shape=(4, *SHAPE[1:]), threads=1, warmup=1, runs=3)
    assert result.batch_size == 4
    assert result.stats.throughput_per_s == pytest.approx(4000 / result.stats.mean_ms)


def test_bad_requests_are_refused(onnx_files, tmp_path) -> None:
    with pytest.raises(EdgekdError, match="runs must be >= 1"):
        profile_onnxruntime(onnx_files["small"], input_shape=SHAPE, runs=0)
    with pytest.raises(EdgekdError, match="takes input shape"):
        profile_onnxruntime(onnx_files["small"], input_shape=(1, 3, 32, 32), runs=1)
    with pytest.raises(EdgekdError, match="not found"):
        profile_onnxruntime(tmp_path / "missing.onnx", input_shape=SHAPE, runs=1)
