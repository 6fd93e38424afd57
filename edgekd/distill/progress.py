"""A rich progress bar for training: loss, throughput and ETA; silent on ranks other than 0."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgekd import distributed as dist


class TrainProgress:
    def __init__(self, desc: str, total: int, done: int = 0) -> None:
        self._enabled = dist.is_main()
        self._console = Console(stderr=True)
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
            disable=not self._enabled,
        )
        self._task = self._progress.add_task(desc, total=total, completed=done, loss="-", rate="-")
        self._images = 0
        self._started = time.perf_counter()

    def __enter__(self) -> "TrainProgress":
        if self._enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._progress.stop()

    def advance(self, loss: float, images: int) -> None:
        self._images += images
        rate = self._images / max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(self._task, advance=1, loss=f"{loss:.4g}", rate=f"{rate:.0f}")

    def log(self, message: str) -> None:
        if self._enabled:
            self._progress.console.print(message)
