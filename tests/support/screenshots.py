"""Where the browser tests put their screenshots: into docs/screenshots only when asked
(`POSTCALL_UPDATE_SCREENSHOTS=1`), else into a directory of this test process, so that running the suite
never changes files the repository tracks."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

from app.config import PROJECT_ROOT

DOCS_SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"


@cache
def _scratch_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="postcall-screenshots-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def screenshot_path(name: str) -> Path:
    """The file a test writes the screenshot `name` (e.g. "queue.png") to; its directory exists."""
    directory = DOCS_SCREENSHOTS if os.environ.get("POSTCALL_UPDATE_SCREENSHOTS") == "1" else _scratch_directory()
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name
