"""Deepgram pre-recorded (`/v1/listen`) responses.

Shape (see developers.deepgram.com, "Pre-recorded" response, `utterances`, `diarize`, `multichannel`):

    {"metadata": {"request_id", "channels", ...},
     "results": {"channels": [{"alternatives": [{"transcript", "words": [{"word", "punctuated_word"?,
                                                  "start", "end", "speaker"?}]}], "detected_language"?}],
                 "utterances"?: [{"start", "end", "channel", "transcript", "speaker"?}]}}

Utterances are used when present (`utterances=true`); otherwise the words of every channel are merged
in time order and grouped into turns. Speaker labels: `speaker N` with `diarize`, `channel N` for a
multichannel request, `channel N speaker M` with both.
"""

from __future__ import annotations

from typing import Any

from app.ingest.model import Grouping, Segment, SourceCall
from app.ingest.source import JsonReader, SourceDocument, call_metadata, join_path

FORMAT = "deepgram"
DESCRIPTION = "Deepgram pre-recorded JSON (utterances, or diarized/multichannel words)"


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict):
        return False
    results = value.get("results")
    return isinstance(results, dict) and isinstance(results.get("channels"), list) and "metadata" in value


def _label(speaker: str | None, channel: int, multichannel: bool) -> str | None:
    if multichannel and speaker is not None:
        return f"channel {channel} speaker {speaker}"
    if multichannel:
        return f"channel {channel}"
    return None if speaker is None else f"speaker {speaker}"


def _first_alternative(reader: JsonReader, channel: Any, path: str) -> tuple[dict[str, Any], str] | None:
    alternatives = reader.array(reader.object(channel, path).get("alternatives", []), f"{path}.alternatives")
    if not alternatives:
        return None
    alternative_path = f"{path}.alternatives[0]"
    return reader.object(alternatives[0], alternative_path), alternative_path


def _utterance_segments(
    reader: JsonReader, utterances: list[Any], multichannel: bool
) -> list[Segment]:
    segments: list[Segment] = []
    for position, raw in enumerate(utterances):
        path = f"results.utterances[{position}]"
        utterance = reader.object(raw, path)
        channel = int(reader.optional_number(utterance.get("channel"), f"{path}.channel") or 0)
        segments.append(
            Segment(
                location=path,
                text=reader.string(reader.field(utterance, "transcript", path), f"{path}.transcript"),
                speaker=_label(reader.label(utterance.get("speaker"), f"{path}.speaker"), channel, multichannel),
                start=reader.seconds(utterance.get("start"), f"{path}.start"),
                end=reader.seconds(utterance.get("end"), f"{path}.end"),
                start_field="start",
                end_field="end",
            )
        )
    return segments


def _word_segments(reader: JsonReader, channels: list[Any], multichannel: bool) -> list[Segment]:
    segments: list[Segment] = []
    for channel_index, channel in enumerate(channels):
        found = _first_alternative(reader, channel, f"results.channels[{channel_index}]")
        if found is None:
            continue
        alternative, alternative_path = found
        words_path = f"{alternative_path}.words"
        words = reader.array(alternative.get("words", []), words_path)
        if not words:
            # No word timings: keep the channel's transcript as one block of speech.
            transcript = reader.optional_string(alternative.get("transcript"), f"{alternative_path}.transcript")
            if transcript:
                segments.append(
                    Segment(
                        location=alternative_path,
                        text=transcript,
                        speaker=_label(None, channel_index, multichannel),
                    )
                )
            continue
        for position, raw in enumerate(words):
            path = join_path(words_path, position)
            word = reader.object(raw, path)
            text = word.get("punctuated_word")
            if text is None:
                text = reader.field(word, "word", path)
            segments.append(
                Segment(
                    location=path,
                    text=reader.string(text, f"{path}.word"),
                    speaker=_label(
                        reader.label(word.get("speaker"), f"{path}.speaker"), channel_index, multichannel
                    ),
                    start=reader.seconds(word.get("start"), f"{path}.start"),
                    end=reader.seconds(word.get("end"), f"{path}.end"),
                    start_field="start",
                    end_field="end",
                )
            )
    return segments


def _by_time(segments: list[Segment]) -> list[Segment]:
    # Channels are transcribed independently; interleave them by start time (stable within a channel).
    return sorted(segments, key=lambda segment: segment.start if segment.start is not None else 0.0)


def _language(reader: JsonReader, channels: list[Any]) -> str | None:
    if not channels:
        return None
    channel = reader.object(channels[0], "results.channels[0]")
    language = channel.get("detected_language")
    return language if isinstance(language, str) and language else None


def parse(doc: SourceDocument) -> SourceCall:
    reader = doc.reader
    root = reader.object(doc.json(), "")
    results = reader.object(reader.field(root, "results", ""), "results")
    channels = reader.array(reader.field(results, "channels", "results"), "results.channels")
    reader.object(root.get("metadata", {}), "metadata")  # must be an object when present
    multichannel = len(channels) > 1

    utterances = results.get("utterances")
    grouping: Grouping
    if utterances:
        segments = _utterance_segments(reader, reader.array(utterances, "results.utterances"), multichannel)
        grouping = "keep"
    else:
        segments = _word_segments(reader, channels, multichannel)
        grouping = "words"
    if multichannel:
        segments = _by_time(segments)

    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "language": ("results.channels[0].detected_language", _language(reader, channels)),
            },
        ),
        grouping=grouping,
    )
