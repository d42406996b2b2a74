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

from pydantic import Field, TypeAdapter

from app.ingest.model import Grouping, Segment, SourceCall
from app.ingest.parsers._segments import by_start_time
from app.ingest.source import SourceDocument, call_metadata, describe, join_path
from app.ingest.vendor_json import Label, OptionalNumber, Time, VendorModel, read, read_part

FORMAT = "deepgram"
DESCRIPTION = "Deepgram pre-recorded JSON (utterances, or diarized/multichannel words)"


class Word(VendorModel):
    # Either spelling is the word's text (the punctuated one when present); checked where it is used.
    word: object = None
    punctuated_word: object = None
    start: Time = None
    end: Time = None
    speaker: Label = None


class Alternative(VendorModel):
    transcript: str | None = None
    # Read only when the response has no utterances (see `_word_segments`).
    words: list[object] = Field(default_factory=list)


class Channel(VendorModel):
    alternatives: list[Alternative] = Field(default_factory=list)
    detected_language: Any = None  # any value is tolerated; only a string is a language


class Utterance(VendorModel):
    transcript: str
    start: Time = None
    end: Time = None
    channel: OptionalNumber = None
    speaker: Label = None


class Results(VendorModel):
    channels: list[Channel]
    utterances: list[Utterance] | None = None


_WORD = TypeAdapter(Word)


class Response(VendorModel):
    results: Results
    metadata: dict[str, object] = Field(default_factory=dict)


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


def _utterance_segments(utterances: list[Utterance], multichannel: bool) -> list[list[Segment]]:
    """The utterances of each channel, one list per channel (the streams `by_start_time` interleaves); a
    single-channel response is one list, in the response's order."""
    streams: dict[int, list[Segment]] = {}
    for position, utterance in enumerate(utterances):
        channel = int(utterance.channel or 0)
        streams.setdefault(channel if multichannel else 0, []).append(
            Segment(
                location=f"results.utterances[{position}]",
                text=utterance.transcript,
                speaker=_label(utterance.speaker, channel, multichannel),
                start=utterance.start,
                end=utterance.end,
                start_field="start",
                end_field="end",
            )
        )
    return list(streams.values())


def _word_segments(doc: SourceDocument, channels: list[Channel], multichannel: bool) -> list[list[Segment]]:
    """The words of each channel, one list per channel (the streams `by_start_time` interleaves)."""
    streams: list[list[Segment]] = []
    for channel_index, channel in enumerate(channels):
        if not channel.alternatives:
            continue
        segments: list[Segment] = []
        streams.append(segments)
        alternative = channel.alternatives[0]
        alternative_path = f"results.channels[{channel_index}].alternatives[0]"
        if not alternative.words:
            # No word timings: keep the channel's transcript as one block of speech.
            if alternative.transcript:
                segments.append(
                    Segment(
                        location=alternative_path,
                        text=alternative.transcript,
                        speaker=_label(None, channel_index, multichannel),
                    )
                )
            continue
        for position, raw in enumerate(alternative.words):
            path = join_path(f"{alternative_path}.words", position)
            word = read_part(doc, _WORD, raw, (path,))
            text = word.punctuated_word if word.punctuated_word is not None else word.word
            if text is None and "word" not in word.model_fields_set:
                raise doc.error(f"{path}.word", "required field is missing")
            if not isinstance(text, str):
                raise doc.error(f"{path}.word", f"expected a string, got {describe(text)}")
            segments.append(
                Segment(
                    location=path,
                    text=text,
                    speaker=_label(word.speaker, channel_index, multichannel),
                    start=word.start,
                    end=word.end,
                    start_field="start",
                    end_field="end",
                )
            )
    return streams


def parse(doc: SourceDocument) -> SourceCall:
    response = read(doc, Response)
    channels = response.results.channels
    multichannel = len(channels) > 1

    utterances = response.results.utterances
    grouping: Grouping
    if utterances:
        streams = _utterance_segments(utterances, multichannel)
        grouping = "keep"
    else:
        streams = _word_segments(doc, channels, multichannel)
        grouping = "words"
    # One channel (or none) is one stream, kept in the order the response gives it.
    segments = by_start_time(streams) if multichannel else [segment for stream in streams for segment in stream]
    language = channels[0].detected_language if channels else None

    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "language": (
                    "results.channels[0].detected_language",
                    language if isinstance(language, str) and language else None,
                ),
            },
        ),
        grouping=grouping,
    )
