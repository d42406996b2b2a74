"""Ingest transcript files: each parsed and stored in its own transaction, so a bad file never blocks
the good ones. Used by the `ingest`, `process` and `demo` commands."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.context import AppContext
from app.db.session import unit_of_work
from app.errors import DuplicateCallError, IngestError, PostcallError
from app.models import LlmMode
from app.pipeline.store import Actor, clean_external_id, store_transcript

if TYPE_CHECKING:
    from app.ingest.model import ParsedTranscript

# The extensions read from a folder, in any case (".JSON", ".Txt"); a file named on the command line is read
# whatever its name. The format is told by the content, never by the extension.
TRANSCRIPT_SUFFIXES = (".json", ".txt", ".vtt", ".srt")
# Compressed files are not read: the size limit bounds what is read from disk, not what it expands to.
_COMPRESSED_SUFFIXES = frozenset({".gz", ".zip", ".bz2", ".xz", ".zst", ".7z", ".tgz"})


@dataclass
class IngestResult:
    file: str
    # Where in the file the call is, for a file of several calls: "[3]" (a JSON array's element), "line 4"
    # (NDJSON); None when the file is one call.
    position: str | None = None
    # The format the file (or call) was read as, detected or asked for: set on an error too, when one was.
    format: str | None = None
    call_id: str | None = None
    external_id: str | None = None
    status: str | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    # The worker must be told (`StoredCall.needs_enqueue`); not part of the JSON output.
    needs_enqueue: bool = False

    def as_json(self) -> dict[str, Any]:
        shown = {**asdict(self), "warnings": list(self.warnings)}
        del shown["needs_enqueue"]
        return shown


@dataclass(frozen=True, slots=True)
class SkippedPath:
    """An entry of a folder that is not read, and why."""

    path: Path
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"file": str(self.path), "reason": self.reason}


@dataclass(slots=True)
class FoundFiles:
    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)


def _not_a_transcript(path: Path) -> str | None:
    """Why a file found in a folder is not read, or None when it is read."""
    suffix = path.suffix.lower()
    if path.name.lower() == "readme.md":
        return "a README, not a transcript"
    if suffix in TRANSCRIPT_SUFFIXES:
        return None
    read = ", ".join(TRANSCRIPT_SUFFIXES)
    if suffix in _COMPRESSED_SUFFIXES:
        return f"compressed ({suffix}): decompress it first; only {read} files are read from a folder"
    if not suffix:
        return f"no extension; only {read} files are read from a folder (name the file itself to read it)"
    return f"extension {suffix} is not read; only {read} files are read from a folder (name the file itself to read it)"


def _walk(folder: Path, found: FoundFiles) -> None:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        found.skipped.append(SkippedPath(folder, f"cannot read the folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            # Nothing inside a dot-folder (.git, .cache) either: one line for the folder, not one per file.
            what = "not looked into" if entry.is_dir() else "not read"
            found.skipped.append(SkippedPath(entry, f"hidden (its name starts with a dot): {what}"))
        elif entry.is_symlink() and entry.is_dir():
            found.skipped.append(SkippedPath(entry, "a link to a folder: not followed (name the folder itself)"))
        elif entry.is_dir():
            _walk(entry, found)
        elif entry.is_file() or not entry.exists():
            # A transcript-named entry that is not a file (a dangling link) is kept: reading it fails with a
            # message, where leaving it out said nothing.
            reason = _not_a_transcript(entry)
            if reason is None:
                found.files.append(entry)
            else:
                found.skipped.append(SkippedPath(entry, reason))
        else:
            found.skipped.append(SkippedPath(entry, "not a regular file (a pipe, socket or device)"))


def find_transcript_files(paths: Sequence[Path]) -> FoundFiles:
    """Files as given, and the transcript files inside directories (sorted, recursive, not into dot-folders
    nor through links to folders), with every entry of a directory that is not read and why."""
    found = FoundFiles()
    for path in paths:
        if path.is_dir():
            inside = FoundFiles()
            _walk(path, inside)
            found.files.extend(sorted(inside.files))
            found.skipped.extend(sorted(inside.skipped, key=lambda skipped: skipped.path))
        else:
            found.files.append(path)
    return found


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """The files `find_transcript_files` reads."""
    return find_transcript_files(paths).files


# Hex digits of a call's content hash in the id of a call without one in a file of several ("calls-3f9a1c07b2").
CONTENT_ID_DIGITS = 10


def _id_from_file_name(path: Path, position: str | None, parsed: ParsedTranscript) -> str:
    """The external id of a call that carries none: its file's name, and for a call of a multi-call file a
    short hash of what it says ("calls-3f9a1c07b2": speakers, times and text of its utterances). Not its place
    in the file: inserting a call or a blank line would shift every later id, and `--replace` would then
    overwrite other conversations' stored calls. The same call keeps its id wherever it moves in the file and
    whatever metadata is corrected; a call whose words are edited is a new call."""
    if position is None:
        return path.stem
    said = [[u.speaker, u.start, u.end, u.text] for u in parsed.transcript.utterances]
    digest = hashlib.sha256(json.dumps(said, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    return f"{path.stem}-{digest[:CONTENT_ID_DIGITS]}"


def _call_name(path: Path, position: str | None) -> str:
    """A call's name in messages: its file, and its place in a file of several ("calls.json[3]")."""
    if position is None:
        return str(path)
    return f"{path}{position}" if position.startswith("[") else f"{path} {position}"


def _ingest_error(error: IngestError, result: IngestResult) -> None:
    from app.ingest import FormatParseError

    if isinstance(error, FormatParseError):
        result.format = error.format
    result.error = str(error)  # names the file (its source) already, and the call's place in it


def ingest_files(
    ctx: AppContext,
    files: Sequence[Path],
    *,
    tenant: str,
    actor: Actor,
    fmt: str = "auto",
    agent_speaker: str | None = None,
    replace: bool = False,
    llm_mode: LlmMode = LlmMode.sync,
    encoding: str | None = None,
) -> list[IngestResult]:
    """Parse and store each call in its own transaction; a call's error is kept in its result. A file of
    several calls (a JSON array of calls, NDJSON) gives one result per call, each named by its position.
    `encoding` is the files' declared character set (`--encoding`); None: UTF-8."""
    from app.ingest import load_calls

    results: list[IngestResult] = []
    # The file each external id came from in this run: two files with one id would be one call, the
    # second overwriting the first under --replace ("2024-05-01/recording.txt", "2024-05-02/recording.txt").
    taken: dict[str, tuple[Path, str | None]] = {}
    for path in files:
        try:
            calls = load_calls(
                path, fmt=fmt, agent_speaker=agent_speaker, max_bytes=ctx.settings.max_transcript_bytes,
                max_utterances=ctx.settings.max_utterances_per_call, encoding=encoding,
            )
        except IngestError as exc:
            result = IngestResult(file=str(path))
            _ingest_error(exc, result)
            results.append(result)
            continue
        for call in calls:
            result = IngestResult(file=str(path), position=call.position)
            results.append(result)
            if call.error is not None:
                _ingest_error(call.error, result)
                continue
            assert call.parsed is not None
            _store_call(ctx, call.parsed, path, call.position, result, taken, tenant=tenant, actor=actor,
                        replace=replace, llm_mode=llm_mode)
    return results


def _store_call(
    ctx: AppContext,
    parsed: ParsedTranscript,
    path: Path,
    position: str | None,
    result: IngestResult,
    taken: dict[str, tuple[Path, str | None]],
    *,
    tenant: str,
    actor: Actor,
    replace: bool,
    llm_mode: LlmMode,
) -> None:
    """Store one parsed call in its own transaction, its outcome or its error in `result`."""
    where = _call_name(path, position)
    named_by_file = False
    try:
        result.format = parsed.detected_format
        result.warnings = tuple(parsed.warnings)
        named_by_file = parsed.transcript.metadata.external_id is None
        external_id = clean_external_id(
            parsed.transcript.metadata.external_id or _id_from_file_name(path, position, parsed))
        first = taken.get(external_id)
        if first is not None and first[0].resolve() == path.resolve() and first[1] != position:
            raise DuplicateCallError(
                f"external id {external_id!r} is also that of {_call_name(*first)}, in the same file"
                + (" (both made from the file's name and what the call says: the two calls say the same)"
                   if named_by_file else "")
                + ": two calls of one file would be one call; give each call its own external_id")
        if first is not None and first[0].resolve() != path.resolve():
            raise DuplicateCallError(
                f"external id {external_id!r} is also {_call_name(*first)}'s in this run"
                + (" (both from their file names)" if named_by_file else "")
                + ": two files would be one call; give each file its own external_id, or rename one")
        with unit_of_work(ctx.session_factory) as session:
            stored = store_transcript(
                session,
                parsed.transcript,
                tenant=tenant,
                external_id=external_id,
                source_name=path.name,
                replace=replace,
                actor=actor,
                redact=ctx.settings.store_redacted,
                llm_mode=llm_mode,
            )
        result.call_id, result.external_id, result.status = stored.call_id, stored.external_id, stored.status
        taken.setdefault(external_id, (path, position))  # stored: a later call of this run with its id is another
        result.needs_enqueue = stored.needs_enqueue
    except IngestError as exc:
        _ingest_error(exc, result)
    except DuplicateCallError as exc:
        # An id taken from a file name is the likeliest to name another call: say so before --replace
        # overwrites it.
        hint = ""
        if named_by_file and position is None:
            hint = (f" (the id is this file's name: if {path.name} is another call, give it an external_id in "
                    "the file or rename it; --replace would overwrite the stored call)")
        result.error = f"{where}: {exc}{hint}"
    except PostcallError as exc:
        result.error = f"{where}: {exc}"  # a refusal to store: which file it was
    except OSError as exc:
        result.error = f"{where}: cannot read: {exc.strerror or exc}"
