"""Score the due-date resolver on the labeled phrases in cases.tsv (and dateparser beside it, if installed).

    python -m bench.due_dates.run            # or: make bench-due-dates
    python -m bench.due_dates.run --show-misses

cases.tsv: one phrase per line with the call's start, the tenant's time zone, the expected date (or
`none` when the phrase names no determinable date) and, where a time of day is said, the expected local
moment. `corpus` rows are the distinct phrases the heuristic provider's due finder picks out of the
shared real corpora (Harper Valley, TweetSumm, the vendor samples, QMSum, DialogSum, ABCD); `hand` rows
cover what the corpora rarely say (business days, spoken numbers, month ends, time zones, ambiguity).
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from app.text.due_dates import resolve_due

CASES_PATH = Path(__file__).resolve().parent / "cases.tsv"


@dataclass(frozen=True)
class Case:
    phrase: str
    call_start: datetime
    time_zone: str
    expected: date | None
    expected_at: datetime | None  # local, naive
    source: str


def load_cases(path: Path = CASES_PATH) -> list[Case]:
    cases = []
    with path.open(newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            phrase, start, zone, expected, expected_at, source = row
            cases.append(
                Case(
                    phrase=phrase,
                    call_start=datetime.fromisoformat(start),
                    time_zone=zone,
                    expected=None if expected == "none" else date.fromisoformat(expected),
                    expected_at=datetime.fromisoformat(expected_at) if expected_at else None,
                    source=source,
                )
            )
    return cases


Resolver = Callable[[Case], tuple[date | None, datetime | None]]


def postcall_resolver(case: Case) -> tuple[date | None, datetime | None]:
    resolved = resolve_due(case.phrase, case.call_start, case.time_zone)
    if resolved is None:
        return None, None
    at = resolved.at.astimezone(ZoneInfo(case.time_zone)).replace(tzinfo=None) if resolved.at else None
    return resolved.date, at


def dateparser_resolver() -> Resolver | None:
    try:
        import dateparser  # type: ignore[import-untyped]
    except ImportError:
        return None

    def resolve(case: Case) -> tuple[date | None, datetime | None]:
        local = case.call_start.astimezone(ZoneInfo(case.time_zone)).replace(tzinfo=None)
        parsed = dateparser.parse(
            case.phrase,
            languages=["en"],
            settings={"RELATIVE_BASE": local, "PREFER_DATES_FROM": "future", "RETURN_AS_TIMEZONE_AWARE": False},
        )
        return (parsed.date(), None) if parsed is not None else (None, None)

    return resolve


@dataclass
class Score:
    determinable: int = 0
    correct: int = 0
    undeterminable: int = 0
    invented: int = 0
    with_time: int = 0
    time_correct: int = 0
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.determinable if self.determinable else 0.0


def score(cases: list[Case], resolver: Resolver, misses: list[str] | None = None) -> Score:
    result = Score()
    started = time.perf_counter()
    answers = [resolver(case) for case in cases]
    result.seconds = time.perf_counter() - started
    for case, (got, got_at) in zip(cases, answers, strict=True):
        if case.expected is None:
            result.undeterminable += 1
            if got is not None:
                result.invented += 1
                if misses is not None:
                    misses.append(f"invented  {case.phrase!r} -> {got}")
            continue
        result.determinable += 1
        if got == case.expected:
            result.correct += 1
        elif misses is not None:
            misses.append(f"wrong     {case.phrase!r} ({case.call_start:%a %Y-%m-%d %H:%M} UTC, {case.time_zone}) "
                          f"-> {got}, expected {case.expected}")
        if case.expected_at is not None:
            result.with_time += 1
            result.time_correct += got_at == case.expected_at
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    cases = load_cases()
    by_source = {source: sum(1 for c in cases if c.source == source) for source in sorted({c.source for c in cases})}
    print(f"{len(cases)} labeled phrases ({', '.join(f'{n} {s}' for s, n in by_source.items())})")
    resolvers: list[tuple[str, Resolver]] = [("postcall", postcall_resolver)]
    other = dateparser_resolver()
    if other is not None:
        resolvers.append(("dateparser", other))
    else:
        print("(dateparser not installed: `pip install dateparser` to compare)")
    print(f"{'resolver':<11} {'correct dates':>20} {'invented':>12} {'times':>10} {'µs/phrase':>10}")
    for name, resolver in resolvers:
        misses: list[str] = []
        result = score(cases, resolver, misses)
        print(f"{name:<11} {result.correct:>4}/{result.determinable:<4} ({result.accuracy:6.1%}) "
              f"{result.invented:>4}/{result.undeterminable:<4} "
              f"{result.time_correct:>4}/{result.with_time:<4} {result.seconds / len(cases) * 1e6:>9.0f}")
        for source in by_source:
            part = score([c for c in cases if c.source == source], resolver)
            print(f"  {source + ' rows':<9} {part.correct:>4}/{part.determinable:<4} ({part.accuracy:6.1%}) "
                  f"{part.invented:>4}/{part.undeterminable:<4} {part.time_correct:>4}/{part.with_time:<4}")
        if args.show_misses:
            for line in misses:
                print("   ", line)


if __name__ == "__main__":
    main()
