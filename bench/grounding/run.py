"""Grounding benchmark: Postcall's verifier and langextract's aligner on the same real cases.

    .venv/bin/python -m bench.grounding.run                 # Postcall only (langextract absent)
    .venv-bench/bin/python -m bench.grounding.run           # both, side by side
    ... --show fab_content                                  # list one category's cases and verdicts

Cases come from ../shared/data (see bench/grounding/cases.py). langextract is not a Postcall
dependency: it lives in its own venv (`.venv-bench`) and the run says so when it is missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from app.grounding import PreparedTranscript, verify_extraction
from app.schemas.grounding import EvidenceStatus, VerifiedEvidence
from app.schemas.transcript import Transcript, Utterance
from bench.datasets import SHARED_DATA_DIR
from bench.grounding.cases import GROUNDED, UNSUPPORTED_DETAIL, Case, CaseSet, build_cases

STATUSES = ("exact", "normalized", "fuzzy", "relocated", "ungrounded")
ACCEPTED_STATUSES = frozenset({"exact", "normalized", "fuzzy", "relocated"})

# Categories in report order, with what "good" means for each.
CATEGORY_ORDER = (
    "genuine_verbatim",
    "genuine_normalized",
    "genuine_wrong_index",
    "asr_identical",
    "asr_noise",
    "asr_critical_differs",
    "fab_number",
    "fab_amount",
    "fab_date",
    "fab_id",
    "fab_negation",
    "fab_content",
    "fab_foreign_sentence",
)


@dataclass
class Outcome:
    status: str
    utterance: int | None
    seconds: float


# --- Postcall -------------------------------------------------------------------------------------


def _overall_status(evidence: Sequence[VerifiedEvidence]) -> tuple[str, int | None]:
    if any(not piece.grounded for piece in evidence):
        return "ungrounded", None
    statuses = {piece.status for piece in evidence}
    first = evidence[0].utterance
    if EvidenceStatus.relocated in statuses:
        return "relocated", first
    for status in (EvidenceStatus.fuzzy, EvidenceStatus.normalized, EvidenceStatus.exact):
        if status in statuses:
            return status.value, first
    return "ungrounded", None


def run_postcall(case_set: CaseSet) -> tuple[list[Outcome], float, int]:
    """Verify every case, one PreparedTranscript per transcript as the pipeline does.

    Returns the outcomes (in case order), the total seconds (preparation included) and the number
    of offset-invariant violations (an exact span that does not slice back to the quote).
    """
    by_transcript: dict[str, list[int]] = defaultdict(list)
    for position, case in enumerate(case_set.cases):
        by_transcript[case.transcript_id].append(position)
    outcomes: list[Outcome | None] = [None] * len(case_set.cases)
    violations = 0
    total_start = time.process_time()
    for transcript_id, positions in by_transcript.items():
        utterances = case_set.transcripts[transcript_id]
        prepared = PreparedTranscript(utterances)
        for position in positions:
            case = case_set.cases[position]
            start = time.process_time()
            evidence = prepared.align_quote(case.cited, case.quote)
            elapsed = time.process_time() - start
            status, utterance = _overall_status(evidence)
            outcomes[position] = Outcome(status, utterance, elapsed)
            violations += _invariant_violations(utterances, evidence)
    total = time.process_time() - total_start
    return [outcome for outcome in outcomes if outcome is not None], total, violations


def _invariant_violations(utterances: Sequence[Utterance], evidence: Sequence[VerifiedEvidence]) -> int:
    bad = 0
    for piece in evidence:
        if not piece.grounded:
            continue
        if piece.utterance is None or piece.char_start is None or piece.char_end is None:
            bad += 1
            continue
        span = utterances[piece.utterance].text[piece.char_start : piece.char_end]
        if not span or (piece.status is EvidenceStatus.exact and span != piece.quote):
            bad += 1
    return bad


def run_claims(case_set: CaseSet) -> Counter[tuple[str, str, str]]:
    """(category, expected, got) counts for the claim-level cases."""
    results: Counter[tuple[str, str, str]] = Counter()
    for case in case_set.claim_cases:
        transcript = Transcript(utterances=case_set.transcripts[case.transcript_id])
        claim = verify_extraction(transcript, case.extraction()).claims[0]
        got = claim.reason or claim.status.value
        if case.expected == UNSUPPORTED_DETAIL and got.startswith("unsupported_"):
            got = f"{UNSUPPORTED_DETAIL} ({got})"
        results[(case.category, case.expected, got)] += 1
    return results


# --- langextract ----------------------------------------------------------------------------------


def langextract_version() -> str | None:
    try:
        from importlib.metadata import version

        import langextract  # noqa: F401
    except ImportError:
        return None
    return version("langextract")


def run_langextract(case_set: CaseSet) -> tuple[list[Outcome], float]:
    """Align each quote against the whole transcript text with langextract's WordAligner."""
    from langextract import resolver
    from langextract.core import data

    logging.getLogger("absl").setLevel(logging.ERROR)
    status_names = {
        "MATCH_EXACT": "exact",
        "MATCH_LESSER": "partial",
        "MATCH_GREATER": "partial",
        "MATCH_FUZZY": "fuzzy",
    }
    documents: dict[str, tuple[str, list[int]]] = {}
    for transcript_id, utterances in case_set.transcripts.items():
        starts: list[int] = []
        position = 0
        for utterance in utterances:
            starts.append(position)
            position += len(utterance.text) + 1
        documents[transcript_id] = ("\n".join(u.text for u in utterances), starts)
    outcomes: list[Outcome] = []
    total_start = time.process_time()
    for case in case_set.cases:
        text, starts = documents[case.transcript_id]
        start = time.process_time()
        extraction = data.Extraction(extraction_class="quote", extraction_text=case.quote)
        aligned = resolver.WordAligner().align_extractions([[extraction]], text)[0][0]
        elapsed = time.process_time() - start
        if aligned.alignment_status is None or aligned.char_interval is None:
            outcomes.append(Outcome("ungrounded", None, elapsed))
            continue
        begin = aligned.char_interval.start_pos or 0
        utterance = max(index for index, offset in enumerate(starts) if offset <= begin)
        outcomes.append(Outcome(status_names.get(aligned.alignment_status.name, "fuzzy"), utterance, elapsed))
    return outcomes, time.process_time() - total_start


# --- reporting ------------------------------------------------------------------------------------


def _accepted(outcome: Outcome) -> bool:
    return outcome.status != "ungrounded"


def _correct_place(case: Case, outcome: Outcome) -> bool:
    return case.true_utterance is None or outcome.utterance == case.true_utterance


def category_table(cases: Sequence[Case], ours: Sequence[Outcome], theirs: Sequence[Outcome] | None) -> list[list[str]]:
    rows: list[list[str]] = []
    grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
    for position, case in enumerate(cases):
        grouped[(case.category, case.source)].append(position)
        grouped[(case.category, "all")].append(position)
    categories = [c for c in CATEGORY_ORDER if any(key[0] == c for key in grouped)]
    for category in categories:
        for source in ("tweetsumm", "harper_valley", "all"):
            positions = grouped.get((category, source))
            if not positions or (source != "all" and len({cases[p].source for p in grouped[(category, 'all')]}) == 1):
                continue
            row = [category, source, str(len(positions))]
            row.extend(_describe(cases, ours, positions))
            if theirs is None:
                row.extend(["n/a", "n/a", "n/a"])
            else:
                described = _describe(cases, theirs, positions)
                whole = sum(1 for p in positions if theirs[p].status in ("exact", "fuzzy"))
                row.extend([described[0], f"{100.0 * whole / len(positions):.1f}%", described[1]])
            rows.append(row)
    return rows


def _describe(cases: Sequence[Case], outcomes: Sequence[Outcome], positions: Sequence[int]) -> list[str]:
    accepted = [p for p in positions if _accepted(outcomes[p])]
    share = 100.0 * len(accepted) / len(positions)
    statuses = Counter(outcomes[p].status for p in positions)
    breakdown = " ".join(f"{name}:{count}" for name, count in statuses.most_common())
    misplaced = sum(1 for p in accepted if not _correct_place(cases[p], outcomes[p]))
    if misplaced:
        breakdown += f" (wrong utterance: {misplaced})"
    return [f"{share:.1f}%", breakdown]


def _ideal_status(case: Case, outcome: Outcome) -> str:
    if case.expected == GROUNDED:
        return outcome.status if outcome.status in ("exact", "normalized", "fuzzy") else "fuzzy"
    return case.expected


def status_precision_recall(cases: Sequence[Case], outcomes: Sequence[Outcome]) -> list[list[str]]:
    rows = []
    for status in STATUSES:
        predicted = [p for p, outcome in enumerate(outcomes) if outcome.status == status]
        expected = [p for p, case in enumerate(cases) if _ideal_status(case, outcomes[p]) == status]
        hits = [p for p in predicted if _ideal_status(cases[p], outcomes[p]) == status]
        precision = 100.0 * len(hits) / len(predicted) if predicted else float("nan")
        recall = 100.0 * len(hits) / len(expected) if expected else float("nan")
        rows.append([status, str(len(expected)), str(len(predicted)), f"{precision:.2f}%", f"{recall:.2f}%"])
    return rows


# A realistic share of fabricated citations for the mixed throughput figure (the case set itself holds
# about 45% fabrications, far more than a provider produces).
REALISTIC_FABRICATED_SHARE = 0.1


def mixed_throughput(outcomes: Sequence[Outcome], cases: Sequence[Case]) -> float:
    """Citations per second at REALISTIC_FABRICATED_SHARE, from the mean time of each kind of case."""
    genuine = [o.seconds for o, c in zip(outcomes, cases, strict=True) if c.expected != "ungrounded"]
    fabricated = [o.seconds for o, c in zip(outcomes, cases, strict=True) if c.expected == "ungrounded"]
    mean = (1 - REALISTIC_FABRICATED_SHARE) * sum(genuine) / len(genuine) + REALISTIC_FABRICATED_SHARE * sum(
        fabricated
    ) / len(fabricated)
    return 1.0 / mean


def throughput(outcomes: Sequence[Outcome], cases: Sequence[Case], genuine_only: bool = False) -> float:
    chosen = [o for o, c in zip(outcomes, cases, strict=True) if not genuine_only or c.expected != "ungrounded"]
    seconds = sum(outcome.seconds for outcome in chosen)
    return len(chosen) / seconds if seconds else float("inf")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def machine() -> str:
    model = platform.processor() or "unknown"
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in output.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--no-langextract", action="store_true", help="skip langextract even if installed")
    parser.add_argument("--show", metavar="CATEGORY", help="print the cases of one category and what we said")
    arguments = parser.parse_args(argv)

    if not SHARED_DATA_DIR.is_dir():
        print(f"shared data not found at {SHARED_DATA_DIR}: the grounding benchmark needs it", file=sys.stderr)
        return 2
    case_set = build_cases(SHARED_DATA_DIR, seed=arguments.seed)
    cases = case_set.cases
    ours, ours_seconds, violations = run_postcall(case_set)
    claims = run_claims(case_set)

    version = None if arguments.no_langextract else langextract_version()
    theirs: list[Outcome] | None = None
    theirs_seconds = 0.0
    if version is not None:
        theirs, theirs_seconds = run_langextract(case_set)

    if arguments.show:
        for position, case in enumerate(cases):
            if case.category == arguments.show:
                outcome = ours[position]
                target = case_set.transcripts[case.transcript_id][case.true_utterance or case.cited].text
                print(f"[{outcome.status}] {case.detail} quote={case.quote!r}\n      utterance={target!r}")
        return 0

    print(f"machine: {machine()}")
    print(f"cases: {len(cases)} citations, {len(case_set.claim_cases)} claims; " + "; ".join(case_set.notes))
    print(f"langextract: {version or 'not installed (run it from .venv-bench, see docs/grounding.md)'}")
    header = ["category", "source", "n", "Postcall accepted", "Postcall statuses", "langextract aligned",
              "langextract exact or fuzzy", "langextract statuses"]
    print()
    print(_table(header, category_table(cases, ours, theirs)))
    print()
    print("Postcall precision/recall per status (expected status vs status given):")
    print(_table(["status", "expected", "given", "precision", "recall"], status_precision_recall(cases, ours)))
    print()
    claim_rows = [[category, expected, got, str(count)] for (category, expected, got), count in sorted(claims.items())]
    print("Claim-level checks:")
    print(_table(["category", "expected", "got", "n"], claim_rows))
    print()
    speed_rows = [
        ["Postcall", f"{len(cases) / ours_seconds:,.0f}", f"{throughput(ours, cases):,.0f}",
         f"{throughput(ours, cases, genuine_only=True):,.0f}", f"{mixed_throughput(ours, cases):,.0f}"],
    ]
    if theirs is not None:
        speed_rows.append(
            [f"langextract {version}", f"{len(cases) / theirs_seconds:,.0f}", f"{throughput(theirs, cases):,.0f}",
             f"{throughput(theirs, cases, genuine_only=True):,.0f}", f"{mixed_throughput(theirs, cases):,.0f}"]
        )
    print(
        "Citations per second, one core, CPU time (total: index building included; the others: time inside"
        f" the aligner; mix: {100 * (1 - REALISTIC_FABRICATED_SHARE):.0f}% genuine,"
        f" {100 * REALISTIC_FABRICATED_SHARE:.0f}% fabricated):"
    )
    header = ["tool", "total, all cases", "all cases", "genuine only", "mix"]
    print(_table(header, speed_rows))
    print()
    print(f"offset invariant violations (Postcall): {violations}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
