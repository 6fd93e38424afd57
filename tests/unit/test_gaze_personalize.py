"""How the personalize stage words a change of error: the direction is in the words, in both directions."""

from __future__ import annotations

import pytest

from edgekd.tasks.gaze.personalize import error_change


@pytest.mark.parametrize(("before", "after", "words"), [
    (10.0, 4.0, "60% lower"),
    (10.0, 10.8, "8% higher (worse)"),
    (5.0, 5.0, "unchanged"),
])
def test_error_change_wording(before: float, after: float, words: str) -> None:
    assert error_change(before, after) == words
    assert "-" not in error_change(before, after)


def _arrays(subjects: list[str], roles: list[str]):
    import numpy as np

    from edgekd.tasks.gaze.dataset import GazeArrays

    n = len(subjects)
    return GazeArrays(np.zeros((n, 8, 8), np.uint8), np.zeros((n, 2), np.float32), np.array(subjects, dtype=str),
                      np.array(roles, dtype=str))


def test_data_too_small_for_personalization_is_refused_naming_what_is_missing() -> None:
    from types import SimpleNamespace

    from edgekd.errors import EdgekdError
    from edgekd.tasks.gaze.personalize import check_sizes

    cfg = SimpleNamespace(replay_per_step=4, replay_weight=0.25)
    personal = _arrays(["a", "a", "b", "b"], ["adapt", "eval", "adapt", "eval"])
    check_sizes(personal, _arrays(["t"] * 4, ["train"] * 4), cfg)
    with pytest.raises(EdgekdError, match="replay draws 4 train images per step but the train split has 3"):
        check_sizes(personal, _arrays(["t"] * 3, ["train"] * 3), cfg)
    with pytest.raises(EdgekdError, match="subject 'b' .* no 'eval' images"):
        check_sizes(_arrays(["a", "a", "b"], ["adapt", "eval", "adapt"]), _arrays(["t"] * 4, ["train"] * 4), cfg)
    with pytest.raises(EdgekdError, match="personal split has no images"):
        check_sizes(_arrays([], []), _arrays(["t"] * 4, ["train"] * 4), cfg)
    check_sizes(personal, _arrays([], []), SimpleNamespace(replay_per_step=0, replay_weight=0.25))
