"""Gaze metrics: (yaw, pitch) → 3-D gaze vectors, angular error, and K-means gaze balancing.

Convention (papers.md §1.4): g = (−cos p·sin y, −sin p, −cos p·cos y) with x to the image's right, y down and z
away from a camera facing the eye, so yaw = pitch = 0 looks straight back at that camera and pitch > 0 looks up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KMEANS_ITERATIONS = 30
KMEANS_RESTARTS = 4


def gaze_vector(yaw_pitch_rad: np.ndarray) -> np.ndarray:
    """Unit gaze vectors (N, 3) for (N, 2) yaw/pitch in radians.

    >>> gaze_vector(np.zeros((1, 2)))
    array([[-0., -0., -1.]])
    """
    yaw_pitch = np.asarray(yaw_pitch_rad, dtype=np.float64).reshape(-1, 2)
    yaw, pitch = yaw_pitch[:, 0], yaw_pitch[:, 1]
    return np.stack([-np.cos(pitch) * np.sin(yaw), -np.sin(pitch), -np.cos(pitch) * np.cos(yaw)], axis=1)


def gaze_vector_torch(yaw_pitch_rad: Any) -> Any:
    """The torch twin of `gaze_vector`, differentiable: (N, 2) radians → (N, 3)."""
    import torch

    yaw, pitch = yaw_pitch_rad[:, 0], yaw_pitch_rad[:, 1]
    return torch.stack([-torch.cos(pitch) * torch.sin(yaw), -torch.sin(pitch), -torch.cos(pitch) * torch.cos(yaw)], 1)


def angular_error_deg(pred_rad: np.ndarray, target_rad: np.ndarray) -> np.ndarray:
    """Per-sample angle (degrees) between predicted and target gaze, both (N, 2) yaw/pitch in radians.

    >>> float(angular_error_deg(np.radians([[10.0, 0.0]]), np.zeros((1, 2)))[0])
    10.0
    """
    a, b = gaze_vector(pred_rad), gaze_vector(target_rad)
    cosine = np.clip(np.sum(a * b, axis=1), -1.0, 1.0)
    sine = np.linalg.norm(np.cross(a, b), axis=1)
    # atan2(|a×b|, a·b) equals arccos of the clipped cosine but keeps its precision for tiny errors.
    return np.degrees(np.arctan2(sine, cosine))


def mean_angular_error_deg(pred_rad: np.ndarray, target_rad: np.ndarray) -> float:
    """Mean of `angular_error_deg` over the samples."""
    return float(np.mean(angular_error_deg(pred_rad, target_rad)))


def kmeans(points: np.ndarray, k: int, seed: int, restarts: int = KMEANS_RESTARTS) -> np.ndarray:
    """Cluster labels (N,): the best (lowest within-cluster error) of a few k-means++ starts, each refined by a
    fixed number of Lloyd steps; deterministic by seed."""
    rng = np.random.default_rng(seed)
    points = np.asarray(points, dtype=np.float64)
    best, best_error = None, np.inf
    for _ in range(restarts):
        centres = _lloyd(points, _kmeans_pp(points, k, rng))
        labels = _nearest(points, centres)
        error = float(((points - centres[labels]) ** 2).sum())
        if error < best_error:
            best, best_error = labels, error
    return best


def _lloyd(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    k = len(centres)
    for _ in range(KMEANS_ITERATIONS):
        labels = _nearest(points, centres)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, points[:, d], minlength=k) for d in range(points.shape[1])], 1)
        filled = counts > 0  # an emptied cluster keeps its old centre
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def _kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [points[rng.integers(len(points))]]
    d2 = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        if d2.sum() <= 0:  # fewer distinct points than clusters
            break
        centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((points - centres[-1]) ** 2).sum(1))
    return np.array(centres)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    # |p - c|² = |p|² - 2 p·c + |c|²; |p|² is the same for every centre, so it can be left out.
    return np.argmin((centres**2).sum(1)[None] - 2.0 * points @ centres.T, axis=1)


def balanced_cluster_indices(gaze_deg: np.ndarray, k: int = 15, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices into `gaze_deg` (N, 2) that draw equally from its k K-means gaze clusters (GazeGen's set G).

    Each non-empty cluster gets n // clusters indices (the remainder goes to randomly chosen clusters), drawn
    without replacement unless the cluster is smaller than its share. The result is shuffled.

    >>> idx = balanced_cluster_indices(np.random.default_rng(0).normal(size=(300, 2)), k=3, seed=0)
    >>> idx.shape
    (300,)
    """
    gaze = np.asarray(gaze_deg, dtype=np.float64)
    n = len(gaze) if n is None else n
    if len(gaze) == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    labels = kmeans(gaze, min(k, len(gaze)), seed)
    clusters = [np.flatnonzero(labels == j) for j in np.unique(labels)]
    shares = np.full(len(clusters), n // len(clusters))
    shares[rng.choice(len(clusters), size=n % len(clusters), replace=False)] += 1
    picks = [rng.choice(members, size=share, replace=share > len(members)) for members, share in zip(clusters, shares)]
    return rng.permutation(np.concatenate(picks)).astype(np.int64)
