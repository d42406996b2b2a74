"""The person or team an action item names as its owner: "the returns team", "Maria".

`owner` (agent / customer / other) says which side of the call owns an item; this finds the name when
the item or its evidence says one. Conservative on purpose: a team needs a team word ("the returns
team", "our billing department"), a person a capitalized name in a role that makes it the doer
("Maria will call you", "my colleague Maria", "Maria from billing"). Anything else is None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TEAM_WORDS = r"(?:team|department|dept|desk|unit|group|office|specialists?|crew)"
_TEAM = re.compile(
    r"\b(?:the|our|a|my|your)\s+((?:[A-Za-z][\w&'-]*\s+){1,3}?" + _TEAM_WORDS + r")\b",
    re.IGNORECASE,
)
# Words that make "the X team" no team name ("the whole team", "the same department").
_NOT_TEAM_NAMES = frozenset({
    "whole", "same", "other", "right", "wrong", "entire", "new", "next", "first", "appropriate", "relevant",
    "correct", "proper", "best", "local", "main", "this", "that",
})  # fmt: skip
_NAME = r"([A-Z][a-z]{1,20}(?:\s+[A-Z][a-z]{1,20})?)"
_PERSON = [
    re.compile(r"\b(?:my|our)\s+(?:colleague|supervisor|manager|coworker|co-worker|teammate|lead)\s+" + _NAME + r"\b"),
    re.compile(r"\b(?:a\s+)?(?:specialist|technician|agent|representative|rep|adjuster|nurse|doctor|dr\.?)\s+"
               r"(?:named|called)\s+" + _NAME + r"\b"),
    re.compile(r"\b" + _NAME + r"\s+(?:from|in|on)\s+(?:the\s+|our\s+)?[a-z]+(?:\s+" + _TEAM_WORDS + r")?\b"),
    re.compile(r"\b" + _NAME + r"\s+(?:will|is going to|is gonna|'ll|should|can)\s+\w+"),
]
# Capitalized words that are not names: sentence starts, pronouns, days, months, company words.
_NOT_NAMES = frozenset({
    "I", "We", "You", "They", "He", "She", "It", "This", "That", "These", "Those", "There", "Then", "Someone",
    "Somebody", "Nobody", "Everyone", "Anyone", "Customer", "Agent", "Caller", "Monday", "Tuesday", "Wednesday",
    "Thursday", "Friday", "Saturday", "Sunday", "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December", "Today", "Tomorrow", "Yes", "No",
    "Okay", "Ok", "So", "And", "But", "Also", "Our", "Your", "My", "The", "A", "An", "If", "When", "Once",
    "Please", "Thanks", "Thank", "Support", "Billing", "Sales", "Customer Service", "Team", "What", "Who",
    "Which", "Where", "Why", "How", "Just", "Well", "Now", "Sure", "Great", "Alright", "Hello", "Hi",
})  # fmt: skip
MAX_OWNER_NAME_CHARS = 200


def find_owner_name(texts: Iterable[str]) -> str | None:
    """The first team or person named as the doer in `texts` (the item's text, then its evidence)."""
    for text in texts:
        name = _team(text) or _person(text)
        if name:
            return name[:MAX_OWNER_NAME_CHARS]
    return None


def _team(text: str) -> str | None:
    for match in _TEAM.finditer(text):
        words = match.group(1).split()
        if words[0].lower() in _NOT_TEAM_NAMES or len(words) < 2:
            continue
        return "the " + " ".join(words).lower()
    return None


def _person(text: str) -> str | None:
    for pattern in _PERSON:
        for match in pattern.finditer(text):
            name = match.group(1)
            first = name.split()[0]
            if first in _NOT_NAMES or name in _NOT_NAMES:
                continue
            return name
    return None
