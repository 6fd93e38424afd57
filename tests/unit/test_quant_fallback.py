"""Per-layer float fallback: module-path globs checked against a real module tree, and NNCF node names."""

from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.quant.fallback import match_fallback, module_of_node, outermost  # noqa: E402


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU()


class Net(nn.Module):
    """stem.0, stages.{0,1}.{conv,act}, head.fc"""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.stages = nn.Sequential(Block(8), Block(8))
        self.head = nn.Sequential()
        self.head.add_module("fc", nn.Linear(8, 2))


@pytest.fixture(scope="module")
def net() -> Net:
    return Net()


def test_exact_paths_match_themselves(net) -> None:
    assert match_fallback(net, ["stem.0", "head.fc"]) == {"stem.0": ["stem.0"], "head.fc": ["head.fc"]}


def test_glob_matches_across_the_tree(net) -> None:
    assert match_fallback(net, ["stages.*.conv"]) == {"stages.*.conv": ["stages.0.conv", "stages.1.conv"]}
    assert match_fallback(net, ["stages.?.act"])["stages.?.act"] == ["stages.0.act", "stages.1.act"]


def test_container_pattern_covers_its_children(net) -> None:
    assert match_fallback(net, ["head"]) == {"head": ["head", "head.fc"]}
    assert match_fallback(net, ["stages.1"]) == {"stages.1": ["stages.1", "stages.1.conv", "stages.1.act"]}


def test_pattern_matching_nothing_names_its_index_and_a_suggestion(net) -> None:
    with pytest.raises(EdgekdError) as error:
        match_fallback(net, ["head", "stages.0.cnov"])
    message = str(error.value)
    assert message.startswith("quant.fallback[1]: pattern 'stages.0.cnov' matches no layer")
    assert "did you mean 'stages.0.conv'?" in message


def test_pattern_far_from_everything_lists_top_level_modules(net) -> None:
    with pytest.raises(EdgekdError, match=r"fallback\[0\].*top-level modules: head, stages, stem"):
        match_fallback(net, ["classifier_block_9"])


def test_field_name_is_the_callers(net) -> None:
    with pytest.raises(EdgekdError, match=r"^recipe.quant.keep_float\[0\]"):
        match_fallback(net, ["nope"], field="recipe.quant.keep_float")


def test_root_module_is_not_a_candidate(net) -> None:
    with pytest.raises(EdgekdError):
        match_fallback(net, [""])


def test_outermost_drops_paths_inside_another() -> None:
    assert outermost(["head.fc", "head", "stages.1.conv", "stages.10", "stages.1"]) == ["head", "stages.1",
                                                                                         "stages.10"]
    assert outermost([]) == []


def test_module_of_node_finds_the_deepest_owner() -> None:
    paths = {"head", "head.fc", "stages", "stages.1", "stages.1.conv"}
    assert module_of_node("head/fc/linear/0", paths) == "head.fc"
    assert module_of_node("stages/1/conv/conv2d/0", paths) == "stages.1.conv"
    assert module_of_node("stages/1/act/relu/0", paths) == "stages.1"
    assert module_of_node("flatten/0", paths) is None
