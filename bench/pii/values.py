"""Surface forms of personal data as contact-center transcripts carry them.

Each renderer turns one value (a card number, an SSN, ...) into a way a person says or a
recognizer writes it: grouped digits, digit words, "double"/"triple", fillers inside the number,
odd separators (no-break space, "/", zero-width space), unpunctuated lower-case ASR text.
"""

from __future__ import annotations

import random
import re
import string

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FILLERS = ("uh", "um", "and then", "hold on", "sorry", "let me see", "okay")


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        candidate = body + check
        if luhn_ok(candidate):
            return candidate
    raise AssertionError("unreachable")


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_number(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("34", 15), ("6011", 16), ("4", 13)])
    return luhn_complete(prefix, length, rng)


def not_luhn(rng: random.Random, length: int = 16) -> str:
    while True:
        digits = "".join(rng.choice(string.digits) for _ in range(length))
        if not luhn_ok(digits) and digits[0] != "0":
            return digits


def ssn(rng: random.Random) -> str:
    area = rng.randint(1, 899)
    while area == 666:
        area = rng.randint(1, 899)
    return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


def aba_routing(rng: random.Random) -> str:
    while True:
        digits = f"{rng.choice([0, 1, 2, 3])}{rng.randint(0, 9)}" + "".join(rng.choice(string.digits) for _ in range(7))
        weights = (3, 7, 1) * 3
        if sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0:
            return digits


def bank_account(rng: random.Random) -> str:
    return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(rng.randint(7, 13)))


def iban(rng: random.Random) -> str:
    country, bban_length = rng.choice([("GB", 18), ("DE", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country in {"GB", "NL"}:
        bank = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban = bank + "".join(rng.choice(string.digits) for _ in range(bban_length - 4))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(bban_length))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def us_phone(rng: random.Random) -> str:
    return (
        f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        + "".join(rng.choice(string.digits) for _ in range(4))
    )


NAMES = ("jane", "maria", "tom", "li", "ahmed", "sofia", "kevin", "olga", "raj", "emily", "carlos", "nina")
SURNAMES = ("roe", "smith", "garcia", "nguyen", "okafor", "müller", "kowalski", "chen", "patel", "brown")
DOMAINS = ("example.com", "gmail.com", "yahoo.com", "outlook.com", "mail.example.org", "company.co.uk")
STREETS = ("Main Street", "Oak Avenue", "Elm St", "Maple Drive", "Sunset Boulevard", "Pine Road", "Lake View Lane")
CITIES = ("Springfield", "Austin", "Portland", "Denver", "Columbus", "Madison")


def email(rng: random.Random) -> tuple[str, str, str]:
    """(local, domain-without-tld, tld)."""
    first, last = rng.choice(NAMES), rng.choice(SURNAMES)
    local = rng.choice(
        [f"{first}.{last}", f"{first}{last}", f"{first}_{last}", f"{first[0]}{last}{rng.randint(1, 99)}"]
    )
    domain = rng.choice(DOMAINS)
    name, _, tld = domain.rpartition(".")
    return local, name, tld


# --- renderings -------------------------------------------------------------------------------


def grouped(digits: str, sizes: list[int], sep: str) -> str:
    out, at = [], 0
    for size in sizes:
        out.append(digits[at : at + size])
        at += size
    if at < len(digits):
        out.append(digits[at:])
    return sep.join(part for part in out if part)


def card_groups(digits: str) -> list[int]:
    return [4, 6, 5] if len(digits) == 15 else [4, 4, 4, 4] if len(digits) == 16 else [4, 4, 5]


def words(digits: str, rng: random.Random, *, oh: bool = False, sep: str = " ") -> str:
    return sep.join("oh" if d == "0" and oh and rng.random() < 0.5 else DIGIT_WORDS[int(d)] for d in digits)


def words_with_doubles(digits: str) -> str:
    out: list[str] = []
    at = 0
    while at < len(digits):
        run = 1
        while at + run < len(digits) and digits[at + run] == digits[at] and run < 3:
            run += 1
        word = DIGIT_WORDS[int(digits[at])]
        out.append(word if run == 1 else ("double " if run == 2 else "triple ") + word)
        at += run
    return " ".join(out)


def mixed(digits: str, sizes: list[int], rng: random.Random) -> str:
    parts = grouped(digits, sizes, "|").split("|")
    return " ".join(words(p, rng) if i % 2 else p for i, p in enumerate(parts))


def with_filler(digits: str, sizes: list[int], rng: random.Random, *, spoken: bool = False) -> str:
    parts = grouped(digits, sizes, "|").split("|")
    at = rng.randint(1, len(parts) - 1)
    rendered = [words(p, rng) if spoken else p for p in parts]
    return " ".join(rendered[:at]) + f" {rng.choice(FILLERS)} " + " ".join(rendered[at:])


def asr(text: str) -> str:
    """What an unpunctuated, lower-case recognizer output of `text` looks like."""
    return re.sub(r"[,.?!;:](?=\s|$)", "", text.lower())
