"""The beat folds the analysts' rollup ledgers (app/rollups.py) on its schedule."""

from __future__ import annotations

from app.config import get_settings
from app.worker.celery_app import TASK_FOLD_ROLLUPS, celery_app


def test_the_beat_schedule_folds_the_rollups() -> None:
    import app.worker.tasks  # noqa: F401 - registers the tasks with the app, as a worker does

    entries = {entry["task"]: entry for entry in celery_app.conf.beat_schedule.values()}
    assert TASK_FOLD_ROLLUPS in entries
    assert entries[TASK_FOLD_ROLLUPS]["schedule"] == float(get_settings().rollup_fold_every_seconds)
    assert TASK_FOLD_ROLLUPS in celery_app.tasks
