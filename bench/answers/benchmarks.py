"""Dump every benchmark's answers, case by case, to canonical JSON, and compare two dumps.

    .venv/bin/python -m bench.answers.benchmarks dump before.json      # on the old code
    .venv/bin/python -m bench.answers.benchmarks dump after.json       # on the new code
    .venv/bin/python -m bench.answers.benchmarks compare before.json after.json

A refactoring that should change nothing is checked by answers, not scores: a score can stay the same
while two answers swap. The dump holds what each benchmark produces per case: the grounding benchmark's
verdict per quote and per claim (bench/grounding), the heuristic provider's extraction and the verifier's
verdict on it per call (bench/heuristic's corpora), the inferred role and confidence per speaker
(bench/roles), the resolved date per phrase (bench/due_dates) and the personal-data detections and
redacted text per utterance (bench/pii, its labeled rows and the real corpora). The compare lists every
changed answer, grouped by section, so each change can be matched to an intended fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.grounding import PreparedTranscript, verify_extraction
from app.ingest import load_transcript, parse_bytes
from app.llm.heuristic import extract_heuristic
from app.pipeline.redact import redact_transcript
from app.privacy.pii import detect_turns
from app.schemas.transcript import Transcript, Utterance
from app.text.due_dates import resolve_due
from bench.datasets import HarperValleyText, read_harper_valley, read_tweetsumm, shared_data_dir
from bench.due_dates.run import load_cases as load_due_cases
from bench.grounding.cases import build_cases
from bench.heuristic.datasets import (
    load_harper_valley,
    load_transcribe_call_analytics,
    load_tweetsumm,
    sample_paths,
)
from bench.pii.run import HERE as PII_DIR
from bench.roles.convert import abcd_calls, call_analytics_call, harper_valley_calls, tweetsumm_calls

Answers = dict[str, Any]
_ABSENT = "<absent>"


def grounding_answers(data: Path) -> Answers:
    case_set = build_cases(data)
    answers: Answers = {}
    prepared: dict[str, PreparedTranscript] = {}
    for case in case_set.cases:
        if case.transcript_id not in prepared:
            prepared[case.transcript_id] = PreparedTranscript(case_set.transcripts[case.transcript_id])
        evidence = prepared[case.transcript_id].align_quote(case.cited, case.quote)
        key = f"quote {case.category} {case.transcript_id} #{case.cited} {case.quote!r}"
        answers[key] = [piece.model_dump(mode="json") for piece in evidence]
    for claim_case in case_set.claim_cases:
        transcript = Transcript(utterances=case_set.transcripts[claim_case.transcript_id])
        claim = verify_extraction(transcript, claim_case.extraction())
        key = f"claim {claim_case.category} {claim_case.transcript_id} #{claim_case.cited} {claim_case.text!r}"
        verdict = claim.claims[0]
        answers[key] = {"status": verdict.status.value, "reason": verdict.reason}
    return answers


def _heuristic_answer(transcript: Transcript) -> Any:
    extraction = extract_heuristic(transcript)
    report = verify_extraction(transcript, extraction)
    return {
        "extraction": extraction.model_dump(mode="json"),
        "verdicts": [[claim.kind.value, claim.status.value, claim.reason] for claim in report.claims],
    }


def heuristic_answers(data: Path) -> Answers:
    answers: Answers = {}
    hvb = data / "harper_valley_bank"
    sources: tuple[HarperValleyText, ...] = ("human", "asr")
    for source in sources:
        for call in load_harper_valley(hvb, text_source=source):
            answers[f"harper_valley_{source} {call.sid}"] = _heuristic_answer(call.transcript)
    for dialog in load_tweetsumm(data / "tweetsumm" / "tweetsumm_train_joined.jsonl"):
        answers[f"tweetsumm {dialog.conversation_id}"] = _heuristic_answer(dialog.transcript)
    vendor = load_transcribe_call_analytics(
        data / "stt_formats" / "aws_transcribe_call_analytics" / "example-call.json"
    )
    answers["transcribe_call_analytics"] = _heuristic_answer(vendor.transcript)
    for path in sample_paths():
        answers[f"sample {path.name}"] = _heuristic_answer(load_transcript(path).transcript)
    return answers


def roles_answers(data: Path) -> Answers:
    corpora = {
        "harper_valley_human": harper_valley_calls(data / "harper_valley_bank", text_source="human"),
        "harper_valley_asr": harper_valley_calls(data / "harper_valley_bank", text_source="asr"),
        "tweetsumm": tweetsumm_calls(data / "tweetsumm" / "tweetsumm_train_joined.jsonl"),
        "abcd": abcd_calls(data / "abcd" / "dialogstudio_original_examples.json"),
        "transcribe_call_analytics": iter(
            [call_analytics_call(data / "stt_formats" / "aws_transcribe_call_analytics" / "example-call.json")]
        ),
    }
    answers: Answers = {}
    for corpus, calls in corpora.items():
        for call in calls:
            parsed = parse_bytes(call.to_bytes(), source_name=call.call_id)
            speakers: dict[str, Any] = {}
            for utterance in parsed.transcript.utterances:
                speakers.setdefault(utterance.speaker, [utterance.role.value, utterance.role_confidence])
            answers[f"{corpus} {call.call_id}"] = {"speakers": speakers, "warnings": parsed.warnings}
    return answers


def due_date_answers() -> Answers:
    answers: Answers = {}
    for case in load_due_cases():
        resolved = resolve_due(case.phrase, case.call_start, case.time_zone)
        key = f"{case.phrase!r} {case.call_start.isoformat()} {case.time_zone}"
        answers[key] = None if resolved is None else {
            "date": resolved.date.isoformat(),
            "at": resolved.at.isoformat() if resolved.at else None,
        }
    return answers


def _pii_calls(data: Path) -> Iterator[tuple[str, list[str]]]:
    for split in ("dev", "heldout"):
        for line in (PII_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                turns = [row["previous"], row["text"]] if "previous" in row else [row["text"]]
                yield f"{split} {row['id']}", turns
    for call in read_harper_valley(data / "harper_valley_bank"):
        yield f"harper_valley {call.sid}", [s.text("human") for s in call.segments if s.text("human").strip()]
    for record in read_tweetsumm(data / "tweetsumm" / "tweetsumm_train_joined.jsonl"):
        yield f"tweetsumm {record['conversation_id']}", [t["text"] for t in record["turns"]]


def pii_answers(data: Path) -> Answers:
    answers: Answers = {}
    for key, turns in _pii_calls(data):
        for names in (False, True):
            found = detect_turns(turns, names=names)
            answer = [[[d.kind.value, d.start, d.end] for d in turn] for turn in found]
            utterances = [Utterance(index=i, speaker="S", text=text) for i, text in enumerate(turns) if text.strip()]
            redacted = [u.text for u in redact_transcript(Transcript(utterances=utterances), names=names)[0].utterances]
            answers[f"{key} names={names}"] = {"detections": answer, "redacted": redacted}
    return answers


SECTIONS: dict[str, Callable[[Path], Answers]] = {
    "grounding": grounding_answers,
    "heuristic": heuristic_answers,
    "roles": roles_answers,
    "due_dates": lambda _data: due_date_answers(),
    "pii": pii_answers,
}


def dump(path: Path, sections: list[str]) -> None:
    data = shared_data_dir()
    if data is None:
        raise SystemExit("the shared data folder is not beside the checkout")
    result: dict[str, Answers] = {}
    for name in sections:
        print(f"... {name}", file=sys.stderr)
        result[name] = SECTIONS[name](data)
    path.write_text(json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def compare(before: dict[str, Answers], after: dict[str, Answers]) -> list[str]:
    """One line per answer that differs (or exists on one side only), by section and key."""
    lines: list[str] = []
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section, {}), after.get(section, {})
        changed = 0
        for key in sorted(set(old) & set(new)):
            if old[key] != new[key]:
                changed += 1
                lines.append(f"[{section}] {key}")
                lines.extend(f"    {line}" for line in _difference(old[key], new[key]))
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        lines.extend(f"[{section}] added: {key}" for key in added)
        lines.extend(f"[{section}] removed: {key}" for key in removed)
        lines.append(
            f"== {section}: {changed} of {len(set(old) & set(new))} answers changed, "
            f"{len(added)} cases added, {len(removed)} removed"
        )
    return lines


def _difference(old: Any, new: Any, where: str = "") -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _difference(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{where}.{key}")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for position, (left, right) in enumerate(zip(old, new, strict=True)):
            yield from _difference(left, right, f"{where}[{position}]")
    elif old != new:
        yield f"{where or '.'}: {json.dumps(old, ensure_ascii=False)} -> {json.dumps(new, ensure_ascii=False)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="write every benchmark's answers to a JSON file")
    dumping.add_argument("output", type=Path)
    dumping.add_argument("--section", action="append", choices=sorted(SECTIONS), help="only these (repeatable)")
    comparing = commands.add_parser("compare", help="list the answers that differ between two dumps")
    comparing.add_argument("before", type=Path)
    comparing.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.output, args.section or list(SECTIONS))
        return 0
    lines = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
