"""Shared by Transcribe Call Analytics and Contact Lens: turns with roles, and detected insights.

Both list turns as `Transcript: [{"Content", "BeginOffsetMillis", "EndOffsetMillis", ...,
"IssuesDetected"?, "ActionItemsDetected"?, "OutcomesDetected"?}]`, where each detected insight marks a
character range of the turn (`CharacterOffsets: {"Begin", "End"}` in Call Analytics,
`{"BeginOffsetChar", "EndOffsetChar"}` in Contact Lens). Insights are kept as `vendor_hints`, with the
index of the utterance they point at and the quoted text: hints for the extractor and reviewers,
never facts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.ingest.model import Segment
from app.ingest.source import JsonReader, join_path
from app.schemas.transcript import Role

MILLISECONDS = 1000.0
# Vendor insight list in each turn -> key under vendor_hints.
INSIGHT_KEYS: dict[str, str] = {
    "IssuesDetected": "issues",
    "ActionItemsDetected": "action_items",
    "OutcomesDetected": "outcomes",
}
_OFFSET_KEYS = (("Begin", "End"), ("BeginOffsetChar", "EndOffsetChar"))


def role_of_participant(value: str | None) -> Role | None:
    """AWS participant roles: AGENT, CUSTOMER (also AGENT_n / CUSTOMER_n in some outputs)."""
    if value is None:
        return None
    head = value.upper().split("_", 1)[0]
    return {"AGENT": Role.agent, "CUSTOMER": Role.customer}.get(head)


def _insight_text(reader: JsonReader, insight: Any, path: str, content: str) -> dict[str, Any]:
    offsets_path = f"{path}.CharacterOffsets"
    offsets = reader.object(reader.object(insight, path).get("CharacterOffsets", {}), offsets_path)
    for begin_key, end_key in _OFFSET_KEYS:
        if begin_key in offsets and end_key in offsets:
            begin = int(reader.number(offsets[begin_key], f"{offsets_path}.{begin_key}"))
            end = int(reader.number(offsets[end_key], f"{offsets_path}.{end_key}"))
            return {"char_start": begin, "char_end": end, "text": content[begin:end]}
    return {"text": content}


def analytics_turns(
    reader: JsonReader,
    turns: list[Any],
    speaker_of: Callable[[dict[str, Any], str], tuple[str | None, Role | None]],
) -> tuple[list[Segment], dict[str, list[dict[str, Any]]]]:
    """Segments for the turns, and the detected insights keyed by kind (see INSIGHT_KEYS)."""
    segments: list[Segment] = []
    insights: dict[str, list[dict[str, Any]]] = {}
    spoken_index = 0  # the utterance index a turn will get: empty turns are dropped by assembly
    for position, raw in enumerate(turns):
        path = join_path("Transcript", position)
        turn = reader.object(raw, path)
        content = reader.string(reader.field(turn, "Content", path), f"{path}.Content")
        speaker, role = speaker_of(turn, path)
        begin, end = turn.get("BeginOffsetMillis"), turn.get("EndOffsetMillis")
        segments.append(
            Segment(
                location=path,
                text=content,
                speaker=speaker,
                role=role,
                start=reader.seconds(begin, f"{path}.BeginOffsetMillis", per_second=MILLISECONDS),
                end=reader.seconds(end, f"{path}.EndOffsetMillis", per_second=MILLISECONDS),
                start_field="BeginOffsetMillis",
                end_field="EndOffsetMillis",
            )
        )
        if not content.strip():
            continue
        for vendor_key, hint_key in INSIGHT_KEYS.items():
            detected = turn.get(vendor_key)
            if not detected:
                continue
            for number, insight in enumerate(reader.array(detected, f"{path}.{vendor_key}")):
                hint = _insight_text(reader, insight, f"{path}.{vendor_key}[{number}]", content)
                insights.setdefault(hint_key, []).append({"utterance_index": spoken_index, **hint})
        spoken_index += 1
    return segments, insights


def matched_categories(reader: JsonReader, root: dict[str, Any]) -> list[str]:
    categories = root.get("Categories")
    if not isinstance(categories, dict):
        return []
    matched = reader.array(categories.get("MatchedCategories", []), "Categories.MatchedCategories")
    return [reader.string(name, f"Categories.MatchedCategories[{i}]") for i, name in enumerate(matched)]
