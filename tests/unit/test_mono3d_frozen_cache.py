"""TAKD with the frozen teacher's and TA's outputs computed once per scene gives the loss and gradients of
computing them on every step, and the cache follows a dataset's subset order."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, default_collate

from edgekd.recipe.schema import RECIPE_MODELS  # noqa: F401  (the recipe package first: it imports every task's config)
from edgekd.tasks.mono3d.config import Mono3dKD
from edgekd.distill.teacher_cache import cache_bytes, cache_teacher_outputs
from edgekd.tasks.mono3d.frozen_cache import frozen_outputs
from edgekd.tasks.mono3d.models import CameraDetector, LidarDetector, NetConfig
from edgekd.tasks.mono3d.objectives import TakdObjective

torch.set_num_threads(1)
CFG = NetConfig(bev_channels=16, backbone_width=16, head_width=8, image_channels=8, camera_width=16,
                lift_backend="elements")


class RandomScenes(Dataset):
    """Scenes shaped like SceneDataset's items: image, LiDAR depth (m), pillars, targets, foreground."""

    def __init__(self, count: int) -> None:
        generator = torch.Generator().manual_seed(0)
        width, height = CFG.image_size
        rows, cols = CFG.grid.shape
        self.items = [(torch.randn(3, height, width, generator=generator),
                       torch.rand(1, height, width, generator=generator) * 40,
                       torch.rand(4, rows, cols, generator=generator),
                       torch.rand(11, rows // 2, cols // 2, generator=generator),
                       (torch.rand(1, height // 4, width // 4, generator=generator) > 0.5).float())
                      for _ in range(count)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int):
        return self.items[item]


def _objective() -> TakdObjective:
    torch.manual_seed(0)
    teacher, assistant = LidarDetector(CFG), CameraDetector(CFG, "lidar")
    student = CameraDetector(CFG, "predicted", residual_branch=True)
    return TakdObjective(student, teacher, assistant, Mono3dKD(), gt_weight=1.0, depth_weight=1.0)


def test_cached_frozen_outputs_give_the_same_loss_terms_and_gradients() -> None:
    scenes = RandomScenes(3)
    plain, cached = _objective(), _objective()
    carried = cache_teacher_outputs(lambda batch: frozen_outputs(cached.teacher.eval(), cached.assistant.eval(), batch),
                                    scenes)
    assert carried is not None and len(carried) == 3
    with torch.no_grad():  # were the frozen models run again, these changed weights would change the KD terms
        for weight in [*cached.teacher.parameters(), *cached.assistant.parameters()]:
            weight.add_(0.5)
    batch_items = [0, 2]
    terms = plain(default_collate([scenes[i] for i in batch_items]))
    terms_cached = cached(default_collate([carried[i] for i in batch_items]))
    assert set(terms) == set(terms_cached) >= {"imd", "cmrd", "logit_cls", "gt", "depth"}
    for key in terms:
        torch.testing.assert_close(terms_cached[key], terms[key], rtol=1e-4, atol=1e-6)
    terms["loss"].backward()
    terms_cached["loss"].backward()
    for (name, p), q in zip(plain.student.named_parameters(), cached.student.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-6, msg=name)


def test_the_cache_size_is_counted_per_scene() -> None:
    objective = _objective()
    outputs = lambda batch: frozen_outputs(objective.teacher.eval(), objective.assistant.eval(), batch)  # noqa: E731
    one, three = (cache_bytes(outputs, RandomScenes(n)) for n in (1, 3))
    rows, cols = CFG.grid.shape
    per_scene = 4 * (2 * 16 * (rows // 2) * (cols // 2) + 10 * (rows // 2) * (cols // 2))
    assert one == per_scene and three == 3 * per_scene
