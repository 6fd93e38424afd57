"""A frozen teacher's outputs computed once per sample: items keep their order, a cache too large is refused,
and feature KD on cached teacher maps gives the loss and gradients of running the teacher on every step."""

from __future__ import annotations

import torch
from torch.utils.data import default_collate

from edgekd.distill.teacher_cache import WithTeacherOutputs, cache_bytes, cache_teacher_outputs
from edgekd.models.picodet import build_picodet
from edgekd.recipe.schema import RECIPE_MODELS  # the recipe package first: it imports every task's config
from edgekd.tasks.layout.common import pad_targets
from edgekd.tasks.layout.stages import distill_objective

torch.set_num_threads(1)


def _doubling(batch) -> dict[str, torch.Tensor]:
    return {"twice": batch[0] * 2}


def test_each_item_carries_its_own_outputs_in_dataset_order() -> None:
    data = [(torch.full((3,), float(i)), torch.tensor(i)) for i in range(5)]
    cached = cache_teacher_outputs(_doubling, data, batch_size=2)
    assert isinstance(cached, WithTeacherOutputs) and len(cached) == 5
    for i in range(5):
        values, label, outputs = cached[i]
        assert torch.equal(outputs["twice"], torch.full((3,), 2.0 * i)) and int(label) == i
    batch = default_collate([cached[3], cached[1]])
    assert torch.equal(batch[2]["twice"][:, 0], torch.tensor([6.0, 2.0]))


def test_a_cache_over_the_memory_budget_is_not_built() -> None:
    data = [(torch.zeros(8),) for _ in range(4)]
    assert cache_bytes(_doubling, data) == 4 * 8 * 4
    assert cache_teacher_outputs(_doubling, data, max_bytes=127) is None
    assert cache_teacher_outputs(_doubling, data, max_bytes=128) is not None


def _layout_objective():
    recipe = RECIPE_MODELS["layout"](name="t", task="layout", data={"height": 64, "width": 64},
                                     teacher={"width": 0.5, "neck_channels": 16, "levels": 3},
                                     student={"width": 0.25, "neck_channels": 8, "levels": 3})
    torch.manual_seed(0)
    student, teacher = build_picodet(0.25, 5, 8, 3), build_picodet(0.5, 5, 16, 3).eval()
    return distill_objective(recipe, student, teacher).train()


def test_feature_kd_on_cached_teacher_maps_matches_running_the_teacher() -> None:
    generator = torch.Generator().manual_seed(1)
    data = [(torch.randn(3, 64, 64, generator=generator), pad_targets(torch.tensor([[4.0, 4, 40, 30]]),
                                                                        torch.tensor([i % 5]), 1)) for i in range(3)]
    live, cached = _layout_objective(), _layout_objective()
    carried = cache_teacher_outputs(lambda batch: cached.teacher_maps(batch[0]), data, batch_size=3)
    assert set(carried[0][2]) == {path for _, path in cached.pairs}
    with torch.no_grad():  # were the teacher run again, these changed weights would change the KD term
        for weight in cached.teacher.parameters():
            weight.add_(0.5)
    terms = live(default_collate([data[2], data[0]]))
    terms_cached = cached(default_collate([carried[2], carried[0]]))
    for key in ("loss", "kd", "det"):
        torch.testing.assert_close(terms_cached[key], terms[key], rtol=1e-4, atol=1e-6)
    terms["loss"].backward()
    terms_cached["loss"].backward()
    for p, q in zip(live.parameters(), cached.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-6)


def test_gaze_masked_kd_on_cached_teacher_features_matches_running_the_teacher() -> None:
    from edgekd.recipe.loader import load_recipe
    from edgekd.tasks.gaze import common
    from edgekd.tasks.gaze.objectives import MaskedFeatureDistillation
    from tests.conftest import REPO

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml")

    def objective():
        torch.manual_seed(0)
        teacher, student = common.build_model(recipe.teacher.arch), common.build_model(recipe.distill.arch)
        return MaskedFeatureDistillation(student, teacher, recipe.distill, common.feature_channel_map(student),
                                         common.feature_channel_map(teacher)).train()

    data = [(torch.randn(1, 64, 64), torch.zeros(2)) for _ in range(3)]
    live, cached = objective(), objective()
    carried = cache_teacher_outputs(lambda batch: cached.teacher_maps(batch[0]), data, batch_size=2)
    with torch.no_grad():  # were the teacher run again, these changed weights would change the KD terms
        for weight in cached.teacher.parameters():
            weight.add_(0.5)
    torch.manual_seed(1)  # the same patch mask for both
    terms = live(default_collate(data))
    torch.manual_seed(1)
    terms_cached = cached(default_collate([carried[i] for i in range(3)]))
    assert set(terms) == set(terms_cached) and "kd0" in terms
    for key in terms:
        torch.testing.assert_close(terms_cached[key], terms[key], rtol=1e-4, atol=1e-6)
