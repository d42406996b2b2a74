"""One reader per shared corpus in `../shared/data` beside the checkout; the corpora are read in place, never copied.

Each benchmark builds its own view on top of these (a canonical `Transcript`, a call with its roles
hidden, grounding cases); the readers only parse the files and keep every field a view reads, so the
views never open a data file themselves. The data is read where it lies, never copied into the repo.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from app.schemas.transcript import Role

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data").resolve()

MS_PER_SECOND = 1000


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when this checkout has none beside it."""
    return SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None


# --- Harper Valley Bank: harper_valley_bank/{transcript,metadata}/<sid>.json --------------------------

HarperValleyText = Literal["human", "asr"]

HARPER_VALLEY_ROLES = {"agent": Role.agent, "caller": Role.customer}


@dataclass(frozen=True, slots=True)
class HarperValleySegment:
    index: int
    speaker_role: str  # "agent" | "caller"
    # Seconds on the call's clock, from `offset_ms`: `start_ms` counts on each speaker's own channel, so the
    # agent's and the caller's `start_ms` are not comparable.
    start: float
    end: float
    human_transcript: str  # the gold text; "" when the segment has none
    transcript: str  # the ASR engine's text of the same audio; "" when it has none

    @property
    def role(self) -> Role:
        return HARPER_VALLEY_ROLES[self.speaker_role]

    def text(self, source: HarperValleyText) -> str:
        return self.human_transcript if source == "human" else self.transcript


@dataclass(frozen=True, slots=True)
class HarperValleyCall:
    sid: str
    metadata: dict[str, Any]  # the call's metadata file: gold tasks, agent responses, labels...
    segments: list[HarperValleySegment]  # in `index` order, segments without text included

    @property
    def task_types(self) -> list[str]:
        """The caller's assigned tasks, e.g. ["replace card"]."""
        return [str(task["task_type"]) for task in self.metadata["tasks"]]


def read_harper_valley(root: Path) -> Iterator[HarperValleyCall]:
    """Every call under `root` (the harper_valley_bank folder), in file-name order, one file pair at a time."""
    for transcript_path in sorted((root / "transcript").glob("*.json")):
        raw_segments: list[dict[str, Any]] = json.loads(transcript_path.read_text(encoding="utf-8"))
        metadata: dict[str, Any] = json.loads((root / "metadata" / transcript_path.name).read_text(encoding="utf-8"))
        segments = []
        for raw in sorted(raw_segments, key=lambda segment: segment["index"]):
            start = raw["offset_ms"] / MS_PER_SECOND
            segments.append(
                HarperValleySegment(
                    index=raw["index"],
                    speaker_role=raw["speaker_role"],
                    start=start,
                    end=start + raw["duration_ms"] / MS_PER_SECOND,
                    human_transcript=str(raw.get("human_transcript") or ""),
                    transcript=str(raw.get("transcript") or ""),
                )
            )
        # The file is named by the call's sid (the metadata's "sid" says the same).
        yield HarperValleyCall(transcript_path.stem, metadata, segments)


# --- TweetSumm: tweetsumm/tweetsumm_train_joined.jsonl ---------------------------------------------


class TweetsummTurn(TypedDict):
    tweet_id: int
    speaker: str  # "agent" | "customer"
    text: str
    sentence_offsets: list[list[int]]


class TweetsummSpan(TypedDict):
    tweet_id: int
    char_span: list[int]  # [start, end) in the tweet's text; some are shifted by a character or two


class TweetsummRecord(TypedDict):
    """One dialog of the joined file: the tweets and both kinds of human summary."""

    conversation_id: str
    split: str
    turns: list[TweetsummTurn]
    abstractive_summaries: list[list[str]]  # per annotator, a list of sentences
    extractive_summaries: list[list[TweetsummSpan] | None]  # per annotator; None when one gave none


TWEETSUMM_ROLES = {"agent": Role.agent, "customer": Role.customer}


def read_tweetsumm(path: Path) -> Iterator[TweetsummRecord]:
    """The records of tweetsumm_train_joined.jsonl at `path`, in file order."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield cast(TweetsummRecord, json.loads(line))


# --- Amazon Transcribe Call Analytics: stt_formats/aws_transcribe_call_analytics/example-call.json -----

CharacterSpan = tuple[int, int]  # [begin, end) in a segment's text

CALL_ANALYTICS_ROLES = {"AGENT": Role.agent, "CUSTOMER": Role.customer}


@dataclass(frozen=True, slots=True)
class CallAnalyticsSegment:
    """A segment with its text and the vendor's ML detections inside it."""

    participant_role: str  # "AGENT" | "CUSTOMER"
    start: float  # seconds
    end: float
    text: str
    issues: list[CharacterSpan]
    action_items: list[CharacterSpan]
    outcomes: list[CharacterSpan]

    @property
    def role(self) -> Role:
        return CALL_ANALYTICS_ROLES[self.participant_role]


@dataclass(frozen=True, slots=True)
class CallAnalyticsCall:
    job_name: str | None
    segments: list[CallAnalyticsSegment]  # those with text, in file order


def read_call_analytics(path: Path) -> CallAnalyticsCall:
    """A Transcribe Call Analytics result file; segments without text are left out."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    def detected(segment: dict[str, Any], kind: str) -> list[CharacterSpan]:
        offsets = [detection["CharacterOffsets"] for detection in segment.get(kind, [])]
        return [(offset["Begin"], offset["End"]) for offset in offsets]

    segments = [
        CallAnalyticsSegment(
            participant_role=segment["ParticipantRole"],
            start=segment["BeginOffsetMillis"] / MS_PER_SECOND,
            end=segment["EndOffsetMillis"] / MS_PER_SECOND,
            text=segment["Content"],
            issues=detected(segment, "IssuesDetected"),
            action_items=detected(segment, "ActionItemsDetected"),
            outcomes=detected(segment, "OutcomesDetected"),
        )
        for segment in document["Transcript"]
        if segment["Content"].strip()
    ]
    return CallAnalyticsCall(document.get("JobName"), segments)
