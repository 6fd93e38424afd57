"""What edgekd changes before LiteRT's PT2E quantizer sees a graph (edgekd/export/litert_convert.py): integer
tensors stay unobserved and integer scalars of float arithmetic become floats (the layout student's box decoding
multiplies by its stride). Runs on torch and torchao alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")

from edgekd.export.litert_convert import _leave_integer_ops_unquantized  # noqa: E402


class Decode(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, groups=1)

    def forward(self, x):
        grid = torch.arange(8).view(1, 1, 1, 8) * 2  # an integer anchor grid
        return self.conv(x) * 8 + grid.float()


def test_integer_ops_are_left_alone_and_integer_scalars_of_float_ops_become_floats() -> None:
    graph = torch.export.export(Decode().eval(), (torch.randn(1, 3, 8, 8),)).module()
    x = torch.randn(1, 3, 8, 8)
    expected = graph(x)
    marked = _leave_integer_ops_unquantized(graph)
    assert marked >= 2  # arange, the integer mul, and the cast read integer tensors
    scaled = [n for n in graph.graph.nodes if n.target == torch.ops.aten.mul.Tensor
              and n.meta["val"].is_floating_point()]
    assert scaled and all(not any(type(a) is int for a in n.args) for n in scaled)
    conv = next(n for n in graph.graph.nodes if n.target == torch.ops.aten.conv2d.default)
    assert all(type(a) is not float for a in conv.args[3:])  # conv's integer arguments are not touched
    assert torch.equal(graph(x), expected)
