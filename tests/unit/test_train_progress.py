"""Training progress in a log (stderr not a terminal): a plain status line every heartbeat, none in between."""

from __future__ import annotations

import io

from rich.console import Console

from edgekd.distill.progress import TrainProgress, _duration


def test_a_log_gets_a_status_line_per_heartbeat_with_rate_and_eta() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = TrainProgress("teacher", total=100, done=40, console=Console(file=out, width=40),
                             heartbeat_seconds=60.0, clock=lambda: now[0])
    with progress:
        for _ in range(10):  # 10 steps of 16 images, 10 s each: 1.6 img/s
            now[0] += 10.0
            progress.advance(0.5, 16)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    # At 60 s (step 46 of 100): 6 steps took 60 s, so the other 54 take 9 min.
    assert lines == ["teacher: step 46/100 (46%), loss 0.5, 1.6 img/s, elapsed 1 min, ETA 9 min"]


def test_a_terminal_gets_the_live_bar_only() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = TrainProgress("teacher", total=10, console=Console(file=out, force_terminal=True, width=200),
                             heartbeat_seconds=1.0, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 10.0
        progress.advance(0.5, 16)
    assert "step" not in out.getvalue()


def test_durations_read_naturally() -> None:
    assert [_duration(s) for s in (40, 600, 3900, -1)] == ["40 s", "10 min", "1 h 05 min", "0 s"]
