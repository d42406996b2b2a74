"""Logging setup for the CLI, workers and the web app: one line per event, UTC timestamps."""

from __future__ import annotations

import logging
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d/%(threadName)s] %(message)s"
# Loggers kept at WARNING or above. The HTTP clients' lines are rarely useful at INFO; Celery's two log
# every task at INFO ("received", "succeeded in ..."), two formatted lines per call on the worker's hot
# path. Their warnings and errors (a task that raised, a retry given up) still show.
QUIET_LOGGERS = ("httpx", "httpcore", "openai._base_client", "celery.worker.strategy", "celery.app.trace")


def configure_logging(level: str = "WARNING") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(h, "_postcall", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler._postcall = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
