"""YOLOv8 from Ultralytics' bundled YAML: raw head output as exported, neck features P3/P4/P5 by hooks."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import require_yolo_extra

require_yolo_extra()

from edgekd.yolo.models import build_yolo, neck_features  # noqa: E402


@pytest.fixture(scope="module")
def yolov8n():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return build_yolo("yolov8n", num_classes=5)


def test_eval_forward_is_the_raw_head_tensor(yolov8n) -> None:
    assert not yolov8n.training
    with torch.no_grad():
        out = yolov8n(torch.rand(2, 3, 64, 96))
    # (N, 4 + nc, anchors): 8·12 + 4·6 + 2·3 anchor points for a 64×96 input at strides 8, 16, 32.
    assert out.shape == (2, 4 + 5, 96 + 24 + 6)
    scores = out[:, 4:]
    assert scores.min() >= 0 and scores.max() <= 1  # class scores leave the head through a sigmoid
    widths_heights = out[:, 2:4]
    assert (widths_heights > 0).all()  # decoded (cx, cy, w, h) boxes: positive sizes


def test_training_mode_output_is_what_ultralytics_loss_takes(yolov8n) -> None:
    from ultralytics.utils.loss import v8DetectionLoss

    batch = {"batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]])}
    yolov8n.train()
    try:
        total, _ = v8DetectionLoss(yolov8n.detector)(yolov8n(torch.rand(1, 3, 64, 64)), batch)
        total.sum().backward()
    finally:
        yolov8n.eval()
        yolov8n.zero_grad(set_to_none=True)
    assert torch.isfinite(total).all() and total.sum() > 0


def test_neck_features_have_yolov8_strides_and_widths(yolov8n) -> None:
    assert yolov8n.strides == (8, 16, 32)
    assert yolov8n.neck_channels == (64, 128, 256)  # yolov8n: 256·0.25, 512·0.25, 1024·0.25
    assert yolov8n.num_classes == 5
    features = neck_features(yolov8n, torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [(2, 64, 8, 12), (2, 128, 4, 6), (2, 256, 2, 3)]
    assert not any(f.requires_grad for f in features)


def test_yolov8s_is_twice_as_wide() -> None:
    model = build_yolo("yolov8s", num_classes=3)
    assert model.neck_channels == (128, 256, 512)
    assert model.num_classes == 3 and model.strides == (8, 16, 32)


def test_the_anchor_grid_follows_the_input_size(yolov8n) -> None:
    # A grid cached for one size must not leak into the next call (the head recomputes it every call).
    with torch.no_grad():
        small = yolov8n(torch.rand(1, 3, 64, 64))
        large = yolov8n(torch.rand(1, 3, 128, 64))
    assert small.shape[-1] == 84 and large.shape[-1] == 168
    centres_y = large[0, 1]
    assert centres_y.max() > 64  # boxes are decoded over the whole 128-pixel height


def test_network_switches_are_turned_off_even_after_an_earlier_import(monkeypatch) -> None:
    from ultralytics.utils import checks, events

    from edgekd.yolo.offline import require_ultralytics

    # As if the user's process had imported Ultralytics online, with auto-install and usage events on.
    monkeypatch.setattr(checks, "ONLINE", True)
    monkeypatch.setattr(checks, "AUTOINSTALL", True)
    monkeypatch.setattr(events.events, "enabled", True)
    require_ultralytics()
    assert checks.ONLINE is False and checks.AUTOINSTALL is False and events.events.enabled is False


def test_an_unreadable_image_stays_pils_error_after_ultralytics_is_imported(tmp_path) -> None:
    from PIL import Image, UnidentifiedImageError

    from edgekd.yolo.offline import require_ultralytics

    require_ultralytics()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UnidentifiedImageError):
        Image.open(bad)
