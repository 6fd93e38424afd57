"""The controllers that fly: the oracle (law on exact corners), the teacher (perception + law), the student.

Each takes a rendered RGB frame and returns piloting commands. The network runners are plain callables
(numpy in, numpy out) so the same controller flies a PyTorch model, an ONNX Runtime session or an
OpenVINO compiled model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np

from edgekd.tasks.ibvs import common
from edgekd.tasks.ibvs.camera import Camera
from edgekd.tasks.ibvs.corners import corners_from_logits
from edgekd.tasks.ibvs.law import LawGains, denormalise_commands, to_commands, velocities

Runner = Callable[[np.ndarray], tuple[np.ndarray, ...]]
HOVER = np.zeros(3)


class OracleController:
    """The analytic law on the exact corners: the reference the others are scored against."""

    def __init__(self, goal: np.ndarray, camera: Camera, gains: LawGains) -> None:
        self.goal, self.K, self.gains = goal, camera.sensor_K, gains

    def act(self, frame: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return to_commands(velocities(truth, self.goal, self.K, self.gains)[0])


class TeacherController:
    """NSER-IBVS: segmentation + mask splitter → ordered corners → the law. Hovers when the vehicle is not found."""

    def __init__(self, perception: Runner, goal: np.ndarray, camera: Camera, gains: LawGains) -> None:
        self.perception, self.goal, self.camera, self.gains = perception, goal, camera, gains
        self.last_corners: Optional[np.ndarray] = None

    def corners(self, frame: np.ndarray) -> Optional[np.ndarray]:
        vehicle, split = self.perception(common.normalise(frame)[None])[:2]
        found = corners_from_logits(vehicle[0], split[0])
        return None if found is None else self.camera.to_sensor(found)

    def act(self, frame: np.ndarray, truth: Optional[np.ndarray] = None) -> np.ndarray:
        self.last_corners = self.corners(frame)
        if self.last_corners is None:
            return HOVER.copy()
        return to_commands(velocities(self.last_corners, self.goal, self.camera.sensor_K, self.gains)[0])


class StudentController:
    """The distilled CNN: the frame resized to its input, one forward pass, outputs scaled back to commands."""

    def __init__(self, network: Runner, input_size: int, scale: tuple[float, float, float]) -> None:
        self.network, self.input_size, self.scale = network, input_size, scale

    def act(self, frame: np.ndarray, truth: Optional[np.ndarray] = None) -> np.ndarray:
        x = common.normalise(common.student_frame(frame, self.input_size))[None]
        return denormalise_commands(self.network(x)[0][0], self.scale)


@contextmanager
def single_frame_inference() -> Iterator[None]:
    """One frame at a time: one thread (a batch of one cannot feed two, and spinning threads stall when the
    machine is busy), no autograd, denormals flushed (a trained net's tiny activations otherwise crawl)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def session_runner(path, threads: int, runtime: str = "onnxruntime", precision: str = "fp32",
                   shape=None) -> Runner:
    """A runner on an exported file (ONNX Runtime or OpenVINO); `shape` fixes a dynamic input for OpenVINO."""
    from edgekd.profile.sessions import open_session

    session = open_session(path, runtime, threads=threads, precision=precision, static_shape=shape)
    return lambda x: tuple(session.run(np.ascontiguousarray(x, dtype=np.float32)))


def torch_runner(module) -> Runner:
    """A numpy-in, numpy-out runner around a PyTorch module in eval mode."""
    import torch

    module.eval()

    def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(o.numpy() for o in outs)

    return run
