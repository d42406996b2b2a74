"""Group commit: the threads of one worker process hand their finished work to whichever of them leads, which
writes a group of it in one transaction.

A call's own PostgreSQL statements cost the server more to set up and commit than their rows cost to write
(docs/benchmarks.md, "What PostgreSQL <= 1 ms per call would take"). A threaded worker holds tens of calls in
flight, most of them waiting for the model; the few that finish within a few milliseconds of each other are
stored together: one lock statement, one insert of every run, claim and span, one commit.

The first thread to hand work in when no group is forming leads: it waits until `max_size` pieces are in or
`wait_seconds` have passed since it arrived, takes them (the oldest first), hands the lead to the oldest piece
left, and writes its group while the next one forms. Every other thread waits for its own piece's result.
`write_group` returns one result per piece; a piece it could not write with the others (or a whole group it
could not write: the transaction rolled back) gets `None`, and its own thread writes it alone, as it would have
without a group, so what fails, and how, stays that piece's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Work = TypeVar("Work")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Piece(Generic[Work, Result]):
    work: Work
    arrived: float
    # Set when the piece's result is in, or when its thread is to lead the next group.
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: Result | None = None


@dataclass
class GroupStats:
    """What the groups written so far held: for the benchmarks and the tests."""

    groups: int = 0
    pieces: int = 0
    written_alone: int = 0  # pieces handed back to their own thread (`None`)
    largest: int = 0


class GroupCommit(Generic[Work, Result]):
    """Gathers work from several threads into groups of at most `max_size`, each written by one call of
    `write_group` in the thread that leads it."""

    def __init__(self, write_group: Callable[[Sequence[Work]], Sequence[Result | None]], *, max_size: int,
                 wait_seconds: float) -> None:
        if max_size < 1 or wait_seconds < 0:
            raise ValueError("a group holds at least one piece and waits no negative time")
        self._write_group = write_group
        self.max_size = max_size
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        # The leader waits on this for its group to fill; nobody else waits on the lock's condition.
        self._filled = threading.Condition(self._lock)
        self._forming: list[_Piece[Work, Result]] = []
        self._leading = False
        self.stats = GroupStats()

    def submit(self, work: Work) -> Result | None:
        """Hand `work` in and wait for its result: `None` when it is to be written alone, by the caller."""
        piece: _Piece[Work, Result] = _Piece(work, time.monotonic())
        with self._lock:
            self._forming.append(piece)
            if not self._leading:
                self._leading = piece.leads = True
            elif len(self._forming) >= self.max_size:
                self._filled.notify()
        if not piece.leads:
            piece.ready.wait()
            if not piece.leads:
                return piece.result
        self._lead(piece)
        return piece.result

    def _lead(self, leader: _Piece[Work, Result]) -> None:
        with self._lock:
            deadline = leader.arrived + self.wait_seconds
            while len(self._forming) < self.max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._filled.wait(remaining)
            group = self._forming[:self.max_size]
            del self._forming[:self.max_size]
            if self._forming:  # the oldest piece left leads the next group, which forms meanwhile
                following = self._forming[0]
                following.leads = True
                following.ready.set()
            else:
                self._leading = False
        leader.leads = False
        results: Sequence[Result | None] = [None] * len(group)
        try:
            results = self._write_group([piece.work for piece in group])
            if len(results) != len(group):
                raise AssertionError(f"a group of {len(group)} got {len(results)} results")
        except Exception:
            # The group's transaction rolled back: each piece is written alone, by its own thread, where its
            # own failure (if it is one) is raised and handled as it would be without a group.
            logger.warning("a group of %d results could not be written together; each is written alone",
                           len(group), exc_info=True)
            results = [None] * len(group)
        finally:  # whatever ends the leader's write (an interrupt too), no piece is left waiting
            with self._lock:
                self.stats.groups += 1
                self.stats.pieces += len(group)
                self.stats.written_alone += sum(result is None for result in results)
                self.stats.largest = max(self.stats.largest, len(group))
            for piece, result in zip(group, results, strict=True):
                piece.result = result
                if piece is not leader:
                    piece.ready.set()
