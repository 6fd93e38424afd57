"""Overlaps of KITTI boxes: 2D image boxes, rotated bird's-eye-view rectangles and 3D boxes.

All in KITTI's rectified camera frame (x right, y down, z forward). A 3D box is (x, y, z, h, w, l, ry) with (x, y, z)
the bottom centre, as in label files: it spans y ∈ [y − h, y], length l along its heading (cos ry, 0, −sin ry) and
width w across it. The BEV rectangle is its footprint in the x–z plane.

Rotated overlaps clip two convex quadrilaterals, vectorised over all pairs: the intersection polygon is the convex
hull of the corners of each box inside the other plus the crossings of their edges, whose area the shoelace formula
gives once the points are sorted by angle around their mean.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-9
_NEXT = [1, 2, 3, 0]  # each quadrilateral corner's successor


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """Footprint corners (N, 4, 2) as (x, z), counter-clockwise in the x–z plane, of boxes (N, 5) [x, z, l, w, ry].

    >>> bev_corners(np.array([[0.0, 0.0, 2.0, 1.0, 0.0]]))[0].tolist()
    [[1.0, 0.5], [-1.0, 0.5], [-1.0, -0.5], [1.0, -0.5]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    half_l, half_w = boxes[:, 2:3] / 2, boxes[:, 3:4] / 2
    local_x = np.concatenate([half_l, -half_l, -half_l, half_l], axis=1)
    local_z = np.concatenate([half_w, half_w, -half_w, -half_w], axis=1)
    cos, sin = np.cos(boxes[:, 4:5]), np.sin(boxes[:, 4:5])
    # Rotation by ry about the camera's y axis (pointing down): x' = c·x + s·z, z' = −s·x + c·z.
    x = boxes[:, 0:1] + cos * local_x + sin * local_z
    z = boxes[:, 1:2] - sin * local_x + cos * local_z
    return np.stack([x, z], axis=-1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(P, K) whether each of K points (P, K, 2) lies in (or on) the convex polygon (P, 4, 2)."""
    edges = polygon[:, _NEXT] - polygon  # (P, 4, 2)
    rel = points[:, :, None, :] - polygon[:, None, :, :]  # (P, K, 4, 2)
    side = _cross(edges[:, None], rel)  # (P, K, 4)
    orientation = np.sign(_cross(edges[:, 0], edges[:, 1]))[:, None, None]  # +1 counter-clockwise
    tolerance = 1e-9 * (1.0 + np.abs(edges).sum(-1).max(-1))[:, None, None]
    return np.all(side * orientation >= -tolerance, axis=-1)


def _edge_crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crossings (P, 16, 2) of the 4 edges of `a` with the 4 of `b`, and which exist (P, 16)."""
    p, r = a[:, :, None, :], (a[:, _NEXT] - a)[:, :, None, :]
    q, s = b[:, None, :, :], (b[:, _NEXT] - b)[:, None, :, :]
    denom = _cross(r, s)
    parallel = np.abs(denom) < _EPS
    safe = np.where(parallel, 1.0, denom)
    t = _cross(q - p, s) / safe
    u = _cross(q - p, r) / safe
    valid = ~parallel & (t >= -_EPS) & (t <= 1 + _EPS) & (u >= -_EPS) & (u <= 1 + _EPS)
    points = p + t[..., None] * r
    pairs = a.shape[0]
    return points.reshape(pairs, 16, 2), valid.reshape(pairs, 16)


def convex_quad_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area (P,) of the overlap of paired convex quadrilaterals a[i] and b[i], each (P, 4, 2)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape[0] == 0:
        return np.zeros(0)
    crossings, crossing_valid = _edge_crossings(a, b)
    points = np.concatenate([a, b, crossings], axis=1)  # (P, 24, 2)
    valid = np.concatenate([_inside(a, b), _inside(b, a), crossing_valid], axis=1)
    count = valid.sum(axis=1)
    centre = (points * valid[..., None]).sum(1) / np.maximum(count, 1)[:, None]
    offset = points - centre[:, None, :]
    angle = np.where(valid, np.arctan2(offset[..., 1], offset[..., 0]), np.inf)
    order = np.argsort(angle, axis=1, kind="stable")
    ring = np.take_along_axis(offset, order[..., None], axis=1)
    ring_valid = np.take_along_axis(valid, order, axis=1)
    # Unused slots repeat the first hull point, so they add zero area and close the ring for free.
    ring = np.where(ring_valid[..., None], ring, ring[:, :1, :])
    area = 0.5 * np.abs(_cross(ring, np.roll(ring, -1, axis=1)).sum(axis=1))
    return np.where(count >= 3, area, 0.0)


def _all_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row i·M + j pairs a[i] with b[j]."""
    return np.repeat(a, len(b), axis=0), np.tile(b, (len(a), 1))


def paired_bev_intersection(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Footprint overlap areas (P,) of paired BEV boxes a[i], b[i], each (P, 5) [x, z, l, w, ry]."""
    return convex_quad_intersection_area(bev_corners(boxes_a), bev_corners(boxes_b))


def bev_intersection(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Footprint overlap areas (N, M) of BEV boxes (N, 5) and (M, 5), each [x, z, l, w, ry]."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 5)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 5)
    return paired_bev_intersection(*_all_pairs(boxes_a, boxes_b)).reshape(len(boxes_a), len(boxes_b))


def paired_bev_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Rotated BEV IoU (P,) of paired boxes, each (P, 5) [x, z, l, w, ry]."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 5)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 5)
    inter = paired_bev_intersection(boxes_a, boxes_b)
    union = boxes_a[:, 2] * boxes_a[:, 3] + boxes_b[:, 2] * boxes_b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, _EPS), 0.0)


def bev_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Rotated BEV IoU (N, M) of boxes (N, 5) and (M, 5), each [x, z, l, w, ry]."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 5)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 5)
    return paired_bev_iou(*_all_pairs(boxes_a, boxes_b)).reshape(len(boxes_a), len(boxes_b))


def boxes3d_to_bev(boxes: np.ndarray) -> np.ndarray:
    """(N, 7) [x, y, z, h, w, l, ry] → (N, 5) [x, z, l, w, ry]."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    return boxes[:, [0, 2, 5, 4, 6]]


def paired_iou_3d(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """3D IoU (P,) of paired boxes, each (P, 7) [x, y, z, h, w, l, ry]."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 7)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 7)
    inter_bev = paired_bev_intersection(boxes3d_to_bev(boxes_a), boxes3d_to_bev(boxes_b))
    # y grows downwards and (x, y, z) is the bottom centre, so a box spans [y − h, y].
    bottom = np.minimum(boxes_a[:, 1], boxes_b[:, 1])
    top = np.maximum(boxes_a[:, 1] - boxes_a[:, 3], boxes_b[:, 1] - boxes_b[:, 3])
    inter = inter_bev * np.clip(bottom - top, 0.0, None)
    union = np.prod(boxes_a[:, 3:6], axis=1) + np.prod(boxes_b[:, 3:6], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, _EPS), 0.0)


def iou_3d(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """3D IoU (N, M): BEV overlap area × vertical overlap / union of volumes; boxes (N, 7) [x, y, z, h, w, l, ry].

    >>> float(iou_3d(np.array([[0, 1, 10, 2, 2, 2, 0.0]]), np.array([[0, 0, 10, 2, 2, 2, 0.0]]))[0, 0])
    0.3333333333333333
    """
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 7)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 7)
    return paired_iou_3d(*_all_pairs(boxes_a, boxes_b)).reshape(len(boxes_a), len(boxes_b))


def iou_2d(boxes_a: np.ndarray, boxes_b: np.ndarray, *, over_first: bool = False) -> np.ndarray:
    """Overlap (N, M) of image boxes [x1, y1, x2, y2]: IoU, or intersection / area of a when `over_first`.

    The devkit measures areas as (x2 − x1)·(y2 − y1), without the +1 of some pixel conventions. `over_first` is
    its criterion for DontCare regions: how much of a detection lies inside the region.
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    denominator = area_a[:, None] if over_first else area_a[:, None] + area_b[None, :] - inter
    denominator = np.broadcast_to(denominator, inter.shape)
    return np.where(denominator > 0, inter / np.where(denominator > 0, denominator, 1.0), 0.0)
