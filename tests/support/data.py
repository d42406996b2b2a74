"""Locate the shared real-data folder (`../shared/data` beside the checkout); skip when it is absent.

The folder is found by `bench.datasets`, which the benchmarks read it with, so tests and benchmarks
agree on where it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.datasets import SHARED_DATA_DIR, shared_data_dir

__all__ = ["SHARED_DATA_DIR", "require_shared_data", "shared_data_dir"]


def require_shared_data(*parts: str) -> Path:
    """The path to `parts` inside the shared data folder; skips the test when it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip(f"shared data folder not found at {SHARED_DATA_DIR} (real-data tests need it)")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data file not found: {path}")
    return path
