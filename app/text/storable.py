"""Text either database can store: no U+0000 (PostgreSQL refuses it, SQLite cuts text at it) and no lone
UTF-16 surrogate (a JSON escape such as \\ud800 decodes to one; no UTF-8 encoding holds it, so the driver
fails mid-write). One check for every way text comes in: transcript files, JSON bodies, form fields and
query parameters."""

from __future__ import annotations

import unicodedata

from app.errors import NUL_CHARACTER_PROBLEM, InvalidInputError

SURROGATE_PROBLEM = "contains a lone surrogate escape (such as \\ud800), which is not a character"
INVALID_UTF8_PROBLEM = "is not valid UTF-8 (percent-encoded bytes that encode no character)"


def unstorable_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (completing "the field ..."), or None when it can."""
    if "\x00" in value:
        return NUL_CHARACTER_PROBLEM
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_PROBLEM
    return None


def printable(text: str) -> str:
    """`text` made storable and readable as a message: NUL (which no database stores: a webhook attempt's
    record holding one failed, leaving the attempt in flight for ever) and every other character that does
    not print, each shown as its escape."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


# What shows nothing on its own: spaces and line breaks, control and format characters (zero-width
# space, joiners, direction marks), combining and enclosing marks.
_BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})


def is_blank(value: str) -> bool:
    """Whether `value` shows nothing: empty, or only characters of `_BLANK_CATEGORIES` ("\u200b\u200b"
    is as empty as "  ")."""
    if not value.strip():
        return True
    if value.isascii():
        return False
    return all(unicodedata.category(character) in _BLANK_CATEGORIES for character in value)


def require_printable(value: str, what: str, purpose: str) -> None:
    """Refuse (InvalidInputError) a name or id that people read and type back (a call's external id, a
    user's name, agent id or team) when it holds a line break, a tab or another character that does not
    print: control characters (ESC starts the escape sequences that drive a terminal) and format ones
    (U+202E shows the text after it reversed, U+200B shows nothing). They broke every line that showed the
    value, or made it read as another. `what` names it ("the external id"), `purpose` says what it is for."""
    if not value.isprintable() and not all(character.isprintable() or character in _WRITTEN_IN_NAMES
                                           or unicodedata.category(character) == "Zs" for character in value):
        raise InvalidInputError(f"{what} {value!r} holds a line break, a tab or another control character (or a "
                                f"format character, which does not print); {purpose}")


# What does not "print" in Python's sense but is written in people's names: the joiners inside words of
# Persian and Indic scripts; and the spaces of category Zs ("Dana\xa0Smith", "山田\u3000太郎").
_WRITTEN_IN_NAMES = frozenset({"\u200c", "\u200d"})
