"""A tiny PicoDet overfits two synthetic pages: head, assigner and losses learn together."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from edgekd.models.picodet import build_picodet
from edgekd.tasks.layout.det_losses import PicoDetLoss

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


def _relabelled(labels: list[torch.Tensor], shift: int) -> list[torch.Tensor]:
    return [(label + shift) % 3 for label in labels]


def test_tiny_picodet_overfits_two_pages() -> None:
    # Which rectangle is found first, and which duplicate outranks which, differ between CPUs: float summation
    # order moves 100 steps of training as a new seed does (eval-mode AP50 ranged 0.22-1.0 over 48 seeds). What
    # every seed shares is measured here, on the training batch with the batch-norm statistics it trained with
    # (the running averages still lag the weights after 100 steps). Over 48 seeds: loss 0.26-0.37 of its start;
    # best predicted box per rectangle mean IoU 0.86-0.99 (0.56 untrained); classification loss under the true
    # labels <= 0.08 of that under either relabelling. Learning rate 0 gives 1.0, 0.56, 1.0; labels permuted in
    # training 0.26-0.34, 0.93-0.99, >= 14; labels mixed between pages 0.27-0.35, 0.99, >= 1.4.
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

    with torch.no_grad():
        raw = model(images)
        predicted, _ = model.decode(raw)
        best_iou = [box_iou(truth, found).max(dim=1).values for truth, found in zip(boxes, predicted)]
        class_loss = {shift: loss_fn(raw, boxes, _relabelled(labels, shift))["loss_vfl"].item() for shift in range(3)}
    assert torch.cat(best_iou).mean() > 0.75, best_iou
    assert class_loss[0] < 0.3 * min(class_loss[1], class_loss[2]), class_loss
