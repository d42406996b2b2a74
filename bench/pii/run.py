"""Recall and precision of personal-data detection on the labeled PII set.

    .venv/bin/python -m bench.pii.run                  # the dev part (used while tuning)
    .venv/bin/python -m bench.pii.run --split heldout  # the held-out part: for the final report only
    .venv/bin/python -m bench.pii.run --show-errors
    .venv/bin/python -m bench.pii.run --real           # cost and detections on the shared real corpora

A labeled span is recalled when every letter and digit of it is inside some detection (of any
kind: what matters is that it does not leave). A detection is correct when it overlaps a labeled
span. Per kind: recall by the labeled kind, precision by the detected kind.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from app.privacy.pii import Detection, PiiKind, detect_turns

HERE = Path(__file__).resolve().parent
KIND_OF_LABEL = {
    "card": PiiKind.card,
    "ssn": PiiKind.ssn,
    "account": PiiKind.account,
    "email": PiiKind.email,
    "phone": PiiKind.phone,
    "dob": PiiKind.dob,
    "cvv": PiiKind.cvv,
    "expiry": PiiKind.expiry,
    "address": PiiKind.address,
}
TARGET_KINDS = (PiiKind.card, PiiKind.ssn, PiiKind.account, PiiKind.email, PiiKind.phone)
RECALL_TARGET = 0.995
PRECISION_TARGET = 0.95


@dataclass
class Score:
    labeled: Counter[PiiKind]
    recalled: Counter[PiiKind]
    detected: Counter[PiiKind]
    correct: Counter[PiiKind]
    errors: list[str]
    utterances: int
    seconds: float


def covered(text: str, start: int, end: int, detections: list[Detection]) -> bool:
    return all(not text[i].isalnum() or any(d.start <= i < d.end for d in detections) for i in range(start, end))


def score(path: Path) -> Score:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    labeled: Counter[PiiKind] = Counter()
    recalled: Counter[PiiKind] = Counter()
    detected: Counter[PiiKind] = Counter()
    correct: Counter[PiiKind] = Counter()
    errors: list[str] = []
    began = time.perf_counter()
    found_per_row = []
    for row in rows:
        turns = [row["previous"], row["text"]] if "previous" in row else [row["text"]]
        found_per_row.append(detect_turns(turns)[-1])
    seconds = time.perf_counter() - began
    for row, found in zip(rows, found_per_row, strict=True):
        text = row["text"]
        spans = []
        for label in row["pii"]:
            kind = KIND_OF_LABEL[label["kind"]]
            start = text.index(label["text"])
            end = start + len(label["text"])
            spans.append((start, end))
            labeled[kind] += 1
            if covered(text, start, end, found):
                recalled[kind] += 1
            else:
                errors.append(f"MISSED {kind.value:8} {row['id']}: {text!r} -> {label['text']!r}")
        for detection in found:
            detected[detection.kind] += 1
            if any(detection.start < end and start < detection.end for start, end in spans):
                correct[detection.kind] += 1
            else:
                surface = text[detection.start : detection.end]
                errors.append(f"EXTRA  {detection.kind.value:8} {row['id']}: {text!r} -> {surface!r}")
    return Score(labeled, recalled, detected, correct, errors, len(rows), seconds)


def real_data(root: Path | None) -> None:
    """CPU time of `detect_turns` per call on Harper Valley (human transcripts) and TweetSumm, and
    what it finds there (no labels: read the detections with --show-errors to judge them)."""
    from bench.datasets import read_harper_valley, read_tweetsumm, shared_data_dir

    root = root or shared_data_dir()
    if root is None:
        raise SystemExit("the shared data directory is not available")
    calls = [
        [s.text("human") for s in call.segments if s.text("human").strip()]
        for call in read_harper_valley(root / "harper_valley_bank")
    ]
    calls += [
        [t["text"] for t in r["turns"]] for r in read_tweetsumm(root / "tweetsumm" / "tweetsumm_train_joined.jsonl")
    ]
    began = time.process_time()
    found = [detect_turns(turns) for turns in calls]
    seconds = time.process_time() - began
    turns = sum(len(c) for c in calls)
    kinds = Counter(d.kind.value for call in found for turn in call for d in turn)
    print(
        f"{len(calls)} calls, {turns} turns: {seconds / len(calls) * 1000:.2f} ms CPU per call, "
        f"{seconds / turns * 1e6:.0f} us per turn; detections {dict(kinds)}"
    )


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=("dev", "heldout"), default="dev")
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--real", action="store_true", help="time and count detections on the shared real data")
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (default: beside the repo)")
    args = parser.parse_args()
    if args.real:
        real_data(args.data)
        return
    result = score(HERE / f"{args.split}.jsonl")
    print(f"{args.split}: {result.utterances} utterances, {result.seconds * 1000:.0f} ms")
    print("| kind | labeled | recall | detected | precision |")
    print("|---|---|---|---|---|")
    for kind in PiiKind:
        if result.labeled[kind] or result.detected[kind]:
            print(
                f"| {kind.value} | {result.labeled[kind]} | {ratio(result.recalled[kind], result.labeled[kind])} "
                f"({result.recalled[kind]}) | {result.detected[kind]} | "
                f"{ratio(result.correct[kind], result.detected[kind])} |"
            )
    total_detected = sum(result.detected.values())
    total_correct = sum(result.correct.values())
    print(f"overall precision {ratio(total_correct, total_detected)} ({total_correct}/{total_detected})")
    misses = [
        k.value for k in TARGET_KINDS if result.labeled[k] and result.recalled[k] / result.labeled[k] < RECALL_TARGET
    ]
    print("recall target (99.5% on CARD, SSN, ACCOUNT, EMAIL, PHONE):", "met" if not misses else f"missed: {misses}")
    if total_detected:
        print("precision target (95%):", "met" if total_correct / total_detected >= PRECISION_TARGET else "missed")
    if args.show_errors:
        print("\n".join(result.errors))


if __name__ == "__main__":
    main()
