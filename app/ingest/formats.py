"""The registry of transcript formats, in the order auto-detection tries them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.ingest.model import SourceCall, TimeUnit
from app.ingest.parsers import (
    assemblyai,
    aws_call_analytics,
    aws_transcribe,
    contact_lens,
    deepgram,
    native,
    openai_transcription,
    plaintext,
    srt,
    webvtt,
    whisper,
)
from app.ingest.source import SourceDocument


@dataclass(frozen=True, slots=True)
class TranscriptFormat:
    name: str
    description: str
    detect: Callable[[SourceDocument], bool]
    parse: Callable[[SourceDocument], SourceCall]
    # Whether the format is JSON (a JSON array of such calls, or NDJSON of them, is read call by call).
    reads_json: bool = True
    # The unit of the format's numeric time fields; None when times are written as stamps (00:01:02.500).
    # Told to the check for times in the other unit (app/ingest/assemble.py).
    time_unit: TimeUnit | None = "seconds"


# Detection order matters where marks overlap: every vendor JSON format is tried before the native
# one (whose only mark is an "utterances" key), Contact Lens before Call Analytics (both have
# "Transcript"), and plain text last (its mark, a "Speaker: text" first line, is the weakest).
FORMATS: tuple[TranscriptFormat, ...] = (
    TranscriptFormat(deepgram.FORMAT, deepgram.DESCRIPTION, deepgram.detect, deepgram.parse),
    TranscriptFormat(assemblyai.FORMAT, assemblyai.DESCRIPTION, assemblyai.detect, assemblyai.parse,
                     time_unit="milliseconds"),
    TranscriptFormat(aws_transcribe.FORMAT, aws_transcribe.DESCRIPTION, aws_transcribe.detect, aws_transcribe.parse),
    TranscriptFormat(contact_lens.FORMAT, contact_lens.DESCRIPTION, contact_lens.detect, contact_lens.parse,
                     time_unit="milliseconds"),
    TranscriptFormat(
        aws_call_analytics.FORMAT, aws_call_analytics.DESCRIPTION, aws_call_analytics.detect, aws_call_analytics.parse,
        time_unit="milliseconds",
    ),
    TranscriptFormat(
        openai_transcription.DIARIZED_FORMAT,
        openai_transcription.DIARIZED_DESCRIPTION,
        openai_transcription.detect_diarized,
        openai_transcription.parse_diarized,
    ),
    TranscriptFormat(
        openai_transcription.VERBOSE_FORMAT,
        openai_transcription.VERBOSE_DESCRIPTION,
        openai_transcription.detect_verbose,
        openai_transcription.parse_verbose,
    ),
    TranscriptFormat(whisper.FORMAT, whisper.DESCRIPTION, whisper.detect, whisper.parse),
    TranscriptFormat(native.FORMAT, native.DESCRIPTION, native.detect, native.parse),
    TranscriptFormat(webvtt.FORMAT, webvtt.DESCRIPTION, webvtt.detect, webvtt.parse, reads_json=False,
                     time_unit=None),
    TranscriptFormat(srt.FORMAT, srt.DESCRIPTION, srt.detect, srt.parse, reads_json=False, time_unit=None),
    TranscriptFormat(plaintext.FORMAT, plaintext.DESCRIPTION, plaintext.detect, plaintext.parse, reads_json=False,
                     time_unit=None),
)
FORMATS_BY_NAME: dict[str, TranscriptFormat] = {fmt.name: fmt for fmt in FORMATS}
SUPPORTED_FORMATS: tuple[str, ...] = tuple(fmt.name for fmt in FORMATS)

# What auto-detection looks for in each format, for the error that says why a file matched none.
DETECTION_MARKS: dict[str, str] = {
    deepgram.FORMAT: "'metadata' and 'results.channels'",
    assemblyai.FORMAT: "'audio_url' and 'status'",
    aws_transcribe.FORMAT: "'jobName' and 'results.transcripts'",
    contact_lens.FORMAT: "'Transcript' and 'CustomerMetadata' (or 'Version' and 'Participants')",
    aws_call_analytics.FORMAT: "'Transcript' and 'JobName' (or turns with 'ParticipantRole')",
    openai_transcription.DIARIZED_FORMAT: "'task', 'text' and segments with 'speaker'",
    openai_transcription.VERBOSE_FORMAT: "'task', 'text' and 'segments'",
    whisper.FORMAT: "'segments' without 'task'",
    native.FORMAT: "'utterances'",
}
