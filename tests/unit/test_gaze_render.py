"""The near-eye renderer: determinism, shapes, kappa on the label only, and images that move with gaze."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgekd.tasks.gaze.render import (
    PITCH_RANGE_DEG,
    YAW_RANGE_DEG,
    SubjectParams,
    optical_angles,
    render_eye,
    sample_gaze,
    sample_subject,
)


@pytest.fixture(scope="module")
def subject() -> SubjectParams:
    return sample_subject(np.random.default_rng(11))


def _steady(subject: SubjectParams) -> SubjectParams:
    """The same subject with a large pupil, wide-open lids and no lashes: the pupil is then the only dark blob."""
    return dataclasses.replace(subject, lid_upper=0.5, lid_lower=0.55, lid_follow=0.9, lash_density=0.0,
                               pupil_mean_mm=3.0)


def _pupil_centroid(image: np.ndarray) -> np.ndarray:
    low, median = float(image.min()), float(np.median(image))
    ys, xs = np.nonzero(image < low + 0.3 * (median - low))
    return np.array([xs.mean(), ys.mean()])


def test_render_shape_dtype_and_range(subject: SubjectParams) -> None:
    for size in (32, 64, 96):
        image = render_eye(subject, 0.0, 0.0, np.random.default_rng(0), size=size)
        assert image.shape == (size, size) and image.dtype == np.uint8
        assert image.std() > 10  # not blank: eye, skin and lids differ


def test_render_is_deterministic_per_seed(subject: SubjectParams) -> None:
    a = render_eye(subject, 5.0, -3.0, np.random.default_rng(7))
    b = render_eye(subject, 5.0, -3.0, np.random.default_rng(7))
    c = render_eye(subject, 5.0, -3.0, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 0.5  # per-image nuisances (noise, gain, slip) change
    assert sample_subject(np.random.default_rng(3)) == sample_subject(np.random.default_rng(3))


def test_label_is_optical_axis_plus_kappa(subject: SubjectParams) -> None:
    optical = optical_angles(subject, 10.0, -4.0)
    assert optical[0] + subject.kappa_yaw_deg == pytest.approx(10.0)
    assert optical[1] + subject.kappa_pitch_deg == pytest.approx(-4.0)
    # The image shows the optical axis: shifting both label and kappa by the same amount renders the same eye.
    shifted = dataclasses.replace(subject, kappa_yaw_deg=subject.kappa_yaw_deg + 6.0)
    a = render_eye(subject, 10.0, -4.0, np.random.default_rng(1))
    b = render_eye(shifted, 16.0, -4.0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, render_eye(shifted, 10.0, -4.0, np.random.default_rng(1)))


def test_kappa_distribution_matches_the_plan() -> None:
    subjects = [sample_subject(np.random.default_rng(i)) for i in range(400)]
    yaw = np.array([s.kappa_yaw_deg for s in subjects])
    pitch = np.array([s.kappa_pitch_deg for s in subjects])
    assert abs(yaw.mean() - 5.0) < 0.4 and abs(yaw.std() - 2.0) < 0.4
    assert abs(pitch.mean() - 1.5) < 0.2 and abs(pitch.std() - 1.0) < 0.2
    assert all(2 <= len(s.glint_angles_deg) <= 8 for s in subjects)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_pupil_moves_left_for_positive_yaw_and_up_for_positive_pitch(seed: int) -> None:
    subject = _steady(sample_subject(np.random.default_rng(100 + seed)))
    centre = {
        gaze: _pupil_centroid(render_eye(subject, *gaze, np.random.default_rng(seed)))
        for gaze in [(-20.0, 0.0), (0.0, 0.0), (20.0, 0.0), (0.0, -15.0), (0.0, 12.0)]
    }
    assert centre[(20.0, 0.0)][0] < centre[(0.0, 0.0)][0] - 3 < centre[(-20.0, 0.0)][0] - 6
    assert centre[(0.0, 12.0)][1] < centre[(0.0, 0.0)][1] - 1 < centre[(0.0, -15.0)][1] - 2


def test_sample_gaze_in_range_and_centre_heavy() -> None:
    gaze = sample_gaze(np.random.default_rng(0), 20000)
    assert gaze.shape == (20000, 2)
    assert gaze[:, 0].min() >= YAW_RANGE_DEG[0] and gaze[:, 0].max() <= YAW_RANGE_DEG[1]
    assert gaze[:, 1].min() >= PITCH_RANGE_DEG[0] and gaze[:, 1].max() <= PITCH_RANGE_DEG[1]
    central = np.mean(np.all(np.abs(gaze) < 10, axis=1))
    assert central > 0.3  # a uniform draw would put ~15% in the central 20°x20° box
    np.testing.assert_array_equal(gaze, sample_gaze(np.random.default_rng(0), 20000))


