"""The gather → scatter-add → matrix product rewrite LiteRT's converter gets (edgekd/export/litert_convert.py):
exact where it applies, and not applied where it would not be exact. Runs on torch alone (no LiteRT)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backend.two_heads import RowsScatter  # noqa: E402  (tests/ is on sys.path)
from edgekd.export.litert_convert import fold_constant_expands, scatter_add_as_matmul  # noqa: E402


class Scaled(RowsScatter):
    """index_add with alpha: the rewrite does not carry it."""

    def forward(self, x):
        features = self.conv(x)
        batch, channels = features.shape[:2]
        table = features.flatten(2).permute(2, 0, 1).reshape(64, batch * channels)
        picked = table.index_select(0, self.rows) * self.weights
        return table.new_zeros(48, batch * channels).index_add(0, self.cells, picked, alpha=2.0)


class ColumnWeights(RowsScatter):
    """Weights that scale columns (one per channel, 90 channels for 90 gathered rows), not gathered rows: as many
    weights as rows, so only their shape tells the two apart."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 90, 3, padding=1)
        self.weights = torch.rand(1, 90)

    def forward(self, x):
        table = self.conv(x).flatten(2).permute(2, 0, 1).reshape(64, 90)
        picked = table.index_select(0, self.rows) * self.weights
        return table.new_zeros(48, 90).index_add(0, self.cells, picked)


def _graph(model):
    torch.manual_seed(0)
    return torch.export.export(model.eval(), (torch.randn(1, 3, 8, 8),)).module()


def test_the_rows_form_becomes_an_exact_matrix_product() -> None:
    model = RowsScatter().eval()
    graph = _graph(model)
    assert scatter_add_as_matmul(graph) == 1
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(graph(x), model(x), atol=1e-5)
    assert torch.ops.aten.index_add.default not in {n.target for n in graph.graph.nodes}


@pytest.mark.parametrize("model_class", [Scaled, ColumnWeights])
def test_forms_the_rewrite_would_change_are_left_alone(model_class) -> None:
    graph = _graph(model_class())
    assert scatter_add_as_matmul(graph) == 0


def test_an_expanded_constant_is_folded_to_the_same_values() -> None:
    class Expand(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("row", torch.linspace(-1, 1, 8).view(1, 1, 8, 1))

        def forward(self, x):
            return torch.cat([x, self.row.expand(1, 1, 8, 8)], dim=1)

    model = Expand().eval()
    graph = _graph(model)
    assert fold_constant_expands(graph) == 1
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(graph(x), model(x))
