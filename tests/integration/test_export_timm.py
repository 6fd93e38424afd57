"""A timm model nobody here wrote goes through `edgekd export` to every backend that runs here, with parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_mobilenetv3_exports_to_every_runnable_backend_with_parity(tmp_path: Path) -> None:
    from edgekd.export import BACKENDS

    out = tmp_path / "mnv3"
    ncnn = BACKENDS.get("ncnn").is_available()  # opt-in backend: named when its extra is installed
    backends = ["-b", "onnx", "-b", "openvino", "-b", "tensorrt", *(["-b", "ncnn"] if ncnn else [])]
    result = run_cli("export", "timm:mobilenetv3_large_100", "--input-shape", "1,3,128,128", "--out", str(out),
                     *backends, "--json", timeout=600)
    rows = {(row["backend"], row["precision"]): row for row in json.loads(result.stdout)}
    # On a CPU with AMX or AVX-512 BF16, OpenVINO computes an fp16 IR in bf16 (its own choice, which parity checks
    # because it is what the profiler times): the seeded random MobileNetV3 then misses the fp16 SNR budget
    # (24.8 dB < 30 dB on a Xeon with AMX) and the export fails, as it should. Elsewhere it passes.
    ov_fp16 = rows[("openvino", "fp16")]
    bf16_host = (ov_fp16["parity"].get("execution") or {}).get("inference_precision") == "bf16"
    if bf16_host and ov_fp16["status"] == "failed":
        assert result.returncode == 1 and ov_fp16["reason"].startswith("SNR"), ov_fp16
    else:
        assert result.returncode == 0, result.stderr[-3000:]
    ncnn_rows = [("ncnn", "fp32"), ("ncnn", "fp16")] if ncnn else []
    for key in [("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"), *ncnn_rows]:
        row = rows[key]
        if key == ("openvino", "fp16") and bf16_host and row["status"] == "failed":
            continue
        assert row["status"] == "passed", row
        parity = row["parity"]  # scaled to the outputs: SNR and top-1 agreement, the absolute |Δ| reported
        assert parity["snr_db"] >= parity["budget_min_snr_db"] and parity["budget_max_abs_diff"] is None
        assert parity["top1_agreement"] >= parity["budget_min_top1_agreement"] and Path(row["path"]).is_file()
    for precision in ("fp32", "fp16"):  # TensorRT cannot run here: the device bundle, lint clean
        bundle = rows[("tensorrt", precision)]
        assert bundle["status"] == "bundle", bundle
        script = Path(bundle["path"]).read_text()
        assert "trtexec" in script and "sha256sum -c" in script
    assert json.loads((out / "exports.json").read_text()) == json.loads(result.stdout)


def test_int8_without_calibration_and_onnx_fp16_are_refused(tmp_path: Path) -> None:
    for args, fragment in [(["-p", "int8"], "int8 needs calibration inputs"),
                           (["-b", "onnx", "-p", "fp16"], "onnx cannot produce fp16")]:
        result = run_cli("export", "timm:mobilenetv3_large_100", "--out", str(tmp_path / "x"), *args)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
        assert not (tmp_path / "x").exists()


def test_parity_runs_on_the_inputs_the_user_gives(tmp_path: Path) -> None:
    import numpy as np

    inputs = np.random.default_rng(7).uniform(-2, 2, (5, 3, 32, 32)).astype(np.float64)  # float64: converted
    np.save(tmp_path / "mine.npy", inputs)
    result = run_cli("export", "timm:resnet18", "-b", "onnx", "--input-shape", "1,3,32,32", "--parity-inputs",
                     str(tmp_path / "mine.npy"), "--out", str(tmp_path / "r18"), "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(result.stdout)
    assert row["status"] == "passed" and row["parity"]["samples"] == 5


@pytest.mark.parametrize("name", ["mobilenetv3_large_100", "resnet18"])
def test_the_pi_runtimes_pass_parity_on_photographs(name: str, tmp_path: Path) -> None:
    """ncnn, ExecuTorch and LiteRT files of a timm classifier, checked on real photographs (random weights: none
    can be downloaded here), with top-1 agreement against PyTorch."""
    import numpy as np

    from edgekd.export import BACKENDS
    from tests.photographs import PHOTOGRAPHS, photographs

    pytest.importorskip("skimage")
    from edgekd.export.litert_env import converter_python

    ready = {"litert": converter_python() is not None}
    backends = [b for b in ("ncnn", "executorch", "litert") if BACKENDS.get(b).is_available() and ready.get(b, True)]
    if not backends:
        pytest.skip("none of the ncnn, executorch and litert extras is installed")
    np.save(tmp_path / "photos.npy", photographs(224))
    args = [arg for backend in backends for arg in ("-b", backend)]
    result = run_cli("export", f"timm:{name}", *args, "--parity-inputs", str(tmp_path / "photos.npy"),
                     "--out", str(tmp_path / name), "--json", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert {row["backend"] for row in rows} == set(backends)
    for row in rows:
        assert row["status"] == "passed", row
        assert row["parity"]["samples"] == len(PHOTOGRAPHS) and row["parity"]["top1_agreement"] is not None
