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


# How much the latest time between two pieces weighs in their mean (`GroupCommit._gap`): after a quiet spell a
# burst has a leader wait again within some twenty pieces, and after a burst the first lone piece goes at once.
GAP_WEIGHT = 0.2


@dataclass(eq=False)
class _Piece(Generic[Work, Result]):
    work: Work
    arrived: float
    # Set when the piece's result is in, or when its thread is to lead the next group.
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: Result | None = None
    write_started: float | None = None  # when its group's write began
    cpu_share: float = 0.0  # its share of the group write's CPU (seconds)


@dataclass(frozen=True)
class Handed(Generic[Result]):
    """What `GroupCommit.submit` gives back: the piece's result (`None`: to be written alone, by the caller),
    how long it waited for its group's write to begin, and what to add to the calling thread's CPU for the
    piece's own: its share of the group's write, less the write's CPU if this thread led it."""

    result: Result | None
    waited_seconds: float
    cpu_correction_seconds: float


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
                 wait_seconds: float, company: Callable[[], int] | None = None) -> None:
        """`company`: how many pieces could be in a group right now at most (a worker process: the calls it is
        running); a leader stops waiting once every one of them is in its group, so a call the process runs
        alone is never held for company that cannot come."""
        if max_size < 1 or wait_seconds < 0:
            raise ValueError("a group holds at least one piece and waits no negative time")
        self._company = company
        self._write_group = write_group
        self.max_size = max_size
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        # The leader waits on this for its group to fill (each piece handed in wakes it); nobody else waits on it.
        self._filled = threading.Condition(self._lock)
        self._forming: list[_Piece[Work, Result]] = []
        self._leading = False
        # The mean time between two pieces handed in, recent ones weighing most (None before the second): a
        # leader waits only when it expects company within its window.
        self._gap: float | None = None
        self._last_arrival: float | None = None
        self.stats = GroupStats()

    def submit(self, work: Work) -> Handed[Result]:
        """Hand `work` in and wait for its result (`Handed`)."""
        piece: _Piece[Work, Result] = _Piece(work, time.monotonic())
        with self._lock:
            if self._last_arrival is not None:
                gap = piece.arrived - self._last_arrival
                self._gap = gap if self._gap is None else (1 - GAP_WEIGHT) * self._gap + GAP_WEIGHT * gap
            self._last_arrival = piece.arrived
            self._forming.append(piece)
            if not self._leading:
                self._leading = piece.leads = True
            else:  # the leader looks again: its group may be full, or hold every call that could come
                self._filled.notify()
        cpu_correction = 0.0
        try:
            if not piece.leads:
                piece.ready.wait()
            if piece.leads:
                cpu_correction = self._lead(piece)
        except BaseException:
            # Interrupted while waiting (a killed greenlet, a timeout): the piece leaves its group if it is still
            # forming, and a lead it held goes on, or every later piece would wait for a leader that never comes.
            with self._lock:
                if piece in self._forming:
                    self._forming.remove(piece)
                    if piece.leads:
                        self._pass_lead()
            raise
        started = piece.write_started if piece.write_started is not None else time.monotonic()
        return Handed(piece.result, max(0.0, started - piece.arrived), cpu_correction + piece.cpu_share)

    def _pass_lead(self) -> None:
        """Under the lock: the oldest piece still forming leads the next group, which forms meanwhile."""
        if self._forming:
            following = self._forming[0]
            following.leads = True
            following.ready.set()
        else:
            self._leading = False

    def _lead(self, leader: _Piece[Work, Result]) -> float:
        """Gather and write the leader's group; the write's CPU in this thread, negated (the pieces carry their
        shares)."""
        with self._lock:
            deadline = leader.arrived + self.wait_seconds
            while len(self._forming) < self.max_size:
                if self._company is not None and self._company() <= len(self._forming):
                    break  # nobody else is running who could join
                if self._gap is not None and self._gap > self.wait_seconds:
                    break  # pieces come further apart than the window: waiting would hold this one for nothing
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._filled.wait(remaining)
            group = self._forming[:self.max_size]
            del self._forming[:self.max_size]
            self._pass_lead()
        leader.leads = False
        results: Sequence[Result | None] = [None] * len(group)
        began, cpu_began = time.monotonic(), time.thread_time()
        try:
            results = self._write_group([piece.work for piece in group])
            if len(results) != len(group):
                raise AssertionError(f"a group of {len(group)} got {len(results)} results")
        except Exception:
            # The group's transaction rolled back: each piece is written alone, by its own thread, where its
            # own failure (if it is one) is raised and handled as it would be without a group.
            logger.warning("a group of %d could not be written together; each is written alone", len(group),
                           exc_info=True)
            results = [None] * len(group)
        finally:  # whatever ends the leader's write (an interrupt too), no piece is left waiting
            spent = time.thread_time() - cpu_began
            with self._lock:
                self.stats.groups += 1
                self.stats.pieces += len(group)
                self.stats.written_alone += sum(result is None for result in results)
                self.stats.largest = max(self.stats.largest, len(group))
            for piece, result in zip(group, results, strict=True):
                piece.result, piece.write_started, piece.cpu_share = result, began, spent / len(group)
                if piece is not leader:
                    piece.ready.set()
        return -spent
