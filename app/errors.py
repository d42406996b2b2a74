"""One exception root for Postcall.

Whether a failure is worth retrying is a property of its *type*: the worker retries
`TransientError` with backoff and fails a call at once on `PermanentError`. Nothing
decides that by matching message strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.schemas.usage import Usage


class PostcallError(Exception):
    """Root of every error Postcall raises on purpose."""


class TransientError(PostcallError):
    """Worth retrying later: rate limits, timeouts, 5xx, a database or broker blip."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SuspectCallError(PostcallError):
    """The call's earlier tries died with their worker (it is still `processing` from one of them, a few
    times over): it is processed on its own, in a process of its own, so that if it is what kills workers
    it takes nothing else down with it (`app/worker/isolated.py`)."""


class PermanentError(PostcallError):
    """Retrying cannot help: bad input, bad credentials, unknown model, invalid output after re-asks."""


class ConfigError(PermanentError):
    """The configuration is missing or contradictory."""


class IngestError(PermanentError):
    """A transcript file could not be turned into a canonical transcript.

    `source` names the file, `location` the field path or line, `problem` what is wrong.
    """

    def __init__(self, source: str, location: str | None, problem: str) -> None:
        self.source = source
        self.location = location
        self.problem = problem
        where = f"{source}: {location}" if location else source
        super().__init__(f"{where}: {problem}")


class DuplicateCallError(PermanentError):
    """The same external id was ingested before with different content (use --replace)."""


class InvalidInputError(PermanentError):
    """A request parameter Postcall refuses at the boundary (a NUL character, a value out of range)."""


# One rule for every backend: PostgreSQL cannot store U+0000 in text and SQLite could, so it is refused
# everywhere (transcripts, parameters, edits) rather than stored on one backend and failing on the other.
NUL_CHARACTER_PROBLEM = "contains a NUL character (U+0000), which Postcall does not store"


class DecidedCallError(PermanentError):
    """The call was approved or rejected: its transcript and metadata stay as decided until it is reopened."""


class NotFoundError(PostcallError):
    """A record does not exist, or is not visible to the caller (the two are not told apart)."""


class ProviderError(PostcallError):
    """Base for failures reported by an extraction provider."""


class ProviderTransientError(ProviderError, TransientError):
    """429, 5xx, timeout or connection failure talking to the model server.

    `usage` is what the failed try had already spent before the failure (earlier windows of a long
    call, a first answer before its re-ask, the extraction before a repair round): the model server
    billed it, so the pipeline records it on an `interrupted` run before the try is retried.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, usage: Usage | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.usage = usage

    def add_spent(self, usage: Usage) -> None:
        """Count `usage`, spent earlier in the same try, as part of what this failure cost."""
        self.usage = usage if self.usage is None else usage + self.usage


class ProviderPermanentError(ProviderError, PermanentError):
    """401/403/404/400 from the model server: a bad key, an unknown model, a rejected request."""


class ExtractionInvalidError(ProviderError, PermanentError):
    """The model's answer stayed unusable (malformed, off-schema, refused, cut off) after the re-ask.

    `raw` keeps the last raw response for debugging and `usage` what the failed attempts cost;
    both are stored on the failed run.
    """

    def __init__(self, message: str, *, raw: str | None = None, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.usage = usage


class AppendOnlyError(PostcallError):
    """Something tried to change or remove an audit event (review_events is append-only)."""
