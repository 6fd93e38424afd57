"""The NSER-IBVS law against hand-computed cases: interaction matrix, gain switch, commands, clipping."""

import math

import numpy as np
import pytest

from edgekd.tasks.ibvs.law import (
    LawGains,
    command_velocity,
    denormalise_commands,
    interaction_matrix,
    normalise_commands,
    point_depths,
    to_commands,
    velocities,
)

F = 959.64
K = np.array([[F, 0.0, 640.0], [0.0, F, 360.0], [0.0, 0.0, 1.0]])


def test_interaction_matrix_at_the_principal_point():
    # x = y = 0, Z_i = Z = 2: J = K[:2,:2] · [[-1/2, 0, 0], [0, -1/2, 0]]
    J = interaction_matrix(np.array([[640.0, 360.0]]), K, depth=2.0)
    np.testing.assert_allclose(J, [[-F / 2, 0, 0], [0, -F / 2, 0]])


def test_interaction_matrix_off_axis_uses_the_ray_depth():
    # u = 640 + F → x = 1, y = 0; Z_i = 1·sqrt(1 + 0 + 1) = √2
    # row 1: F·[-1/√2, 0, y] = [-F/√2, 0, 0]; row 2: F·[0, -1/√2, -x] = [0, -F/√2, -F]
    point = np.array([[640.0 + F, 360.0]])
    assert point_depths(point, K, 1.0)[0] == pytest.approx(math.sqrt(2))
    J = interaction_matrix(point, K, depth=1.0)
    np.testing.assert_allclose(J, [[-F / math.sqrt(2), 0, 0], [0, -F / math.sqrt(2), -F]])


def test_interaction_matrix_rotation_column_couples_x_and_y():
    # u = 640, v = 360 + F/2 → x = 0, y = 0.5; Z_i = sqrt(1.25); row 1 rotation entry F·y = F/2
    J = interaction_matrix(np.array([[640.0, 360.0 + F / 2]]), K, depth=1.0)
    z = math.sqrt(1.25)
    np.testing.assert_allclose(J, [[-F / z, 0, F / 2], [0, -F / z, 0]])


@pytest.mark.parametrize("shift, gain", [(31.0, 0.75), (29.0, 0.5)])
def test_gain_switches_below_60_px(shift, gain):
    # Four points at the centre, goal `shift` px to the right: e = [d,0]*4, ‖e‖ = 2d (62 → far, 58 → near).
    # J stacks [[-F,0,0],[0,-F,0]] four times; the least-squares v_x = -d/F, then Λ scales it.
    points = np.full((4, 2), [640.0, 360.0])
    goal = points + [shift, 0.0]
    velocity, norm = velocities(points, goal, K, LawGains())
    assert norm == pytest.approx(2 * shift)
    np.testing.assert_allclose(velocity, [-gain * shift / F, 0.0, 0.0], atol=1e-12)


def test_far_gains_are_the_papers():
    assert LawGains().far == pytest.approx((0.75, 0.75, 0.345))


def test_commands_scale_and_round_up():
    # roll = ceil(100·0.3/2) = 15; pitch = ceil(-100·(-0.1)/2) = 5; yaw = 100·0.2/(π/3) = 19.099 → 20
    np.testing.assert_array_equal(to_commands(np.array([0.3, -0.1, 0.2])), [15, 5, 20])


def test_yaw_dead_band_and_small_velocity_band():
    # |yaw| = 100·0.05/(π/3) = 4.77 < 8 → 0; |v_x| = 0.003 and |v_y| = 0.004 lie in [0.002, 0.005] → ±1
    np.testing.assert_array_equal(to_commands(np.array([-0.003, 0.004, 0.05])), [-1, -1, 0])


def test_negative_small_velocity_rounds_to_zero():
    # ceil(100·(-0.01)/2) = ceil(-0.5) = 0: the paper's controller has no negative creep below 0.02 m/s
    assert to_commands(np.array([-0.01, 0.0, 0.0]))[0] == 0


def test_commands_are_clipped_to_100():
    np.testing.assert_array_equal(to_commands(np.array([5.0, -5.0, 3.0])), [100, 100, 100])
    np.testing.assert_array_equal(to_commands(np.array([-5.0, 5.0, -3.0])), [-100, -100, -100])


def test_command_velocity_inverts_the_scaling():
    # 50 → 1 m/s; pitch -25 → v_y = +0.5 m/s; yaw 100 → 60°/s
    np.testing.assert_allclose(command_velocity(np.array([50, -25, 100])), [1.0, 0.5, math.pi / 3])


def test_student_targets_are_scaled_and_clipped():
    np.testing.assert_allclose(normalise_commands(np.array([48.0, -9.0, 20.5]), (24, 9, 41)), [1.0, -1.0, 0.5])
    np.testing.assert_array_equal(denormalise_commands(np.array([0.5, -0.26, 1.0]), (24, 9, 41)), [12, -2, 41])
