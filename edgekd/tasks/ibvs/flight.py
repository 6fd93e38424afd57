"""Closed-loop flights: a controller sees each rendered frame and sends a command; the simulator moves.

Metrics follow NSER-IBVS: the feature error ‖s* − s‖ over the 4 corners (sensor pixels) and the IoU of the
axis-aligned boxes of the current and goal corners, over the flight's last `hold` seconds; the *hard goal*
is a median error under `goal_px` for `hold` seconds before the timeout. A flight whose vehicle leaves the
image for a second is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np

from edgekd.tasks.ibvs.camera import Camera
from edgekd.tasks.ibvs.sim import DroneState, Dynamics, corners_px, goal_state, render, step
from edgekd.tasks.ibvs.world import World

LOST_AFTER_SECONDS = 1.0


class Controller(Protocol):
    def act(self, frame: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Piloting commands (roll, pitch, yaw) for one RGB frame. `truth` (the exact corners) is there for
        the oracle only; the teacher and the student read the frame alone."""


@dataclass
class FlightResult:
    outcome: str  # goal | timeout | lost
    seconds: float
    errors: list[float] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    hold_frames: int = 1

    @property
    def success(self) -> bool:
        return self.outcome == "goal"

    def final(self) -> dict[str, float]:
        """Mean / median error and mean IoU over the last hold window (or the whole flight if shorter)."""
        errors = np.asarray(self.errors[-self.hold_frames:])
        ious = np.asarray(self.ious[-self.hold_frames:])
        return {"error_mean_px": float(errors.mean()), "error_median_px": float(np.median(errors)),
                "iou": float(ious.mean()), "seconds": self.seconds, "success": float(self.success)}


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the axis-aligned bounding boxes of two point sets (N, 2)."""
    lo = np.maximum(a.min(0), b.min(0))
    hi = np.minimum(a.max(0), b.max(0))
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    area = lambda p: float(np.prod(p.max(0) - p.min(0)))  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def in_view(corners: np.ndarray, camera: Camera) -> bool:
    center = corners.mean(axis=0)
    return 0 <= center[0] < camera.sensor_width and 0 <= center[1] < camera.sensor_height


def fly(world: World, start: DroneState, camera: Camera, dynamics: Dynamics, controller: Controller,
        rng: np.random.Generator, *, timeout_s: float, goal_px: float, hold_s: float, noise: float = 3.0,
        after_goal_s: float = 0.0, on_frame: Optional[Callable[..., None]] = None) -> FlightResult:
    """Fly `controller` from `start` until the hard goal (then `after_goal_s` more), a timeout, or loss."""
    goal = corners_px(world, goal_state(world), camera)
    hold = max(1, int(round(hold_s / dynamics.dt)))
    result = FlightResult("timeout", 0.0, hold_frames=hold)
    state, unseen, reached_at = start, 0, None
    for index in range(int(round(timeout_s / dynamics.dt))):
        frame, _ = render(world, state, camera, rng, noise)
        truth = corners_px(world, state, camera)
        result.errors.append(float(np.linalg.norm(goal - truth)))
        result.ious.append(box_iou(truth, goal))
        result.seconds = (index + 1) * dynamics.dt
        unseen = 0 if in_view(truth, camera) else unseen + 1
        if unseen * dynamics.dt >= LOST_AFTER_SECONDS:
            result.outcome = "lost"
            break
        if reached_at is None and len(result.errors) >= hold and np.median(result.errors[-hold:]) < goal_px:
            reached_at = index
            result.outcome = "goal"
        if reached_at is not None and (index - reached_at) * dynamics.dt >= after_goal_s:
            break
        commands = controller.act(frame, truth)
        if on_frame is not None:
            on_frame(frame=frame, state=state, truth=truth, commands=commands)
        state = step(state, commands, dynamics, rng)
    return result


def summarise(results: list[FlightResult]) -> dict[str, float]:
    """Success rate and the final-window metrics averaged over flights."""
    finals = [r.final() for r in results]
    keys = ("error_mean_px", "error_median_px", "iou", "seconds")
    summary = {key: float(np.mean([f[key] for f in finals])) for key in keys}
    summary["success_rate"] = float(np.mean([r.success for r in results]))
    summary["flights"] = float(len(results))
    return summary
