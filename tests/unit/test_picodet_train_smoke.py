"""A tiny PicoDet overfits two synthetic pages: head, assigner and losses learn together."""

from __future__ import annotations

import numpy as np
import torch

from torchvision.ops import box_iou

from edgekd.models.picodet import build_picodet
from edgekd.tasks.layout.det_losses import PicoDetLoss
from edgekd.tasks.layout.postprocess import postprocess_detections

HEIGHT, WIDTH = 128, 96
# (x1, y1, x2, y2, class) per image; each class has its own fill colour on a light page.
RECTANGLES = [
    [(8, 10, 60, 40, 0), (20, 60, 88, 110, 1)],
    [(10, 8, 86, 30, 2), (6, 50, 44, 120, 0), (54, 70, 90, 118, 1)],
]
COLOURS = np.array([[0.1, 0.1, 0.1], [0.8, 0.2, 0.2], [0.2, 0.3, 0.9]], dtype=np.float32)


def _pages() -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    images = np.full((len(RECTANGLES), 3, HEIGHT, WIDTH), 0.9, dtype=np.float32)
    for image, rectangles in zip(images, RECTANGLES):
        for x1, y1, x2, y2, label in rectangles:
            image[:, y1:y2, x1:x2] = COLOURS[label][:, None, None]
    boxes = [torch.tensor([r[:4] for r in rects], dtype=torch.float32) for rects in RECTANGLES]
    labels = [torch.tensor([r[4] for r in rects]) for rects in RECTANGLES]
    return torch.from_numpy(images), boxes, labels


def test_tiny_picodet_overfits_two_pages() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images, boxes, labels = _pages()
    model = build_picodet(width=0.25, num_classes=3, neck_channels=32, levels=3).train()
    loss_fn = PicoDetLoss(num_classes=3, strides=model.strides)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(100):
        losses = loss_fn(model(images), boxes, labels)
        optimiser.zero_grad()
        losses["loss"].backward()
        optimiser.step()
        history.append(losses["loss"].item())
    assert np.mean(history[-5:]) < 0.5 * history[0], history[::10]

    # The eval-mode detector finds every rectangle: for each, the most confident detection overlapping it (IoU > 0.5)
    # has its class. (The best-overlapping one can be a low-scored duplicate of another class: which one is best by
    # a pixel differs between CPUs' float rounding, and AP ranks detections by score, not by overlap.)
    model.eval()
    with torch.no_grad():
        detections = postprocess_detections(*model(images))
    for found, gt_boxes, gt_labels in zip(detections, boxes, labels):
        overlap = box_iou(gt_boxes, torch.from_numpy(found.boxes)).numpy()
        assert (overlap.max(axis=1) > 0.5).all(), overlap.max(axis=1)
        scores = np.where(overlap > 0.5, found.scores[None, :], -np.inf)
        assert found.labels[scores.argmax(axis=1)].tolist() == gt_labels.tolist()
