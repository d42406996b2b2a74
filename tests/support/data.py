"""Locate the shared real-data folder (`../shared/data` beside the checkout); skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

# tests/support/data.py -> parents[2] is the checkout root; the data sits beside it.
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when this checkout has none beside it."""
    return SHARED_DATA_DIR.resolve() if SHARED_DATA_DIR.is_dir() else None


def require_shared_data(*parts: str) -> Path:
    """The path to `parts` inside the shared data folder; skips the test when it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip(f"shared data folder not found at {SHARED_DATA_DIR} (real-data tests need it)")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data file not found: {path}")
    return path
