"""What a worker does once at startup, before its first call."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.worker import tasks


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # later tests run with the collector as they always did


def test_startup_builds_the_context_then_freezes_what_is_alive(unfrozen: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_when_built: list[int] = []
    monkeypatch.setattr(tasks, "get_context", lambda: frozen_when_built.append(gc.get_freeze_count()))
    tasks.prepare_context()
    # The context is built first, so its objects (engine, provider, prompt) are among those frozen.
    assert frozen_when_built == [0]
    assert gc.get_freeze_count() > 10_000  # the modules, schemas and metadata loaded so far


def test_objects_made_after_the_freeze_are_still_collected(unfrozen: None) -> None:
    tasks.freeze_startup_objects()
    assert gc.isenabled()  # frozen, not switched off: the calls' cycles are still collected as they go

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    cycle = Cycle()
    gc.collect()  # nothing to find yet: `cycle` is alive
    del cycle
    assert gc.collect() >= 1  # the frozen objects are left alone, not the calls' garbage
