"""Write the labeled PII set: bench/pii/dev.jsonl and bench/pii/heldout.jsonl.

The sentences and near-misses below are written by hand; the values inside them (card numbers,
SSNs, ...) are drawn with a fixed seed and rendered in the ways callers say them (values.py).
The held-out sentences use their own phrasings and renderings and were written before the
detectors were tuned; they are scored only for the final report (docs/benchmarks.md).

    .venv/bin/python -m bench.pii.generate     # rewrites both files (deterministic)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pii import values as v

HERE = Path(__file__).resolve().parent
NBSP, ZWSP = "\u00a0", "\u200b"

Render = Callable[[random.Random], str]


@dataclass
class Item:
    text: str
    pii: list[dict[str, str]] = field(default_factory=list)
    previous: str | None = None

    def as_json(self, ident: str) -> dict[str, Any]:
        for span in self.pii:
            assert span["text"] in self.text, (span, self.text)
        row: dict[str, Any] = {"id": ident, "text": self.text, "pii": self.pii}
        if self.previous is not None:
            row["previous"] = self.previous
        return row


def one(template: str, kind: str, value: str, *, previous: str | None = None, lower: bool = False) -> Item:
    text = template.format(value)
    if lower:
        text, value = v.asr(text), v.asr(value)
    return Item(text, [{"kind": kind, "text": value}], previous)


# --- renderers per kind ------------------------------------------------------------------------


def card_renderers(split: str) -> list[Callable[[random.Random], str]]:
    def spaced(r: random.Random) -> str:
        d = v.card_number(r)
        return v.grouped(d, v.card_groups(d), " ")

    def dashed(r: random.Random) -> str:
        d = v.card_number(r)
        return v.grouped(d, v.card_groups(d), "-")

    def plain(r: random.Random) -> str:
        return v.card_number(r)

    def nbsp(r: random.Random) -> str:
        d = v.card_number(r)
        return v.grouped(d, v.card_groups(d), NBSP)

    def slash(r: random.Random) -> str:
        d = v.card_number(r)
        return v.grouped(d, v.card_groups(d), "/")

    def zero_width(r: random.Random) -> str:
        d = v.card_number(r)
        return v.grouped(d, [1] * len(d), ZWSP) if split == "heldout" else v.grouped(d, v.card_groups(d), ZWSP)

    def spoken(r: random.Random) -> str:
        d = v.card_number(r)
        return ", ".join(v.words(p, r, oh=split == "heldout") for p in v.grouped(d, v.card_groups(d), "|").split("|"))

    def doubles(r: random.Random) -> str:
        d = v.card_number(r)
        return v.words_with_doubles(d)

    def mixed(r: random.Random) -> str:
        d = v.card_number(r)
        return v.mixed(d, v.card_groups(d), r)

    def filler(r: random.Random) -> str:
        d = v.card_number(r)
        return v.with_filler(d, v.card_groups(d), r, spoken=split == "heldout" and r.random() < 0.5)

    def dots(r: random.Random) -> str:
        d = v.card_number(r)
        return v.grouped(d, v.card_groups(d), ".")

    return [spaced, dashed, plain, nbsp, slash, zero_width, spoken, doubles, mixed, filler, dots]


def ssn_renderers(split: str) -> list[Render]:
    def dashed(r: random.Random) -> str:
        s = v.ssn(r)
        return f"{s[:3]}-{s[3:5]}-{s[5:]}"

    def spaced(r: random.Random) -> str:
        s = v.ssn(r)
        return f"{s[:3]} {s[3:5]} {s[5:]}"

    def bare(r: random.Random) -> str:
        return v.ssn(r)

    def dash_word(r: random.Random) -> str:
        s = v.ssn(r)
        return f"{s[:3]} dash {s[3:5]} dash {s[5:]}"

    def spoken_dash(r: random.Random) -> str:
        s = v.ssn(r)
        return " dash ".join(v.words(p, r) for p in (s[:3], s[3:5], s[5:]))

    def spoken(r: random.Random) -> str:
        s = v.ssn(r)
        return v.words(s, r, oh=split == "heldout")

    def doubles(r: random.Random) -> str:
        return v.words_with_doubles(v.ssn(r))

    return [dashed, spaced, bare, dash_word, spoken_dash, spoken, doubles]


def account_renderers(split: str) -> list[tuple[str, Render]]:
    """(which cue family, renderer): routing numbers and IBANs need their own sentences."""

    def account(r: random.Random) -> str:
        return v.bank_account(r)

    def account_spoken(r: random.Random) -> str:
        return v.words(v.bank_account(r), r)

    def account_grouped(r: random.Random) -> str:
        d = v.bank_account(r)
        return v.grouped(d, [4, 4, 4, 4], " " if split == "dev" else "-")

    def routing(r: random.Random) -> str:
        return v.aba_routing(r)

    def routing_spoken(r: random.Random) -> str:
        return v.words(v.aba_routing(r), r)

    def iban_grouped(r: random.Random) -> str:
        i = v.iban(r)
        return v.grouped(i, [4] * 9, " ")

    def iban_plain(r: random.Random) -> str:
        return v.iban(r)

    return [
        ("account", account),
        ("account", account_spoken),
        ("account", account_grouped),
        ("routing", routing),
        ("routing", routing_spoken),
        ("iban", iban_grouped),
        ("iban", iban_plain),
    ]


def email_renderers(split: str) -> list[Render]:
    def written(r: random.Random) -> str:
        local, name, tld = v.email(r)
        return f"{local}@{name}.{tld}"

    def spoken(r: random.Random) -> str:
        local, name, tld = v.email(r)
        local = local.replace(".", " dot ").replace("_", " underscore ")
        return f"{local} at {name.replace('.', ' dot ')} dot {tld}"

    def half(r: random.Random) -> str:
        local, name, tld = v.email(r)
        return f"{local} at {name}.{tld}"

    def at_sign_spaced(r: random.Random) -> str:
        local, name, tld = v.email(r)
        return (
            f"{local} @ {name}.{tld}" if split == "dev" else f"{local.replace('.', ' dot ')} at sign {name} dot {tld}"
        )

    return [written, spoken, half, at_sign_spaced]


def phone_renderers(split: str) -> list[Render]:
    def parens(r: random.Random) -> str:
        p = v.us_phone(r)
        return f"({p[:3]}) {p[3:6]}-{p[6:]}"

    def dashed(r: random.Random) -> str:
        p = v.us_phone(r)
        return f"{p[:3]}-{p[3:6]}-{p[6:]}"

    def dotted(r: random.Random) -> str:
        p = v.us_phone(r)
        return f"{p[:3]}.{p[3:6]}.{p[6:]}"

    def e164(r: random.Random) -> str:
        return "+1" + v.us_phone(r)

    def uk(r: random.Random) -> str:
        return r.choice(["+44 20 7946 0", "+44 7700 900", "+44 (0)20 7946 0"]) + f"{r.randint(100, 999)}"

    def germany(r: random.Random) -> str:
        return f"+49 30 {r.randint(1000000, 9999999)}" if split == "dev" else f"0049 89 {r.randint(100000, 999999)}"

    def france(r: random.Random) -> str:
        return "+33 6 " + " ".join(f"{r.randint(10, 99)}" for _ in range(4))

    def spoken(r: random.Random) -> str:
        p = v.us_phone(r)
        return ", ".join(v.words(x, r, oh=True) for x in (p[:3], p[3:6], p[6:]))

    def doubles(r: random.Random) -> str:
        p = v.us_phone(r)
        return v.words_with_doubles(p)

    def mixed(r: random.Random) -> str:
        p = v.us_phone(r)
        return f"{p[:3]} {v.words(p[3:6], r)} {p[6:]}"

    def one_prefix(r: random.Random) -> str:
        p = v.us_phone(r)
        return f"1-{p[:3]}-{p[3:6]}-{p[6:]}" if split == "dev" else f"1 {p[:3]} {p[3:6]} {p[6:]}"

    return [parens, dashed, dotted, e164, uk, germany, france, spoken, doubles, mixed, one_prefix]


def dob_renderers(split: str) -> list[Render]:
    months = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")

    def slashed(r: random.Random) -> str:
        return f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/{r.randint(1940, 2004)}"

    def long(r: random.Random) -> str:
        return f"{r.choice(months)} {r.randint(1, 28)}, {r.randint(1940, 2004)}"

    def ordinal(r: random.Random) -> str:
        return f"the {r.randint(4, 20)}th of {r.choice(months)} {r.randint(1940, 2004)}"

    return [slashed, long, ordinal]


# --- templates ---------------------------------------------------------------------------------

DEV = {
    "card": [
        "my card number is {}",
        "Sure, the card is {}, it's a visa.",
        "okay so it's {} and the expiry is next year",
        "Can you charge {} please?",
        "The long number on the front is {}.",
        "use the one ending, well the whole thing is {}",
    ],
    "ssn": [
        "my social security number is {}",
        "SSN {} for the verification",
        "the social is {}",
        "For the tax form, my social security is {}.",
    ],
    "account": [
        "my account number is {}",
        "The checking account number is {}.",
        "savings account {} please",
    ],
    "routing": ["the routing number is {}", "Routing {} and the bank is in Ohio."],
    "iban": ["my IBAN is {}", "Please send it to IBAN {}."],
    "email": ["my email is {}", "you can email me at {}", "Send the receipt to {} please.", "it's {}"],
    "phone": [
        "my phone number is {}",
        "you can call me back on {}",
        "Best number to reach me is {}.",
        "my cell is {}",
    ],
    "dob": ["my date of birth is {}", "I was born on {}", "DOB {}"],
}

HELDOUT = {
    "card": [
        "yeah the digits are {} on the visa",
        "Alright, reading it off: {}.",
        "I'd like to pay with {}",
        "new card, {}, mastercard",
        "is it {} that you have on file?",
    ],
    "ssn": [
        "last question, your social? it's {}",
        "my ss number is {}",
        "I think the social security number they have is {}",
    ],
    "account": ["deposit it into account number {}", "my bank account is {}", "acct number {} at first national"],
    "routing": ["ABA routing {}", "and the bank routing number, {}"],
    "iban": ["the IBAN on my statement is {}", "iban {}"],
    "email": ["email address is {}", "shoot me an email at {}", "I go by {} on email", "{} is my email"],
    "phone": [
        "the best number is {}",
        "I'm at {} all day",
        "please phone me at {}",
        "My mobile, {}.",
        "ring my office line {}",
    ],
    "dob": ["birthday is {}", "date of birth, {}", "I was born {}"],
}

# Near-misses: numbers and words that look like personal data but are call content.
NEAR_MISSES_DEV = [
    "Your order number is 4111 1111 1111 1112.",
    "order 123456789 shipped yesterday",
    "The total comes to $1,250.00 with tax.",
    "I'll call you back at 3:45 pm tomorrow.",
    "Ticket 48213 is escalated to tier 2.",
    "we open at nine thirty and close at five",
    "it took two or three days",
    "the tracking number is 1Z999AA10123456784",
    "your balance is 2,450 dollars and 17 cents",
    "refund of 30 dollars within 5 business days",
    "the confirmation code is 7731",
    "case number 2023-1104-77",
    "the invoice from 03/14/2025 is paid",
    "we charged you twice on March 3rd, 2025",
    "I have been a customer for 12 years",
    "the model is X200 version 2.3.1",
    "press one for billing two for support",
    "the router serial is 5500 0000 0000 0001",
    "my zip code is 94107",
    "that's about 1500 minutes per month",
    "flight 1234 leaves at 10:15",
    "the plan is 79.99 a month for 24 months",
    "reference 123-456 on the letter",
    "I called on the 4th and the 9th",
    "the modem light blinks four or five times",
    "the payment of 1,000 dollars posted on 12/01",
    "we credited 45.50 to your account",
    "your account is in good standing",
    "call us any time at our main line",
    "the last four of the card are 1111",
    "room 402 on the fourth floor",
    "the year 1999 was a long time ago",
    "one two three testing",
    "I need this by five pm on the twenty third",
    "that is the 100 dollar bundle",
    "it costs nine ninety nine",
    "there were 3 calls on 3 different days",
    "my order number is 55012345",
    "the account has 3 lines on it",
    "order 9876543210 was delivered",
]

NEAR_MISSES_HELDOUT = [
    "order number 5500 0000 0000 0005 was cancelled",
    "the total was 2,399.97 dollars",
    "we'll ring you at half past four",
    "confirmation number 88213455",
    "it's the 2 for 1 deal",
    "your appointment is 04/22/2026 at 10 am",
    "the device id is 4417 1234 5678 9112",
    "we refunded 129 dollars on the 15th",
    "please allow seven to ten business days",
    "the part number is 12-345-678",
    "that's four hundred and twelve dollars",
    "channel 702 is in the sports package",
    "i waited for 45 minutes on hold",
    "the promo code is SAVE2025",
    "invoice 2024-00031 is overdue",
    "my policy number is AB1234567",
    "two thousand twenty four was the year we switched",
    "the 3 year contract ends in june",
    "call back between 9 and 5",
    "you have 150 gigabytes left this month",
    "the order total is 1 2 3 dollars",
    "we'll send it by the 30th",
    "version 10.4.2 fixes that",
    "your account was opened in 2015",
    "i paid 59.99 on 11/02",
    "i'm calling about order 771234",
    "the number on the box is 0123456789",
    "the speed is 300 megabits",
    "it's extension 4412",
    "the charge of 7.50 appeared twice",
]

# Hand-written items with cross-turn context, CVV, expiry and cued addresses.
SPECIAL_DEV: list[Item] = [
    Item("0000 0004", [{"kind": "card", "text": "0000 0004"}], previous="it's 5500 0000"),
    Item("1111 1111", [{"kind": "card", "text": "1111 1111"}], previous="okay the card is 4111 1111"),
    Item("the security code is 123", [{"kind": "cvv", "text": "123"}]),
    Item("CVV 4521", [{"kind": "cvv", "text": "4521"}]),
    Item("the three digits on the back are 7 0 9", [{"kind": "cvv", "text": "7 0 9"}]),
    Item("expiration date 04/27", [{"kind": "expiry", "text": "04/27"}]),
    Item("it expires 11/2028", [{"kind": "expiry", "text": "11/2028"}]),
    Item("exp oh four twenty seven", [{"kind": "expiry", "text": "oh four twenty seven"}]),
    Item("my address is 123 Main Street, Springfield", [{"kind": "address", "text": "123 Main Street"}]),
    Item("I live at 42 Oak Avenue apartment 5", [{"kind": "address", "text": "42 Oak Avenue"}]),
    Item("ship it to 7 Elm St please", [{"kind": "address", "text": "7 Elm St"}]),
    Item("jane dot roe at example dot com", [{"kind": "email", "text": "jane dot roe at example dot com"}]),
    Item("4111 one one one one 1111 1111", [{"kind": "card", "text": "4111 one one one one 1111 1111"}]),
    Item(
        "four one double one, one one one one, one one one one, one one one one",
        [{"kind": "card", "text": "four one double one, one one one one, one one one one, one one one one"}],
    ),
    Item("my social is 123 dash 45 dash 6789", [{"kind": "ssn", "text": "123 dash 45 dash 6789"}]),
]

SPECIAL_HELDOUT: list[Item] = [
    Item(
        "four four four four",
        [{"kind": "card", "text": "four four four four"}],
        previous="the card is four one one one one one one one one one one one",
    ),
    Item("and the rest is 0000 0000 0004", [{"kind": "card", "text": "0000 0000 0004"}], previous="card 5500"),
    Item("security code four five six", [{"kind": "cvv", "text": "four five six"}]),
    Item("the cvc is 088", [{"kind": "cvv", "text": "088"}]),
    Item("expiry is 09 slash 29", [{"kind": "expiry", "text": "09 slash 29"}]),
    Item("valid thru 12/26", [{"kind": "expiry", "text": "12/26"}]),
    Item("my address is 5500 Lake View Lane, Austin", [{"kind": "address", "text": "5500 Lake View Lane"}]),
    Item("send it to my home address 19 Pine Road", [{"kind": "address", "text": "19 Pine Road"}]),
    Item("i live at 221 sunset boulevard", [{"kind": "address", "text": "221 sunset boulevard"}]),
    Item(
        "my email's maria underscore chen at gmail dot com",
        [{"kind": "email", "text": "maria underscore chen at gmail dot com"}],
    ),
    Item(
        "social is one two three dash four five dash six seven eight nine",
        [{"kind": "ssn", "text": "one two three dash four five dash six seven eight nine"}],
    ),
    Item("card 4111\u00a01111\u00a01111\u00a01111", [{"kind": "card", "text": "4111\u00a01111\u00a01111\u00a01111"}]),
    Item(
        "five five zero zero, oh oh oh oh, um, oh oh oh oh, oh oh oh four",
        [{"kind": "card", "text": "five five zero zero, oh oh oh oh, um, oh oh oh oh, oh oh oh four"}],
    ),
]


def build(
    split: str, templates: dict[str, list[str]], near: list[str], special: list[Item], seed: int, per: int
) -> list[Item]:
    rng = random.Random(seed)
    items: list[Item] = []
    renderers: dict[str, list[Render]] = {
        "card": card_renderers(split),
        "ssn": ssn_renderers(split),
        "email": email_renderers(split),
        "phone": phone_renderers(split),
        "dob": dob_renderers(split),
    }
    for family, renderer in account_renderers(split):
        renderers.setdefault(family, []).append(renderer)
    for family, family_templates in templates.items():
        kind = "account" if family in {"routing", "iban"} else family
        for index, renderer in enumerate(renderers[family]):
            for repeat in range(per if family in {"card", "phone", "ssn", "email"} else max(1, per - 1)):
                template = family_templates[(index + repeat) % len(family_templates)]
                lower = rng.random() < 0.3
                items.append(one(template, kind, renderer(rng), lower=lower))
    items.extend(Item(text) for text in near)
    items.extend(special)
    return items


def write(split: str, items: list[Item]) -> Path:
    path = HERE / f"{split}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for number, item in enumerate(items):
            out.write(json.dumps(item.as_json(f"{split}-{number:04d}"), ensure_ascii=False) + "\n")
    return path


def main() -> None:
    for split, templates, near, special, seed in (
        ("dev", DEV, NEAR_MISSES_DEV, SPECIAL_DEV, 1301),
        ("heldout", HELDOUT, NEAR_MISSES_HELDOUT, SPECIAL_HELDOUT, 2602),
    ):
        items = build(split, templates, near, special, seed, per=3)
        path = write(split, items)
        print(f"{path.name}: {len(items)} utterances")


if __name__ == "__main__":
    main()
