"""Turn the shared corpora into native Postcall JSON with the roles hidden.

Speaker labels are replaced by neutral letters ("A", "B") in order of first appearance, so nothing but
what is said can reveal who the agent is. The gold role of each label is returned beside the document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

TextSource = Literal["human", "asr"]

_HARPER_VALLEY_ROLES = {"agent": "agent", "caller": "customer"}
_TWEETSUMM_ROLES = {"agent": "agent", "customer": "customer"}


@dataclass(frozen=True, slots=True)
class HiddenRoleCall:
    call_id: str
    document: dict[str, Any]  # native JSON, roles removed
    gold_roles: dict[str, str]  # neutral speaker label -> "agent" | "customer"

    def to_bytes(self) -> bytes:
        return json.dumps(self.document).encode()


class _Labeller:
    """Neutral labels in order of first appearance: the first speaker is "A", the next "B"..."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}

    def __call__(self, original: str) -> str:
        if original not in self.labels:
            self.labels[original] = chr(ord("A") + len(self.labels))
        return self.labels[original]


def harper_valley_call(path: Path, *, text_source: TextSource = "human") -> HiddenRoleCall:
    """One Harper Valley Bank transcript (a JSON list of segments) as hidden-role native JSON.

    Segments are ordered by their `index`; times come from `offset_ms`/`duration_ms` (the offset is on
    the call's clock for both channels). Segments whose chosen text is empty are left out.
    """
    segments = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda segment: segment["index"])
    text_key = "human_transcript" if text_source == "human" else "transcript"
    label = _Labeller()
    gold: dict[str, str] = {}
    utterances: list[dict[str, Any]] = []
    for segment in segments:
        text = str(segment.get(text_key) or "").strip()
        if not text:
            continue
        speaker = label(str(segment["speaker_role"]))
        gold[speaker] = _HARPER_VALLEY_ROLES[segment["speaker_role"]]
        start = segment["offset_ms"] / 1000
        utterances.append(
            {"speaker": speaker, "start": start, "end": start + segment["duration_ms"] / 1000, "text": text}
        )
    return HiddenRoleCall(path.stem, {"external_id": path.stem, "utterances": utterances}, gold)


def harper_valley_calls(root: Path, *, text_source: TextSource = "human") -> Iterator[HiddenRoleCall]:
    for path in sorted((root / "transcript").glob("*.json")):
        yield harper_valley_call(path, text_source=text_source)


def tweetsumm_call(record: dict[str, Any]) -> HiddenRoleCall:
    """One TweetSumm dialog (a line of tweetsumm_train_joined.jsonl) as hidden-role native JSON."""
    label = _Labeller()
    gold: dict[str, str] = {}
    utterances: list[dict[str, Any]] = []
    for turn in record["turns"]:
        text = str(turn["text"]).strip()
        if not text:
            continue
        speaker = label(str(turn["speaker"]))
        gold[speaker] = _TWEETSUMM_ROLES[turn["speaker"]]
        utterances.append({"speaker": speaker, "text": text})
    call_id = str(record["conversation_id"])
    return HiddenRoleCall(call_id, {"external_id": call_id, "utterances": utterances}, gold)


def tweetsumm_calls(path: Path) -> Iterator[HiddenRoleCall]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield tweetsumm_call(json.loads(line))


def abcd_calls(path: Path) -> Iterator[HiddenRoleCall]:
    """ABCD conversations (`original`: [[speaker, text]]); "action" turns are system logs, left out."""
    for conversation in json.loads(path.read_text(encoding="utf-8")):
        label = _Labeller()
        gold: dict[str, str] = {}
        utterances: list[dict[str, Any]] = []
        for speaker, text in conversation["original"]:
            if speaker not in ("agent", "customer") or not str(text).strip():
                continue
            neutral = label(speaker)
            gold[neutral] = speaker
            utterances.append({"speaker": neutral, "text": str(text).strip()})
        call_id = f"abcd-{conversation['convo_id']}"
        yield HiddenRoleCall(call_id, {"external_id": call_id, "utterances": utterances}, gold)


def call_analytics_call(path: Path) -> HiddenRoleCall:
    """A Transcribe Call Analytics file with its ParticipantRole hidden."""
    document = json.loads(path.read_text(encoding="utf-8"))
    label = _Labeller()
    gold: dict[str, str] = {}
    utterances: list[dict[str, Any]] = []
    for turn in document["Transcript"]:
        if not turn["Content"].strip():
            continue
        neutral = label(turn["ParticipantRole"])
        gold[neutral] = turn["ParticipantRole"].lower()
        start = turn["BeginOffsetMillis"] / 1000
        utterances.append(
            {"speaker": neutral, "start": start, "end": turn["EndOffsetMillis"] / 1000, "text": turn["Content"]}
        )
    return HiddenRoleCall(path.stem, {"external_id": path.stem, "utterances": utterances}, gold)
