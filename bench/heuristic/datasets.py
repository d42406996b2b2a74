"""The heuristic benchmark's view of the shared data: canonical `Transcript`s with the gold labels beside them.

The corpora are read by `bench.datasets`; the project's samples go through the real ingestion
(`app.ingest.load_transcript`), exactly as a production file would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.schemas.transcript import CallMetadata, Transcript, Utterance
from bench.datasets import (
    REPO_ROOT,
    TWEETSUMM_ROLES,
    CharacterSpan,
    HarperValleyText,
    read_call_analytics,
    read_harper_valley,
    read_tweetsumm,
)

SAMPLES_DIR = REPO_ROOT / "samples"
SAMPLE_SUFFIXES = frozenset({".json", ".txt"})

# A place in a transcript: (utterance index, char_start, char_end).
UtteranceSpan = tuple[int, int, int]


def sample_paths() -> Iterator[Path]:
    yield from sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix in SAMPLE_SUFFIXES)


# --- Harper Valley Bank --------------------------------------------------------------------------


@dataclass(frozen=True)
class HarperValleyCall:
    sid: str
    transcript: Transcript
    task_types: list[str]  # the caller's assigned tasks, e.g. ["replace card"]


def load_harper_valley(root: Path, *, text_source: HarperValleyText = "human") -> list[HarperValleyCall]:
    """All calls under `root` (harper_valley_bank/) with the human or the ASR text; calls with no text are left out."""
    calls: list[HarperValleyCall] = []
    for call in read_harper_valley(root):
        utterances: list[Utterance] = []
        for segment in call.segments:
            text = segment.text(text_source)
            if not text.strip():
                continue
            utterances.append(
                Utterance(
                    index=len(utterances),
                    speaker=segment.speaker_role,
                    role=segment.role,
                    start=segment.start,
                    end=segment.end,
                    text=text,
                )
            )
        if not utterances:
            continue
        transcript = Transcript(
            metadata=CallMetadata(external_id=call.sid, language="en"),
            utterances=utterances,
            source_format="harper_valley",
        )
        calls.append(HarperValleyCall(call.sid, transcript, call.task_types))
    return calls


# --- TweetSumm -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TweetsummDialog:
    conversation_id: str
    transcript: Transcript
    abstractive: list[str]  # each reference summary joined into one text
    extractive_spans: list[list[UtteranceSpan]]  # per annotator


def load_tweetsumm(path: Path, *, limit: int | None = None) -> list[TweetsummDialog]:
    """Dialogs of tweetsumm_train_joined.jsonl (the first `limit` when given) with their human summaries."""
    dialogs: list[TweetsummDialog] = []
    for record in read_tweetsumm(path):
        if limit is not None and len(dialogs) >= limit:
            break
        turns = [t for t in record["turns"] if t["text"].strip()]
        position = {t["tweet_id"]: i for i, t in enumerate(turns)}
        utterances = [
            Utterance(index=i, speaker=t["speaker"].capitalize(), role=TWEETSUMM_ROLES[t["speaker"]], text=t["text"])
            for i, t in enumerate(turns)
        ]
        if not utterances:
            continue
        spans = [
            [
                (position[s["tweet_id"]], s["char_span"][0], s["char_span"][1])
                for s in annotation
                if s["tweet_id"] in position
            ]
            for annotation in record["extractive_summaries"]
            if annotation
        ]
        dialogs.append(
            TweetsummDialog(
                conversation_id=record["conversation_id"],
                transcript=Transcript(
                    metadata=CallMetadata(external_id=record["conversation_id"]),
                    utterances=utterances,
                    source_format="tweetsumm",
                ),
                abstractive=[" ".join(summary) for summary in record["abstractive_summaries"]],
                extractive_spans=spans,
            )
        )
    return dialogs


# --- Amazon Transcribe Call Analytics sample -------------------------------------------------------


@dataclass(frozen=True)
class VendorLabelledCall:
    """A call with the vendor's own ML detections, as spans per kind."""

    transcript: Transcript
    issues: list[UtteranceSpan]
    action_items: list[UtteranceSpan]
    outcomes: list[UtteranceSpan]


def load_transcribe_call_analytics(path: Path) -> VendorLabelledCall:
    call = read_call_analytics(path)

    def spans(detections: list[list[CharacterSpan]]) -> list[UtteranceSpan]:
        return [(index, begin, end) for index, found in enumerate(detections) for begin, end in found]

    transcript = Transcript(
        metadata=CallMetadata(external_id=call.job_name),
        utterances=[
            Utterance(
                index=index,
                speaker=segment.participant_role.title(),
                role=segment.role,
                start=segment.start,
                end=segment.end,
                text=segment.text,
            )
            for index, segment in enumerate(call.segments)
        ],
        source_format="aws_transcribe_call_analytics",
    )
    return VendorLabelledCall(
        transcript,
        spans([segment.issues for segment in call.segments]),
        spans([segment.action_items for segment in call.segments]),
        spans([segment.outcomes for segment in call.segments]),
    )
