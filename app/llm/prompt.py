"""Versioned prompt files (prompts/<version>/) and the compact transcript rendering.

Static instructions come first (system message) so provider-side prompt caching applies;
the transcript is wrapped as untrusted data in the user message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from app.errors import ConfigError
from app.schemas.transcript import Utterance


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: Template
    repair: Template

    @classmethod
    def load(cls, prompts_dir: Path, version: str) -> PromptTemplate:
        folder = prompts_dir / version
        try:
            return cls(
                version=version,
                system=(folder / "system.txt").read_text(encoding="utf-8").strip(),
                user=Template((folder / "user.txt").read_text(encoding="utf-8")),
                repair=Template((folder / "repair.txt").read_text(encoding="utf-8")),
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"prompt version {version!r} is incomplete or missing in {folder}: {exc}") from exc

    def render_user(self, utterances: Sequence[Utterance]) -> str:
        return self.user.substitute(transcript=render_transcript(utterances))

    def render_repair(self, problems: str) -> str:
        return self.repair.substitute(problems=problems)


def render_transcript(utterances: Sequence[Utterance]) -> str:
    """One line per utterance: `[index] role (speaker): text`, newlines inside text flattened."""
    lines = []
    for u in utterances:
        # Flattened so neither a text nor a speaker label can forge extra "[n] role" lines.
        text = " ".join(u.text.split())
        speaker = " ".join(u.speaker.split()).replace("(", "[").replace(")", "]")
        lines.append(f"[{u.index}] {u.role.value} ({speaker}): {text}")
    return "\n".join(lines)
