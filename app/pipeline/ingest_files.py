"""Ingest transcript files: each parsed and stored in its own transaction, so a bad file never blocks
the good ones. Used by the `ingest`, `process` and `demo` commands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.context import AppContext
from app.db.session import unit_of_work
from app.errors import DuplicateCallError, IngestError, PostcallError
from app.models import LlmMode
from app.pipeline.store import Actor, clean_external_id, store_transcript

# The extensions read from a folder, in any case (".JSON", ".Txt"); a file named on the command line is read
# whatever its name. The format is told by the content, never by the extension.
TRANSCRIPT_SUFFIXES = (".json", ".txt", ".vtt", ".srt")
# Compressed files are not read: the size limit bounds what is read from disk, not what it expands to.
_COMPRESSED_SUFFIXES = frozenset({".gz", ".zip", ".bz2", ".xz", ".zst", ".7z", ".tgz"})


@dataclass
class IngestResult:
    file: str
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
) -> list[IngestResult]:
    """Parse and store each file in its own transaction; a file's error is kept in its result."""
    from app.ingest import load_transcript

    results: list[IngestResult] = []
    # The file each external id came from in this run: two files with one id would be one call, the
    # second overwriting the first under --replace ("2024-05-01/recording.txt", "2024-05-02/recording.txt").
    taken: dict[str, Path] = {}
    for path in files:
        result = IngestResult(file=str(path))
        results.append(result)
        named_by_file = False
        try:
            parsed = load_transcript(
                path, fmt=fmt, agent_speaker=agent_speaker, max_bytes=ctx.settings.max_transcript_bytes,
                max_utterances=ctx.settings.max_utterances_per_call,
            )
            result.format = parsed.detected_format
            result.warnings = tuple(parsed.warnings)
            named_by_file = parsed.transcript.metadata.external_id is None
            external_id = clean_external_id(parsed.transcript.metadata.external_id or path.stem)
            first = taken.get(external_id)
            if first is not None and first.resolve() != path.resolve():
                raise DuplicateCallError(
                    f"external id {external_id!r} is also {first}'s in this run"
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
            taken.setdefault(external_id, path)  # stored: a later file of this run with its id is another call
            result.needs_enqueue = stored.needs_enqueue
        except IngestError as exc:
            result.error = str(exc)  # names the file (its source) already
        except DuplicateCallError as exc:
            # An id taken from a file name is the likeliest to name another call: say so before --replace
            # overwrites it.
            hint = (f" (the id is this file's name: if {path.name} is another call, give it an external_id in "
                    "the file or rename it; --replace would overwrite the stored call)") if named_by_file else ""
            result.error = f"{path}: {exc}{hint}"
        except PostcallError as exc:
            result.error = f"{path}: {exc}"  # a refusal to store: which file it was
        except OSError as exc:
            result.error = f"{path}: cannot read: {exc.strerror or exc}"
    return results
