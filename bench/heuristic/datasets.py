"""Small readers that turn the shared evaluation data and the project's samples into `Transcript`s.

Kept local to the benchmark (and reused by its tests) on purpose: the real ingestion package parses
vendor formats for production, this only needs the few fields an evaluation reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO_ROOT / "samples"


def shared_data_dir() -> Path | None:
    """`../shared/data` beside the checkout, or None when this machine does not have it."""
    candidate = (REPO_ROOT / ".." / "shared" / "data").resolve()
    return candidate if candidate.is_dir() else None


# --- Harper Valley Bank --------------------------------------------------------------------------

_HARPER_ROLES = {"agent": Role.agent, "caller": Role.customer}


@dataclass(frozen=True)
class HarperValleyCall:
    sid: str
    transcript: Transcript
    task_types: list[str]  # the caller's assigned tasks, e.g. ["replace card"]


def load_harper_valley(root: Path, *, text_field: str = "human_transcript") -> list[HarperValleyCall]:
    """All calls under `root` (harper_valley_bank/). `text_field` is "human_transcript" or "transcript" (ASR)."""
    calls: list[HarperValleyCall] = []
    for transcript_path in sorted((root / "transcript").glob("*.json")):
        segments: list[dict[str, Any]] = json.loads(transcript_path.read_text(encoding="utf-8"))
        metadata = json.loads((root / "metadata" / transcript_path.name).read_text(encoding="utf-8"))
        utterances: list[Utterance] = []
        for segment in sorted(segments, key=lambda s: s["index"]):
            text = str(segment.get(text_field) or "")
            if not text.strip():
                continue
            start = segment["start_ms"] / 1000.0
            utterances.append(
                Utterance(
                    index=len(utterances),
                    speaker=segment["speaker_role"],
                    role=_HARPER_ROLES.get(segment["speaker_role"], Role.unknown),
                    start=start,
                    end=start + segment["duration_ms"] / 1000.0,
                    text=text,
                )
            )
        if not utterances:
            continue
        transcript = Transcript(
            metadata=CallMetadata(external_id=metadata["sid"], language="en"),
            utterances=utterances,
            source_format="harper_valley",
        )
        calls.append(HarperValleyCall(metadata["sid"], transcript, [t["task_type"] for t in metadata["tasks"]]))
    return calls


# --- TweetSumm -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TweetsummDialog:
    conversation_id: str
    transcript: Transcript
    abstractive: list[str]  # each reference summary joined into one text
    extractive_spans: list[list[tuple[int, int, int]]]  # per annotator: (utterance, char_start, char_end)


def load_tweetsumm(path: Path, *, limit: int | None = None) -> list[TweetsummDialog]:
    """Dialogs of tweetsumm_train_joined.jsonl with their human summaries."""
    dialogs: list[TweetsummDialog] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and len(dialogs) >= limit:
                break
            record = json.loads(line)
            turns = [t for t in record["turns"] if t["text"].strip()]
            position = {t["tweet_id"]: i for i, t in enumerate(turns)}
            utterances = [
                Utterance(
                    index=i,
                    speaker=t["speaker"].capitalize(),
                    role=Role.agent if t["speaker"] == "agent" else Role.customer,
                    text=t["text"],
                )
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


# --- samples/ ----------------------------------------------------------------------------------------

_TEXT_LINE = re.compile(
    r"^\[(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{2}(?:\.\d+)?)\]\s*(?P<speaker>[^:]+):\s*(?P<text>.*)$"
)
_TEXT_ROLES = {"agent": Role.agent, "customer": Role.customer, "caller": Role.customer}
_METADATA_KEYS = ("external_id", "tenant", "agent_id", "team", "started_at", "language")


def load_sample(path: Path) -> Transcript:
    """A sample call: native JSON (utterances without `index`) or `[mm:ss] Speaker: text` lines."""
    if path.suffix == ".json":
        return load_native_json(json.loads(path.read_text(encoding="utf-8")))
    return load_timestamped_text(path.read_text(encoding="utf-8"), external_id=path.stem)


def load_native_json(document: dict[str, Any]) -> Transcript:
    metadata = {key: document[key] for key in _METADATA_KEYS if key in document}
    utterances = [dict(u, index=i) for i, u in enumerate(document["utterances"])]
    return Transcript.model_validate({"metadata": metadata, "utterances": utterances, "source_format": "native"})


def load_timestamped_text(text: str, *, external_id: str | None = None) -> Transcript:
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        match = _TEXT_LINE.match(line.strip())
        if match is None:
            if line.strip() and rows:
                rows[-1]["text"] += " " + line.strip()  # a wrapped line continues the previous turn
            continue
        seconds = int(match["h"] or 0) * 3600 + int(match["m"]) * 60 + float(match["s"])
        speaker = match["speaker"].strip()
        rows.append(
            {
                "index": len(rows),
                "speaker": speaker,
                "role": _TEXT_ROLES.get(speaker.lower(), Role.unknown),
                "start": seconds,
                "text": match["text"].strip(),
            }
        )
    return Transcript.model_validate(
        {"metadata": {"external_id": external_id}, "utterances": rows, "source_format": "text"}
    )


def sample_paths() -> Iterator[Path]:
    yield from sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix in {".json", ".txt"})


# --- Amazon Transcribe Call Analytics sample -------------------------------------------------------

_TCA_ROLES = {"AGENT": Role.agent, "CUSTOMER": Role.customer}


@dataclass(frozen=True)
class VendorLabelledCall:
    """A call with the vendor's own ML detections: (utterance, char_start, char_end) spans per kind."""

    transcript: Transcript
    issues: list[tuple[int, int, int]]
    action_items: list[tuple[int, int, int]]
    outcomes: list[tuple[int, int, int]]


def load_transcribe_call_analytics(path: Path) -> VendorLabelledCall:
    document = json.loads(path.read_text(encoding="utf-8"))
    utterances: list[Utterance] = []
    spans: dict[str, list[tuple[int, int, int]]] = {"IssuesDetected": [], "ActionItemsDetected": [],
                                                    "OutcomesDetected": []}
    for segment in document["Transcript"]:
        if not segment["Content"].strip():
            continue
        index = len(utterances)
        utterances.append(
            Utterance(
                index=index,
                speaker=segment["ParticipantRole"].title(),
                role=_TCA_ROLES.get(segment["ParticipantRole"], Role.unknown),
                start=segment["BeginOffsetMillis"] / 1000.0,
                end=segment["EndOffsetMillis"] / 1000.0,
                text=segment["Content"],
            )
        )
        for kind, found in spans.items():
            for detection in segment.get(kind, []):
                offsets = detection["CharacterOffsets"]
                found.append((index, offsets["Begin"], offsets["End"]))
    transcript = Transcript(
        metadata=CallMetadata(external_id=document.get("JobName")),
        utterances=utterances,
        source_format="aws_transcribe_call_analytics",
    )
    return VendorLabelledCall(
        transcript, spans["IssuesDetected"], spans["ActionItemsDetected"], spans["OutcomesDetected"]
    )
