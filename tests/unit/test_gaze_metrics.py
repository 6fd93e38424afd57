"""Gaze metrics: the vector convention, golden angular errors, and K-means balancing of gaze directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.tasks.gaze.metrics import (
    angular_error_deg,
    balanced_cluster_indices,
    gaze_vector,
    gaze_vector_torch,
    kmeans,
    mean_angular_error_deg,
)


def test_gaze_vector_convention() -> None:
    # Straight ahead looks back at the camera (-z); positive pitch looks up (-y); positive yaw looks to -x.
    vectors = gaze_vector(np.radians([[0.0, 0.0], [0.0, 90.0], [90.0, 0.0]]))
    np.testing.assert_allclose(vectors, [[0, 0, -1], [0, -1, 0], [-1, 0, 0]], atol=1e-12)
    assert np.allclose(np.linalg.norm(gaze_vector(np.random.default_rng(0).normal(size=(50, 2))), axis=1), 1.0)


def test_torch_twin_matches_numpy() -> None:
    angles = np.random.default_rng(1).uniform(-0.6, 0.6, size=(20, 2))
    np.testing.assert_allclose(gaze_vector_torch(torch.from_numpy(angles)).numpy(), gaze_vector(angles), atol=1e-12)


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ([10.0, 0.0], [0.0, 0.0], 10.0),  # yaw alone at pitch 0 is a pure angle
        ([0.0, -7.5], [0.0, 12.5], 20.0),  # pitch alone likewise
        ([3.0, 4.0], [3.0, 4.0], 0.0),
        ([0.0, 0.0], [180.0, 0.0], 180.0),
        ([90.0, 0.0], [0.0, 0.0], 90.0),
    ],
)
def test_angular_error_golden_numbers(pred: list, target: list, expected: float) -> None:
    error = angular_error_deg(np.radians([pred]), np.radians([target]))
    assert error.shape == (1,)
    assert error[0] == pytest.approx(expected, abs=1e-9)


def test_yaw_at_high_pitch_is_a_smaller_angle() -> None:
    # 10° of yaw at 60° pitch spans less than 10° on the sphere (cos 60° shrinks the circle of latitude).
    error = angular_error_deg(np.radians([[10.0, 60.0]]), np.radians([[0.0, 60.0]]))[0]
    assert 4.9 < error < 5.1


def test_mean_angular_error() -> None:
    pred = np.radians([[10.0, 0.0], [0.0, 0.0]])
    assert mean_angular_error_deg(pred, np.zeros((2, 2))) == pytest.approx(5.0)


def _four_blobs(counts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = np.array([[-20.0, -15.0], [20.0, -15.0], [-20.0, 15.0], [20.0, 15.0]])
    labels = np.repeat(np.arange(4), counts)
    return centres[labels] + rng.normal(0, 1.0, (len(labels), 2)), labels


def test_kmeans_finds_separated_blobs_deterministically() -> None:
    points, truth = _four_blobs((50, 50, 50, 50))
    labels = kmeans(points, 4, seed=3)
    # Same partition as the truth, up to renaming the clusters.
    assert len({(t, l) for t, l in zip(truth, labels)}) == 4
    np.testing.assert_array_equal(labels, kmeans(points, 4, seed=3))


def test_balanced_indices_sample_every_cluster_equally() -> None:
    points, truth = _four_blobs((400, 40, 20, 5))  # heavily imbalanced gaze directions
    indices = balanced_cluster_indices(points, k=4, n=400, seed=0)
    assert indices.shape == (400,) and indices.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(truth[indices], minlength=4), [100, 100, 100, 100])
    # The big cluster is drawn without replacement; the tiny one had to repeat.
    big = indices[truth[indices] == 0]
    assert len(np.unique(big)) == len(big)
    np.testing.assert_array_equal(indices, balanced_cluster_indices(points, k=4, n=400, seed=0))


def test_balanced_indices_defaults_and_edge_cases() -> None:
    points, _ = _four_blobs((10, 10, 10, 10))
    assert len(balanced_cluster_indices(points, k=4, seed=1)) == 40  # n defaults to len(gaze_deg)
    assert len(balanced_cluster_indices(points[:3], k=15, seed=1)) == 3  # fewer points than clusters
    assert len(balanced_cluster_indices(np.zeros((0, 2)), k=15, seed=1)) == 0
