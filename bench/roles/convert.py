"""Turn the shared corpora into native Postcall JSON with the roles hidden.

Speaker labels are replaced by neutral letters ("A", "B") in order of first appearance, so nothing but
what is said can reveal who the agent is. The gold role of each label is returned beside the document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.schemas.transcript import Role
from bench.datasets import (
    TWEETSUMM_ROLES,
    HarperValleyCall,
    HarperValleyText,
    TweetsummRecord,
    read_call_analytics,
    read_harper_valley,
    read_tweetsumm,
)

ABCD_SPEAKERS = ("agent", "customer")  # the other speaker, "action", is the system's log of agent actions


@dataclass(frozen=True, slots=True)
class HiddenRoleCall:
    call_id: str
    document: dict[str, Any]  # native JSON, roles removed
    gold_roles: dict[str, str]  # neutral speaker label -> "agent" | "customer"

    def to_bytes(self) -> bytes:
        return json.dumps(self.document).encode()


def _hide_roles(call_id: str, turns: Iterable[tuple[str, Role, dict[str, Any]]]) -> HiddenRoleCall:
    """`turns` are (original speaker, gold role, native utterance without a speaker), in call order.

    The first speaker becomes "A", the next "B"...
    """
    labels: dict[str, str] = {}
    gold: dict[str, str] = {}
    utterances: list[dict[str, Any]] = []
    for speaker, role, utterance in turns:
        neutral = labels.setdefault(speaker, chr(ord("A") + len(labels)))
        gold[neutral] = role.value
        utterances.append({"speaker": neutral, **utterance})
    return HiddenRoleCall(call_id, {"external_id": call_id, "utterances": utterances}, gold)


def harper_valley_call(call: HarperValleyCall, *, text_source: HarperValleyText = "human") -> HiddenRoleCall:
    """One Harper Valley Bank call as hidden-role native JSON; segments whose chosen text is empty are left out."""
    return _hide_roles(
        call.sid,
        (
            (segment.speaker_role, segment.role, {"start": segment.start, "end": segment.end, "text": text})
            for segment in call.segments
            if (text := segment.text(text_source).strip())
        ),
    )


def harper_valley_calls(root: Path, *, text_source: HarperValleyText = "human") -> Iterator[HiddenRoleCall]:
    for call in read_harper_valley(root):
        yield harper_valley_call(call, text_source=text_source)


def tweetsumm_call(record: TweetsummRecord) -> HiddenRoleCall:
    """One TweetSumm dialog (a line of tweetsumm_train_joined.jsonl) as hidden-role native JSON."""
    return _hide_roles(
        str(record["conversation_id"]),
        (
            (turn["speaker"], TWEETSUMM_ROLES[turn["speaker"]], {"text": text})
            for turn in record["turns"]
            if (text := turn["text"].strip())
        ),
    )


def tweetsumm_calls(path: Path) -> Iterator[HiddenRoleCall]:
    for record in read_tweetsumm(path):
        yield tweetsumm_call(record)


def abcd_calls(path: Path) -> Iterator[HiddenRoleCall]:
    """ABCD conversations (`original`: [[speaker, text]]); "action" turns are system logs, left out."""
    for conversation in json.loads(path.read_text(encoding="utf-8")):
        yield _hide_roles(
            f"abcd-{conversation['convo_id']}",
            (
                (speaker, Role(speaker), {"text": text})
                for speaker, said in conversation["original"]
                if speaker in ABCD_SPEAKERS and (text := str(said).strip())
            ),
        )


def call_analytics_call(path: Path) -> HiddenRoleCall:
    """A Transcribe Call Analytics file with its ParticipantRole hidden."""
    return _hide_roles(
        path.stem,
        (
            (segment.participant_role, segment.role, {"start": segment.start, "end": segment.end, "text": segment.text})
            for segment in read_call_analytics(path).segments
        ),
    )
