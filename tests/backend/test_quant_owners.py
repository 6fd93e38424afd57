"""NNCF node names → real module paths, for modules NNCF names without their ModuleList level.

A ModuleList's items called from the list's owner lose the list level in NNCF's operation names, so fallback and
sensitivity work from a traced map (edgekd.quant.node_owners). Skipped without nncf.
"""

from __future__ import annotations

import pytest

pytest.importorskip("nncf")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.quant.node_owners import GRAPH_OWNER, node_owners, nodes_inside  # noqa: E402
from edgekd.quant.nncf_quant import quantize_ptq, quantizers_by_module  # noqa: E402

SHAPE = (2, 3, 16, 16)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.act = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class ListNet(nn.Module):
    """Blocks in a ModuleList called from forward, as a PAN neck calls its CSP layers; `unused` never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.ModuleList(Block() for _ in range(2))
        self.unused = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return ListNet().eval()


@pytest.fixture(scope="module")
def owners(model) -> dict[str, str]:
    return node_owners(model, torch.randn(SHAPE))


def test_each_operation_maps_to_the_module_that_ran_it(owners) -> None:
    convs = {node: owner for node, owner in owners.items() if "conv2d" in node}
    assert sorted(convs.values()) == ["blocks.0.conv", "blocks.1.conv", "stem"]
    # NNCF's names drop the list level: reading the path out of the name could not tell the blocks apart
    assert not any(node.startswith("blocks/") for node in convs)
    assert GRAPH_OWNER in owners.values()  # the root's own mean()


def test_fallback_keeps_a_list_item_float_and_only_it(model, owners) -> None:
    calibration = [torch.randn(SHAPE) for _ in range(2)]
    everywhere = quantizers_by_module(quantize_ptq(model, calibration), owners)
    assert {"stem", "blocks.0.conv", "blocks.1.conv"} <= set(everywhere)
    kept_float = quantizers_by_module(quantize_ptq(model, calibration, fallback_modules=["blocks.1"]), owners)
    assert "blocks.1.conv" not in kept_float
    assert {"stem", "blocks.0.conv"} <= set(kept_float)
    assert sum(map(len, kept_float.values())) < sum(map(len, everywhere.values()))


def test_a_module_that_never_runs_cannot_be_kept_float(owners) -> None:
    assert nodes_inside(owners, ["blocks.0"]) == sorted(n for n, o in owners.items() if o.startswith("blocks.0."))
    with pytest.raises(EdgekdError, match="quant.fallback: module 'unused' runs no operation"):
        nodes_inside(owners, ["unused"])


def test_fallback_on_an_activation_drops_the_quantizer_on_its_output(model, owners) -> None:
    # NNCF puts the input quantizer of blocks.1.conv on the output of blocks.0's ReLU; sensitivity charges it to
    # blocks.0.act, so keeping blocks.0.act float must remove it (the ignored scope alone leaves it in place)
    calibration = [torch.randn(SHAPE) for _ in range(2)]
    everywhere = quantizers_by_module(quantize_ptq(model, calibration), owners)
    assert len(everywhere.get("blocks.0.act", [])) == 1
    kept_float = quantizers_by_module(quantize_ptq(model, calibration, fallback_modules=["blocks.0.act"]), owners)
    assert "blocks.0.act" not in kept_float
    assert sum(map(len, kept_float.values())) == sum(map(len, everywhere.values())) - 1
