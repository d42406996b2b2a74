"""Logging setup for the CLI, workers and the web app: one line per event, UTC timestamps."""

from __future__ import annotations

import logging
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d/%(threadName)s] %(message)s"


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
    # Third-party chatter that is rarely useful at INFO.
    for noisy in ("httpx", "httpcore", "openai._base_client"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
