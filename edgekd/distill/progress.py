"""A rich progress bar for training: loss, throughput and ETA; silent on ranks other than 0.

Where stderr is not a terminal (a log file, CI, `nohup`) a live bar would print nothing until the end, so a plain
status line is written every `heartbeat_seconds` instead: step, loss, throughput, elapsed time and ETA.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgekd import distributed as dist

HEARTBEAT_SECONDS = 60.0


class TrainProgress:
    def __init__(self, desc: str, total: int, done: int = 0, console: Optional[Console] = None,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, clock: Callable[[], float] = time.perf_counter) -> None:
        self._enabled = dist.is_main()
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            disable=not self._enabled or not self._console.is_terminal,  # a log gets the status lines instead
        )
        self._task = self._progress.add_task(desc, total=total, completed=done, loss="-", rate="-")
        self._desc, self._total, self._done, self._steps = desc, total, done, 0
        self._images = 0
        self._clock = clock
        self._started = self._last_line = clock()
        self._heartbeat = heartbeat_seconds if not self._console.is_terminal else None

    def __enter__(self) -> "TrainProgress":
        if self._enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._progress.stop()

    def advance(self, loss: float, images: int) -> None:
        self._images += images
        self._steps += 1
        now = self._clock()
        rate = self._images / max(now - self._started, 1e-9)
        self._progress.update(self._task, advance=1, loss=f"{loss:.4g}", rate=f"{rate:.3g}")
        if self._heartbeat is not None and now - self._last_line >= self._heartbeat:
            self._last_line = now
            self.log(self._status_line(loss, rate, now))

    def _status_line(self, loss: float, rate: float, now: float) -> str:
        step, elapsed = self._done + self._steps, now - self._started
        remaining = elapsed / self._steps * (self._total - step)
        return (f"{self._desc}: step {step}/{self._total} ({100 * step / max(self._total, 1):.0f}%), loss {loss:.4g}, "
                f"{rate:.3g} img/s, elapsed {_duration(elapsed)}, ETA {_duration(remaining)}")

    def log(self, message: str) -> None:
        if self._enabled:
            self._console.print(message, soft_wrap=True)  # one line per message in a log, however long


def _duration(seconds: float) -> str:
    """'1 h 05 min', '12 min', '40 s'."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
