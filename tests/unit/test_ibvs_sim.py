"""The simulator agrees with the law's geometry, masks agree with corners, and the oracle flies home."""

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.recipe.schema import RECIPE_MODELS
from edgekd.tasks.ibvs import common, sim
from edgekd.tasks.ibvs.camera import Camera
from edgekd.tasks.ibvs.controllers import OracleController
from edgekd.tasks.ibvs.corners import ordered_corners
from edgekd.tasks.ibvs.episodes import EpisodeFrames, EpisodeLog, read_index, write_episode, write_index
from edgekd.tasks.ibvs.flight import box_iou, fly
from edgekd.tasks.ibvs.law import reduced_jacobian

IbvsRecipe = RECIPE_MODELS["ibvs"]


@pytest.fixture(scope="module")
def recipe():
    return IbvsRecipe(name="unit", task="ibvs", sim={"render_width": 160, "render_height": 90, "distractors": 5})


def _world(recipe, seed=0):
    rng = np.random.default_rng(seed)
    return common.new_world(recipe, rng), rng


def test_jacobian_matches_the_simulated_image_motion(recipe):
    # A nadir camera over a plane sees every point at depth = altitude: image motion under a small camera
    # velocity must equal the reduced interaction matrix (true depths) times that velocity.
    world, _ = _world(recipe)
    camera = common.camera(recipe)
    state = sim.pose_for_offset(world, camera, np.array([150.0, -80.0]), 0.3)
    s0 = sim.corners_px(world, state, camera)
    J = reduced_jacobian(s0, camera.sensor_K, np.full(4, camera.altitude))
    for velocity in ([0.2, 0.0, 0.0], [0.0, -0.3, 0.0], [0.0, 0.0, 0.4]):
        v = np.array(velocity)
        dt = 1e-4
        x_axis, y_axis = sim.camera_axes(state.yaw)
        moved = sim.DroneState(state.position + (v[0] * x_axis + v[1] * y_axis) * dt, state.yaw - v[2] * dt)
        flow = (sim.corners_px(world, moved, camera) - s0).reshape(-1) / dt
        np.testing.assert_allclose(flow, J @ v, rtol=1e-3, atol=1e-2)


def test_goal_pose_puts_the_front_at_the_top(recipe):
    world, _ = _world(recipe)
    corners = sim.corners_px(world, sim.goal_state(world), common.camera(recipe))
    front_left, front_right, back_right, back_left = corners
    assert front_left[1] < back_left[1] and front_right[1] < back_right[1]  # front is up
    assert front_left[0] < front_right[0]  # left is left
    np.testing.assert_allclose(corners.mean(axis=0), [640, 360], atol=1e-6)


def test_rendered_masks_give_the_exact_corners(recipe):
    camera = common.camera(recipe)
    errors = []
    for seed in range(6):
        world, rng = _world(recipe, seed)
        state = sim.pose_for_offset(world, camera, rng.uniform(-300, 300, 2) * [1, 0.4], rng.uniform(-0.6, 0.6))
        _, labels = sim.render(world, state, camera, rng)
        found = ordered_corners(labels > 0, labels == 1, labels == 2)
        errors.append(np.abs(camera.to_sensor(found) - sim.corners_px(world, state, camera)).max())
    # one render pixel is 8 sensor pixels at 160x90; mask quantisation stays within about one pixel
    assert max(errors) < 12


def test_corner_order_follows_the_front_mask():
    vehicle = np.zeros((40, 40), bool)
    vehicle[10:30, 15:25] = True  # tall box
    front = vehicle.copy()
    front[20:] = False  # front is the top half
    corners = ordered_corners(vehicle, front, vehicle & ~front)
    np.testing.assert_allclose(corners, [[15, 10], [24, 10], [24, 29], [15, 29]], atol=0.6)
    flipped = ordered_corners(vehicle, vehicle & ~front, front)  # front at the bottom: left and right swap too
    np.testing.assert_allclose(flipped, [[24, 29], [15, 29], [15, 10], [24, 10]], atol=0.6)


def test_no_vehicle_no_corners():
    empty = np.zeros((20, 20), bool)
    assert ordered_corners(empty, empty, empty) is None


def test_box_iou_by_hand():
    a = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    b = a + [1, 0]  # overlap 1x2 = 2, union 4 + 4 - 2 = 6
    assert box_iou(a, b) == pytest.approx(2 / 6)


def test_oracle_reaches_the_goal_from_a_paper_start(recipe):
    camera, dynamics = common.camera(recipe), common.dynamics(recipe)
    world, rng = _world(recipe, 3)
    goal = sim.corners_px(world, sim.goal_state(world), camera)
    offset, yaw = common.paper_starts(recipe)[0]
    result = fly(world, sim.pose_for_offset(world, camera, offset, yaw), camera, dynamics,
                 OracleController(goal, camera, common.gains(recipe)), rng, timeout_s=75, goal_px=40, hold_s=3)
    assert result.success
    assert result.errors[-1] < result.errors[0] / 5


def test_episode_roundtrip_and_bad_folders(tmp_path, recipe):
    camera = common.camera(recipe)
    world, rng = _world(recipe)
    log = EpisodeLog(input_size=32, goal=np.zeros((4, 2)))
    state = sim.goal_state(world)
    frame, _ = sim.render(world, state, camera, rng)
    for command in ([12, -9, 41], [48, 0, -82]):
        log.record(frame=frame, state=state, truth=sim.corners_px(world, state, camera), commands=np.array(command))
    entry = write_episode(tmp_path, 0, log)
    write_index(tmp_path, {"input_size": 32, "command_scale": [24, 9, 41]}, [entry])
    data = EpisodeFrames([tmp_path])
    assert len(data) == 2 and data[0][0].shape == (3, 32, 32)
    np.testing.assert_allclose(data.targets, [[0.5, -1, 1], [1, 0, -1]])  # scaled, then clipped
    (tmp_path / entry["file"]).unlink()
    with pytest.raises(EdgekdError, match="listed in index.json but missing"):
        EpisodeFrames([tmp_path])
    with pytest.raises(EdgekdError, match="episode index not found"):
        read_index(tmp_path / "nowhere")


def test_render_size_must_keep_the_aspect():
    with pytest.raises(ValueError, match="16:9"):
        IbvsRecipe(name="x", task="ibvs", sim={"render_width": 160, "render_height": 160})


def test_camera_scales_between_sensor_and_render():
    camera = Camera(render_width=320, render_height=180)
    assert camera.render_scale == 0.25
    np.testing.assert_allclose(camera.to_sensor(camera.to_render(np.array([[640.0, 360.0]]))), [[640, 360]])


def test_finished_episodes_are_reused_after_a_crash(tmp_path, recipe):
    from edgekd.tasks.ibvs.stages import _finished_episode

    log = EpisodeLog(input_size=16, goal=np.zeros((4, 2)))
    world, rng = _world(recipe)
    state = sim.goal_state(world)
    frame, _ = sim.render(world, state, common.camera(recipe), rng)
    log.record(frame=frame, state=state, truth=np.zeros((4, 2)), commands=np.zeros(3))
    entry = write_episode(tmp_path, 3, log)
    assert _finished_episode(tmp_path, 3) is None  # frames written, entry not yet: fly it again
    (tmp_path / "ep_00003.json").write_text(__import__("json").dumps(entry))
    assert _finished_episode(tmp_path, 3) == entry
    (tmp_path / entry["file"]).write_bytes(b"torn")  # damaged frames: fly it again
    assert _finished_episode(tmp_path, 3) is None


def test_collected_flights_are_reused_by_another_student_architecture(recipe):
    from edgekd.pipeline import config_hash
    from edgekd.tasks.ibvs.task import IbvsTask

    collect = next(stage for stage in IbvsTask().stages() if stage.name == "collect")
    other_arch = recipe.model_copy(update={"student": recipe.student.model_copy(update={"arch": "nser_student"})})
    other_size = recipe.model_copy(update={"student": recipe.student.model_copy(update={"input_size": 64})})
    assert config_hash(collect, other_arch) == config_hash(collect, recipe)
    assert config_hash(collect, other_size) != config_hash(collect, recipe)
