"""Threshold sweep: how each fuzzy threshold trades real ASR noise against fabrications.

    .venv/bin/python -m bench.grounding.sweep

Only the cases that reach the fuzzy stage can move (verbatim and normalized matches never do), so the
sweep runs the ASR-noise quotes and every fabrication category, one threshold varied at a time around
the shipped values. docs/grounding.md records the table this prints and why each value was chosen.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import app.grounding.align as align_module
from app.grounding import thresholds
from bench.datasets import SHARED_DATA_DIR
from bench.grounding.cases import build_cases
from bench.grounding.run import run_postcall

# Threshold name -> values to try (the shipped value is always included).
GRID: dict[str, Sequence[Any]] = {
    "FUZZY_MIN_SCORE": (0.6, 0.7, 0.75, 0.8, 0.9),
    "FUZZY_MIN_QUOTE_COVERAGE": (0.5, 0.6, 0.75, 0.85, 0.95),
    "ASR_SLIP_MIN_JARO_WINKLER": (0.8, 0.85, 0.9, 0.95, 1.01),
    "ASR_SLIP_MAX_EDITS": (1, 2, 3, 4),
    "FUZZY_MAX_CONTENT_EDITS": (0, 1, 2),
}
ASR_CATEGORIES = ("asr_noise", "asr_identical")


@contextmanager
def patched(name: str, value: Any) -> Iterator[None]:
    original = getattr(align_module, name)
    setattr(align_module, name, value)
    align_module._is_asr_slip.cache_clear()
    try:
        yield
    finally:
        setattr(align_module, name, original)
        align_module._is_asr_slip.cache_clear()


def main() -> int:
    if not SHARED_DATA_DIR.is_dir():
        print(f"shared data not found at {SHARED_DATA_DIR}", file=sys.stderr)
        return 2
    case_set = build_cases(SHARED_DATA_DIR)
    case_set.cases = [
        case for case in case_set.cases if case.category in ASR_CATEGORIES or case.category.startswith("fab_")
    ]
    categories = sorted({case.category for case in case_set.cases if case.category.startswith("fab_")})
    header = ["threshold", "value", "ASR noise accepted", "ASR all accepted", *[f"{c} accepted" for c in categories]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, values in GRID.items():
        shipped = getattr(thresholds, name)
        for value in sorted({*values, shipped}):
            with patched(name, value):
                outcomes, _, _ = run_postcall(case_set)
            accepted: Counter[str] = Counter()
            totals: Counter[str] = Counter()
            for case, outcome in zip(case_set.cases, outcomes, strict=True):
                totals[case.category] += 1
                accepted[case.category] += outcome.status != "ungrounded"
            asr_all = sum(accepted[c] for c in ASR_CATEGORIES) / sum(totals[c] for c in ASR_CATEGORIES)
            cells = [
                name,
                f"**{value}**" if value == shipped else str(value),
                f"{100 * accepted['asr_noise'] / totals['asr_noise']:.1f}%",
                f"{100 * asr_all:.1f}%",
                *[f"{100 * accepted[c] / totals[c]:.2f}%" for c in categories],
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
