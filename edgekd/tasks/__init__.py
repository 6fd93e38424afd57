"""Tasks. This package stays import-light: the recipe schema imports each task's config module, and
`get_task` imports a task's torch code only when a pipeline is built."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekd.tasks.base import Task

_TASK_MODULES = {"gaze": "edgekd.tasks.gaze.task", "ibvs": "edgekd.tasks.ibvs.task", "layout": "edgekd.tasks.layout.task",
                 "mono3d": "edgekd.tasks.mono3d.task"}


def get_task(name: str) -> "Task":
    """An instance of the registered task `name` (e.g. 'gaze')."""
    from edgekd.tasks.base import TASKS

    if name in _TASK_MODULES:
        importlib.import_module(_TASK_MODULES[name])
    return TASKS.get(name)()
