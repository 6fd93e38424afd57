"""Four ordered corners from the teacher's masks: the oriented box of the vehicle, ordered by front and back.

The vehicle mask's largest connected component gives a minimum-area rectangle; the front and back masks'
centroids fix which short side is the front, and the camera looking down fixes left and right. Order:
front-left, front-right, back-right, back-left — the order of the goal corners.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

MIN_PIXELS = 12  # fewer vehicle pixels than this: the vehicle is not in view


def largest_component(mask: np.ndarray) -> Optional[np.ndarray]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_PIXELS:
        return None
    return labels == best


def ordered_corners(vehicle: np.ndarray, front: np.ndarray, back: np.ndarray) -> Optional[np.ndarray]:
    """Corners (4, 2) in the masks' pixel coordinates, or None when the vehicle or its halves are not found."""
    component = largest_component(vehicle)
    if component is None:
        return None
    front_px, back_px = np.argwhere(front & component), np.argwhere(back & component)
    if len(front_px) == 0 or len(back_px) == 0:
        return None
    points = np.argwhere(component)[:, ::-1].astype(np.float32)  # (x, y)
    box = cv2.boxPoints(cv2.minAreaRect(points))
    center = box.mean(axis=0)
    axis = front_px[:, ::-1].mean(axis=0) - back_px[:, ::-1].mean(axis=0)
    if not np.any(axis):
        return None
    axis = axis / np.linalg.norm(axis)
    left = np.array([axis[1], -axis[0]])  # image y points down, so the vehicle's left is the axis turned this way
    return order_by_axis(box, center, axis, left)


def order_by_axis(box: np.ndarray, center: np.ndarray, axis: np.ndarray, left: np.ndarray) -> np.ndarray:
    rel = box - center
    front_two = np.argsort(rel @ axis)[2:]
    back_two = np.argsort(rel @ axis)[:2]
    fl, fr = sorted(front_two, key=lambda i: -(rel[i] @ left))
    bl, br = sorted(back_two, key=lambda i: -(rel[i] @ left))
    return np.stack([box[fl], box[fr], box[br], box[bl]]).astype(np.float64)


def corners_from_logits(vehicle_logit: np.ndarray, split_logits: np.ndarray) -> Optional[np.ndarray]:
    """The teacher's post-processing of one frame: (1, H, W) vehicle logit and (3, H, W) split logits."""
    vehicle = vehicle_logit[0] > 0
    split = split_logits.argmax(axis=0)
    return ordered_corners(vehicle, split == 1, split == 2)
