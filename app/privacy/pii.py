"""Finding personal data in transcript text: written, spoken and recognizer-mangled forms.

Numbers are read as a stream of digit tokens ("4111", "four", "double one", "oh") joined by the
gaps people and recognizers put between them: spaces of any kind (no-break, narrow), invisible format
characters (zero-width space, soft hyphen), dashes of any kind ("-", en and em dash, minus sign), ".",
"/", ",", parentheses, "_", "*", "~", "|", the words "dash" and "slash", and fillers ("uh", "and then",
"hold on"). (":", ";" and "+" join groups only in a card's shape, or an SSN's or an account number's after
its cue.) Each stream is then classified:

- a run of 13-19 digits passing the Luhn check is a card number, wherever it appears; next to a
  card cue ("card", "visa", "cc"), 12-19 digits are one even when recognition broke the checksum;
- 9 digits shaped 3-2-4 (or read with "dash") are an SSN; 9 digits next to an SSN cue too;
- 9 digits passing the ABA checksum next to "routing" are a routing number; 6-17 digits next to
  an account cue are an account number; an IBAN passes the mod-97 check;
- a full national number (North American 10 digits, "+" or "00" international) is a phone number
  anywhere; 7-15 digits only next to a phone cue ("call me", "my cell");
- 3-4 digits next to "security code"/"CVV" are a CVV; what follows "expires" is an expiry date;
- 6-16 digits, or 5-20 letters and digits with at least 3 digits ("C01X00T47", "AB 12 34 56 C"), right
  after a named identity document ("passport number is", "driver's licence", "national insurance", "ID
  card"), or opening the answer to a question that names one, are its number; never a date.

Cues that say a number is call content ("order", "ticket", "case", "invoice"...) win over the
cue-free rules, so an order number is not taken for a phone. Cards are never excused by such a cue:
a Luhn-valid number is redacted even when someone calls it an order number.

`detect_turns` also joins the end of one turn to the start of the next: a card read out in two
halves ("5500 0000" / "0000 0004"), or group by group over up to four turns, is found in each, and in
the turns that read a group back ("4111 1111, okay, and?"). A cue in the previous turn counts for a value
early in a turn, and so does one two turns back when the turn between only acknowledges ("Sure.").
"""

from __future__ import annotations

import re
import string
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from itertools import islice

import phonenumbers

from app.text.lexicon import MONTHS, SPOKEN_DIGITS, alternation


def _ignoring_case(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


class PiiKind(StrEnum):
    card = "CARD"
    ssn = "SSN"
    account = "ACCOUNT"
    # A government identity document's number: passport, driver's licence, national ID or insurance number.
    id_document = "ID"
    dob = "DOB"
    email = "EMAIL"
    phone = "PHONE"
    cvv = "CVV"
    expiry = "EXPIRY"
    address = "ADDRESS"
    name = "NAME"


# When two detections overlap, the kind listed first wins.
PRIORITY = (
    PiiKind.email,
    PiiKind.card,
    PiiKind.ssn,
    PiiKind.account,
    PiiKind.id_document,
    PiiKind.phone,
    PiiKind.dob,
    PiiKind.cvv,
    PiiKind.expiry,
    PiiKind.address,
    PiiKind.name,
)

# Payment card numbers (ISO/IEC 7812) have 13 to 19 digits; a cue makes 12 enough (one digit lost to ASR).
CARD_MIN_DIGITS = 13
CARD_CUED_MIN_DIGITS = 12
CARD_MAX_DIGITS = 19
SSN_DIGITS = 9
ROUTING_DIGITS = 9
ACCOUNT_MIN_DIGITS = 6
# An identity document's number, next to its cue: passports (UK, US: 9; others 6-9 characters), driving
# licences (up to 15 digits in US states), national insurance and ID numbers.
ID_MIN_DIGITS = 6
ID_MAX_DIGITS = 16
# A number written with letters ("C01X00T47", "AB 12 34 56 C"): this many letters and digits in all, at
# least ID_WRITTEN_MIN_DIGITS of them digits.
ID_WRITTEN_CHARS = (5, 20)
ID_WRITTEN_MIN_DIGITS = 3
ACCOUNT_MAX_DIGITS = 17
# E.164 numbers have at most 15 digits; shorter than 7 is an extension or an amount, not a phone.
PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15
NANP_DIGITS = 10
INTERNATIONAL_MIN_DIGITS = 8
CVV_DIGITS = (3, 4)
# How far before a value (in characters) a cue such as "social security" or "born" counts.
CONTEXT_WINDOW_CHARS = 60
# A cue that says "this is call content" counts only this close.
CONTENT_CUE_WINDOW_CHARS = 30
# Agents ask, customers answer ("Can you confirm your date of birth?" / "Sure, it's March 4th,
# 1985."): a value early in a turn also sees this much of the end of the previous turn as context.
PREVIOUS_TURN_CONTEXT_CHARS = 120
# A value answering a question asked two turns back opens its turn: "March 4th, 1985.", "Sure, it's 03/04/1985".
ANSWER_OPENING_CHARS = 20
# A number split across turns: the first half ends this close to the end of its turn, the second
# starts this close to the beginning of the next.
SPLIT_TAIL_CHARS = 4
SPLIT_HEAD_CHARS = 40
SPLIT_MIN_DIGITS = 4
SPLIT_MAX_TURNS = 4
# A turn this short without a number ("okay", "mhm", "go on") does not end a number read across turns.
BACKCHANNEL_CHARS = 12
# A turn that only acknowledges (`_ACKNOWLEDGEMENT`: "Sure.", "Mm-hmm, go ahead.") is at most this long.
ACKNOWLEDGEMENT_MAX_CHARS = 40
# A turn that repeats a part of a number read across turns ("4111 1111, okay, and?": the agent reading the
# group back) says at most this much besides the number.
READ_BACK_OTHER_CHARS = 40
# A turn that repeats the part before is a read-back or the next part: a chain is read at most this many ways.
MAX_CHAIN_READINGS = 8
# The longest gap (filler words and separators) allowed inside one number.
MAX_GAP_CHARS = 16

# The digit counts `_classify_rest` can name: a CVV is the shortest, a cued card the longest.
_CLASSIFIED_MIN_DIGITS = min(CVV_DIGITS[0], SSN_DIGITS, ROUTING_DIGITS, CARD_CUED_MIN_DIGITS, ACCOUNT_MIN_DIGITS,
                             PHONE_MIN_DIGITS)
_CLASSIFIED_MAX_DIGITS = max(CVV_DIGITS[1], SSN_DIGITS, ROUTING_DIGITS, CARD_MAX_DIGITS, ACCOUNT_MAX_DIGITS,
                             PHONE_MAX_DIGITS)
_ANY_DIGIT = re.compile(r"\d")


def has_written_digit(text: str) -> bool:
    """`text` has a digit written as one, in any script (as `\\d` matches); spoken digits ("four") are
    `number_tokens`'. Written dates, IBANs and street numbers need one; most turns and claims have none."""
    return _ANY_DIGIT.search(text) is not None


_DIGIT_WORD = alternation(SPOKEN_DIGITS)
# Matched against ASCII-lower-cased text (same length, so the same offsets); the lookahead lets the
# engine skip every position that cannot start a digit or a digit word quickly.
_NUMBER_TOKEN = re.compile(
    rf"(?<![a-z\d])(?=[\dzotfsend])(?:(?P<mult>double|triple)\s+)?"
    rf"(?:(?P<digits>\d+)(?![a-z\d])|(?P<word>{_DIGIT_WORD})(?P<hundred>\s+hundred)?\b)"
)
# In UTF-8, A-Z are bytes of their own (every other character is encoded with bytes >= 0x80): lower-casing
# these bytes lower-cases A-Z only. `surrogatepass` keeps a lone surrogate (from broken JSON) as it was.
_ASCII_LOWER_BYTES = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
# Every dash a keyboard, a word processor or a recognizer writes where "-" was meant (each dash punctuation
# character of Unicode, category Pd: hyphen, non-breaking hyphen, figure, en and em dash, small and fullwidth
# hyphen-minus, ...) and the minus signs: "4111–1111–1111–1111" is the number "4111-1111-1111-1111" is. For
# character classes ("-" escaped).
_DASHES = (
    "\\-\u058a\u05be\u1400\u1806\u2010-\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d\u301c\u3030\u30a0"
    "\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"
    "\u2212\u2796\u02d7"  # minus sign, heavy minus sign, modifier letter minus sign
)
# Characters that show nothing (Unicode's format characters, category Cf: soft hyphen, zero-width space and
# joiners, direction marks, word joiner, byte order mark, tags, ...): between two digit groups they hide
# that the groups are one number, and nobody reads them as a break. For character classes.
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# Other characters written between digit groups: ".", "/", ",", parentheses, and "_", "*", "~", "|" (typed
# into chats and forms), as written and in their fullwidth forms. Not ":", ";" or "+": as gaps they would
# join times ("10:30 and 11:45"), ratios and sums into one long number; they join a card's groups only, or
# an SSN's or an account number's after its cue (`_odd_separator_numbers`).
_GROUP_SEPARATORS = r"./,()_*~|\uff0e\uff0f\uff0c\uff08\uff09\uff3f\uff0a\uff5e\uff5c"
_GAP = _ignoring_case(
    rf"(?:[\s{_INVISIBLE}{_DASHES}{_GROUP_SEPARATORS}]|\b(?:dash|hyphen|slash|uh|um|umm|er|erm|ah|hmm|and then|then|"
    r"and|hold on|sorry|let me see|okay|ok|so|like)\b)*",
)
# Groups of digits with the same ":", ";" or "+" between each two: a card's or an SSN's shape, no time's
# ("10:30:45" has groups of two). One of these characters on either side goes on to more groups only with a
# digit beyond it ("123:45:123:45", "1+800+555+1234" read from its 800): between a word and the number
# ("card:4111:1111:1111:1111", "cc:4111+1111+...") or after it ("...:1111; thanks") it is punctuation, as a
# space is.
_ODD_SEPARATED_GROUPS = re.compile(
    r"(?<!\w)(?<!\d[:;+])\d{3,6}(?P<separator>[:;+])\d{2,6}(?:(?P=separator)\d{1,6}){1,3}(?!\w)(?![:;+]\d)"
)
_DASH_GAP = _ignoring_case(rf"[{_DASHES}]|\bdash\b|\bhyphen\b")
# Between the groups of a written SSN: space, something invisible (a soft hyphen), or one dash.
_SSN_GROUP_GAP = _ignoring_case(rf"[\s{_INVISIBLE}]*(?:[{_DASHES}]|dash)?[\s{_INVISIBLE}]*")
_CURRENCY_BEFORE = re.compile(r"[$€£¥]\s*$")
# How much text beside a number says it is an amount or a quantity ("$ 120", "120   dollars").
_NEXT_TO_CHARS = 32
_UNIT_AFTER = _ignoring_case(
    r"^\s*(?:dollars?|bucks|cents?|euros?|pounds?|pesos?|rupees?|yen|yuan|francs?|usd|eur|gbp|cad|aud|percent|%|"
    r"minutes?|hours?|days?|gigs?|gigabytes?|megabits?|mb|gb)\b",
)

# What follows "cc" when it is the email's carbon copy, not a credit card: "cc'd", "cc-ed", "cc'ing", or whom
# it copies, an address ("cc: jane@example.com"), a pronoun ("cc me on the email") or a name ("cc Jane"; a
# capitalized word other than one of a card's: "CC Number"). Bounded, as it is tried after every "cc".
_CARBON_COPY_AFTER = (
    r"['\u2019-](?:d|ed|ing)\b|[\s:]{0,4}(?:[\w.+-]{1,64}@|(?:me|him|her|us|them|you|everyone|everybody|all)\b|"
    r"(?!(?:number|no|num|nr|is|on|ending|digits|details|info|holder)\b)(?-i:[A-Z][a-z]+\b))"
)
# "cc" and "c.c." (credit card) as words of their own: not inside one ("accent", "success", "bcc"), nor a dot
# away from one ("a.c.c."); a written "c.c." takes its last dot, so the carbon copy is looked for after it.
_CARD_CUE = _ignoring_case(
    r"\b(?:card|visa|master ?card|amex|american express|discover|debit|credit)\b"
    rf"|(?:\bcc\b|(?<![\w.])c\.\s?c(?:\.|\b(?!\.)))(?!{_CARBON_COPY_AFTER})"
)
_SSN_CUE = _ignoring_case(r"\b(?:social security|social|ssn|s\.?\s?s\.?\s?n\.?|ss number|tax id|taxpayer|itin)\b")
_ROUTING_CUE = _ignoring_case(r"\b(?:routing|aba|transit number|sort code)\b")
_ACCOUNT_CUE = _ignoring_case(r"\b(?:account|acct|a/c|checking|savings|bank|iban|member number|member id)\b")
_PHONE_CUE = _ignoring_case(
    r"\b(?:phone|cell|mobile|call|calling|reach|text|ring|landline|line|fax|contact|callback|"
    r"(?:my|best|the|your|a|good|home|work|office) number)\b",
)
_CVV_CUE = _ignoring_case(
    r"\b(?:cvv2?|cvc2?|cid|security code|verification code|card code|digits on the back|code on the back)\b",
)
# Words that say the number after them is call content, not a person's data.
_CONTENT_CUE = _ignoring_case(
    r"\b(?:order|ticket|case|confirmation|reference|ref|invoice|tracking|serial|part|policy|model|version|"
    r"device|promo|flight|item|sku|claim|transaction|receipt|channel|room|extension|ext|zip|postal)\b",
)
_DOB_CUE = _ignoring_case(r"\b(?:date of birth|birth ?date|birthday|d\.?o\.?b\.?|born(?: on)?)\b")
# Every match of each cue below holds one of its words (lower-cased): see `_cue_in`.
_DOB_CUE_WORDS = ("birth", "born", "dob", "d.ob", "do.b", "d.o.b")
# Named documents only: a bare "ID number" is as often an order's or a customer's (call content).
_ID_CUE = _ignoring_case(
    r"\b(?:passport|(?:driver'?s?|driving) ?licen[cs]e|dl (?:number|no)|"
    r"national insurance|ni number|nino|national id(?:entity)?(?: card| number)?|(?:state )?id card|"
    r"identity card|identity document|green card|alien (?:registration )?number|residence permit)\b"
)
_ID_CUE_WORDS = ("passport", "licen", "dl ", "national", "ni number", "nino", "id card", "identity", "green card",
                 "alien", "residence permit")
# A document number as written: groups of letters and digits joined by a space or a hyphen, each group with
# a digit or a short capital prefix or suffix ("AB 12 34 56 C", "D1234-56789-01234").
_ID_GROUP = r"(?:[A-Z]{1,3}|[A-Za-z]*\d[A-Za-z0-9]*)"
_ID_WRITTEN = re.compile(rf"(?<![\w{_DASHES}]){_ID_GROUP}(?:[ {_DASHES}]{_ID_GROUP})*(?![\w{_DASHES}])")
# An amount with its cents ("1,500.00", "1250.50"): one decimal point, two digits after it, never a document
# number. Groups with more points ("12.34.56.78") are no amount: a document number written in pairs.
_DECIMAL_AMOUNT = re.compile(r"[^.]*\.\d{2}")
# A date with a two-digit year, its groups joined by dots or by dashes (the same one twice: "12.03.85",
# "3-12-85", "12–03–85"): a date's, never a document number's (a four-digit year `_date_like` reads in any
# grouping, and a date with slashes by its "/").
_SHORT_DATE = re.compile(rf"(?P<first>\d{{1,2}})(?P<separator>[.{_DASHES}])(?P<second>\d{{1,2}})(?P=separator)\d{{2}}")
# Days and months: a short date is day and month in either order ("12.03.85", US "03.12.85").
_DAYS_IN_MONTH_MAX = 31
_MONTHS_IN_YEAR = 12
# A day of the month written with its ordinal ("3rd"): a date's, never a document number's.
_ORDINAL_GROUP = re.compile(r"\b\d{1,2}(?:st|nd|rd|th)\b", re.IGNORECASE)
# What may stand between a document's name and its number ("passport number is", "licence, uh, it's",
# "ID card no."), or open the turn that answers a question naming the document ("Sure, it's", "It is"):
# anything else there ("passport on March 3rd 2024", "ID card and paid 250000") says the number is another's.
_ID_FILLER = re.compile(
    r"[\s,:;#.'\"()?!-]*(?:(?:number|no|num|nr|is|it's|its|it|s|was|be|should|would|will|reads|says|shows|the|my|"
    r"your|on|of|card|id|document|that|that's|this|here|there|please|yes|yep|yup|yeah|sure|thing|certainly|of|"
    r"course|okay|ok|so|well|uh|um|er|erm|hm|hmm|ah|right|alright|sorry|i|i'm|i've|i'll|have|got|think|ready|let|"
    r"me|check|see|find|look|just|a|one|moment|sec|second|minute|hold|on|wait|and|then|now|again)"
    r"\b[\s,:;#.'\"()?!-]*){0,14}",
    re.IGNORECASE,
)
# A question about money in the turn before ("How much did you pay for the passport?"): the answer's number
# is an amount, not the document's.
_MONEY_QUESTION = _ignoring_case(r"\b(?:how much|price|cost|costs|pay|paid|fee|fees|charge|charged|refund)\b")
# A turn that says nothing of its own, only that the other side may go on ("Sure.", "Mm-hmm, go ahead.", "Okay,
# one moment."): the question before it is still the one the next turn answers, and a number read across turns
# goes on after it. Words only, no cue and no content ("No.", "Why?" and "I don't have it" are answers).
_ACKNOWLEDGEMENT = _ignoring_case(
    r"[\s,.!?;:-]*(?:\b(?:yes|yeah|yep|yup|ya|sure|sure thing|okay|ok|alright|all right|right|correct|exactly|mhm+|"
    r"m+-?hm+|uh-huh|uh huh|hmm+|uh|um|ah|oh|got it|go on|go ahead|ahead|please|thanks|thank you|great|perfect|"
    r"good|fine|and|next|continue|of course|certainly|absolutely|no problem|hold on|wait|"
    r"(?:one|just a) (?:moment|sec|second|minute)|let me (?:see|check|look|find it|get it|grab it))\b"
    r"[\s,.!?;:-]*){1,6}"
)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TLD = r"(?:com|net|org|edu|gov|io|co|uk|us|de|fr|es|it|nl|ca|au|info|biz|me)"
# The spoken "at" and the domain after it: the tail of every spoken email.
_SPOKEN_AT_DOMAIN = (
    r"(?:at(?:\s+sign)?|@)\s+"
    rf"[A-Za-z0-9-]+(?:(?:\s+dot\s+|\.)[A-Za-z0-9-]+)*(?:\s+dot\s+|\.){_TLD}\b"
)
_SPOKEN_EMAIL = _ignoring_case(
    r"(?<![\w.@])[A-Za-z0-9][\w+-]*(?:(?:\s+(?:dot|underscore|dash|hyphen|plus)\s+|[._])[\w+-]+)*"
    rf"\s+{_SPOKEN_AT_DOMAIN}",
)
# A part of every match of `_EMAIL` (from its "@" on) and of `_SPOKEN_EMAIL` (from the last space before
# its "at" on): a text without it holds no email. Searching for these is far cheaper than the full
# patterns, which try a local part at every word ("@handles" and "look at the bill" are common, emails
# are not).
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9-]+\.[A-Za-z0-9-]")
_SPOKEN_EMAIL_DOMAIN = _ignoring_case(rf"\s{_SPOKEN_AT_DOMAIN}")
_EMAIL_NOT_LOCAL = frozenset({"look", "me", "us", "you", "him", "her", "them", "it", "that", "this", "is", "was", "be"})

_MONTH = rf"{alternation(MONTHS)}\.?"
_DATE = _ignoring_case(
    r"\b(?:"
    rf"\d{{1,2}}[/.{_DASHES}]\d{{1,2}}[/.{_DASHES}](?:\d{{4}}|\d{{2}})"  # 03/14/1985, 14.03.85, 03–14–1985
    rf"|\d{{4}}[{_DASHES}]\d{{1,2}}[{_DASHES}]\d{{1,2}}"  # 1985-03-14
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"  # March 14th, 1985
    rf"|(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}"  # (the) 14th of March 1985
    r")\b",
)
_EXPIRY_CUE = _ignoring_case(r"\b(?:expir\w*|exp|valid (?:thru|through|until)|good (?:thru|through))\b\.?")
_EXPIRY_CUE_WORDS = ("exp", "valid ", "good th")
_TENS = r"(?:twenty|thirty)"
_SPOKEN_MONTH = r"(?:(?:oh|zero)\s+)?(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_EXPIRY_VALUE = _ignoring_case(
    r"(?:\s|,|:|is|date|on|the|card|it|it's|of)*?"
    rf"(?P<value>\d{{1,2}}\s*(?:/|[{_DASHES}]|slash)\s*(?:\d{{4}}|\d{{2}})"
    rf"|{_SPOKEN_MONTH}\s+(?:(?:slash|of)\s+)?(?:{_TENS}(?:[\s-]{_DIGIT_WORD})?|\d{{2,4}})"
    rf"|{_MONTH}\s+(?:\d{{2,4}}|{_TENS}(?:[\s-]{_DIGIT_WORD})?))\b",
)
_STREET_SUFFIX = (
    r"(?:street|st|avenue|ave|road|rd|drive|dr|lane|ln|boulevard|blvd|way|court|ct|place|pl|terrace|circle|"
    r"parkway|pkwy|highway|hwy|trail|square|sq)"
)
# The address cue is its words (as a pattern), so the two cannot drift apart.
_ADDRESS_CUE_WORDS = (
    "address", "live", "living", "lives", "ship", "shipped", "send", "sent", "mail", "deliver", "delivered",
    "located", "reside", "moved",
)
_ADDRESS_CUE = _ignoring_case(rf"\b(?:{'|'.join(_ADDRESS_CUE_WORDS)})\b")
_STREET = _ignoring_case(
    rf"(?<![\w$])\d{{1,6}}[A-Za-z]?\s+(?:[A-Za-z][\w'.-]*\s+){{0,3}}{_STREET_SUFFIX}\b\.?",
)
_IBAN = _ignoring_case(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}")
# Two letters before two digits: how every `_IBAN` match begins. Written from the digits on, the search
# skips ahead to the next digit quickly (the engine tries a pattern that begins with a letter or a lookaround
# at every position): a text without it has no IBAN.
_IBAN_START = _ignoring_case(r"\d{2}(?<=[A-Z]{2}\d{2})")
IBAN_MIN_CHARS = 15
# ISO 13616 registry: the IBAN length of each country (an IBAN is checked at exactly its length).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip
# Bank codes put a few letters into some BBANs (GB "WEST", NL "ABNA"); more than this is words.
IBAN_MAX_LETTERS = 8
# A written group longer than this inside a card would be an order or account number (408-1929729-...).
CARD_MAX_WRITTEN_GROUP = 6
_NAME_CUE = _ignoring_case(r"\b(?:my name is|my name's|name is|this is|i'm|i am|it's|speaking with)\s+")
_NAME_WORD = _ignoring_case(r"[A-Za-z][a-zA-Z'-]+")
_NOT_NAMES = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "not",
        "just",
        "really",
        "very",
        "sure",
        "fine",
        "good",
        "great",
        "calling",
        "from",
        "with",
        "here",
        "there",
        "about",
        "going",
        "trying",
        "looking",
        "wondering",
        "having",
        "able",
        "still",
        "also",
        "only",
        "what",
        "that",
        "this",
        "it",
        "is",
        "was",
        "be",
        "been",
        "sorry",
        "okay",
        "ok",
        "yes",
        "no",
        "yeah",
        "hi",
        "hello",
        "thanks",
        "thank",
        "please",
        "regarding",
        "concerning",
        "your",
        "my",
        "our",
        "their",
        "his",
        "her",
        "customer",
        "support",
        "service",
        "billing",
        "agent",
        "team",
        "department",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ]
)


@dataclass(frozen=True)
class Detection:
    kind: PiiKind
    start: int
    end: int
    value: str  # normalized identity: same value, same placeholder
    # Whether the span's last digits are the value's: not so for an earlier part of a card read across turns
    # (or a turn repeating one), whose masking must not keep "the last four digits" it happens to end with.
    ends_value: bool = True

    def overlaps(self, other: Detection) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    digits: str
    spoken: bool


@dataclass(frozen=True)
class _Number:
    """Digit tokens joined by gaps; `gaps[i]` is the text between `tokens[i]` and `tokens[i + 1]`."""

    tokens: tuple[_Token, ...]
    gaps: tuple[str, ...]

    @property
    def start(self) -> int:
        return self.tokens[0].start

    @property
    def end(self) -> int:
        return self.tokens[-1].end

    @property
    def digits(self) -> str:
        return "".join(t.digits for t in self.tokens)

    def part(self, first: int, last: int) -> _Number:
        return _Number(self.tokens[first : last + 1], self.gaps[first:last])


@dataclass(frozen=True)
class _Text:
    """An utterance's text and the tail of the turn before it (for cue words only)."""

    text: str
    lead_in: str = ""
    # How near the turn's beginning a value sees `lead_in`'s cues (None: as near as the cue's own window).
    lead_in_reach: int | None = None

    def cue_distance(self, start: int, cue: re.Pattern[str], window: int = CONTEXT_WINDOW_CHARS) -> int | None:
        """Characters between the nearest cue before `start` and `start`; the previous turn counts
        when `start` is near the beginning of this one."""
        nearest: int | None = None
        for match in cue.finditer(self.text, max(0, start - window), start):
            nearest = start - match.end()
        if nearest is not None:
            return nearest
        reach = window if self.lead_in_reach is None else min(window, self.lead_in_reach)
        if start <= reach and cue.search(self.lead_in) is not None:
            return window
        return None

    def has_cue(self, start: int, cue: re.Pattern[str], window: int = CONTEXT_WINDOW_CHARS) -> bool:
        return self.cue_distance(start, cue, window) is not None

    # Every number of a document's length asks whether a document is named (`_id_cued`): the answer is the
    # turn's, found once. Looking through the whole turn again for each number made a turn of 250,000
    # characters with 10,000 phone numbers take 15 s.
    @cached_property
    def names_document(self) -> bool:
        """Whether a document's cue (`_ID_CUE`) is anywhere in the text."""
        return _cue_in(self.text, _ID_CUE, _ID_CUE_WORDS)

    @cached_property
    def lead_in_names_document(self) -> bool:
        """Whether a document's cue (`_ID_CUE`) is anywhere in the lead-in."""
        return _cue_in(self.lead_in, _ID_CUE, _ID_CUE_WORDS)

    @cached_property
    def first_written_digit(self) -> int:
        """Where the text's first written digit (`\\d`) is; the text's length if it has none."""
        match = _ANY_DIGIT.search(self.text)
        return len(self.text) if match is None else match.start()


def _cue_in(text: str, cue: re.Pattern[str], words: tuple[str, ...]) -> bool:
    """Whether `cue` (a case-insensitive pattern every match of which holds one of `words`, lower-cased)
    is found in `text`. On ASCII text, ignoring case is lower-casing, so a text that holds none of the words
    has no match; looking for a few words is much cheaper than the pattern's search at every position."""
    if text.isascii():
        lowered = text.lower()
        for word in words:
            if word in lowered:
                break
        else:
            return False
    return cue.search(text) is not None


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def aba_valid(digits: str) -> bool:
    """The ABA routing number checksum (weights 3, 7, 1)."""
    weights = (3, 7, 1) * 3
    return len(digits) == ROUTING_DIGITS and sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def iban_valid(compact: str) -> bool:
    """ISO 13616: the IBAN moved four characters around, read in base 36, is 1 modulo 97."""
    if not IBAN_MIN_CHARS <= len(compact) <= 34 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(_compatible(c), 36)) for c in rearranged)) % 97 == 1
    except ValueError:  # a letter outside A-Z that case-insensitive matching took for one ("\u0131")
        return False


def _compatible(char: str) -> str:
    """A letter's compatibility form: the Kelvin sign and the long s, which case-insensitive patterns take
    for K and S, are read as those letters (so such a number is still found); a digit of any script stays."""
    return char if char.isascii() else unicodedata.normalize("NFKC", char)


def detect(text: str, lead_in: str = "", *, names: bool = False, resolve: bool = True) -> list[Detection]:
    """Non-overlapping detections in `text`, in order. `lead_in` is the previous turn (for cues).
    `resolve=False`: every detection, overlapping ones included (for masking, as `detect_turns`)."""
    found = _detect(_Text(text, lead_in[-PREVIOUS_TURN_CONTEXT_CHARS:]), _numbers(text), names=names)
    return resolve_overlaps(found) if resolve else list(found)


@dataclass(frozen=True)
class TurnScan:
    """One pass of the detectors over a call's turns (`scan_turns`): each turn's own detections, overlapping
    ones included, and the card numbers read out across two consecutive turns. Redaction resolves it
    (`resolved`), masking takes every detection (`unresolved`): a call whose transcript is redacted for the
    model and masked for storage is scanned once."""

    texts: tuple[str, ...]
    names: bool
    own: tuple[tuple[Detection, ...], ...]
    cross_turn: tuple[tuple[int, Detection], ...]

    def scanned(self, texts: Sequence[str], *, names: bool) -> bool:
        """Whether this scan is of `texts` (the same strings, in order) with the same detectors."""
        return self.names == names and len(self.texts) == len(texts) and all(
            mine is theirs or mine == theirs for mine, theirs in zip(self.texts, texts, strict=True))

    def unresolved(self) -> list[list[Detection]]:
        """Every detection of each turn, overlapping ones included: for masking, which masks the union of
        what each detection masks. Resolving first would let a card read across turns (priority: card)
        displace an SSN that ends the earlier turn, and mask only the SSN's last four digits, the ones the
        SSN's own masking keeps: the whole SSN shown between the two views."""
        found = [list(detections) for detections in self.own]
        for turn, detection in self.cross_turn:
            found[turn].append(detection)
        return found

    def resolved(self) -> list[list[Detection]]:
        """Non-overlapping detections of each turn, in order (`resolve_overlaps`): for redaction."""
        own = [resolve_overlaps(detections) for detections in self.own]
        if not self.cross_turn:
            return own
        found = [list(detections) for detections in self.own]
        for turn, detection in self.cross_turn:
            # An SSN ending the turn stays an SSN: a card read across turns is the weaker reading of its digits
            # (other readings, a phone number say, still give way to the card).
            if not any(kept.kind is PiiKind.ssn and kept.start <= detection.start and detection.end <= kept.end
                       for kept in own[turn]):
                found[turn].append(detection)
        return [resolve_overlaps(detections) for detections in found]


def scan_turns(texts: Sequence[str], *, names: bool = False) -> TurnScan:
    """`detect` for each turn of a call, plus card numbers read out across two consecutive turns, before
    overlaps are resolved (`TurnScan`)."""
    # Each turn's numbers are read once: for its own detection and for cards split across turns.
    numbers = [_numbers(text) for text in texts]
    own = tuple(
        tuple(_detect(_text_of_turn(texts, i), numbers[i], names=names)) for i, text in enumerate(texts)
    )
    return TurnScan(tuple(texts), names, own, tuple(_cross_turn_cards(texts, numbers)))


def lead_in_of(texts: Sequence[str], turn: int) -> str:
    """What a value early in `texts[turn]` searches for cues: the end of the turn before; or, when that turn
    only acknowledges ("Can you confirm your date of birth?" / "Sure." / "March 4th, 1985."), the end of the
    turn before it, the question's. Never further back."""
    if turn == 0:
        return ""
    previous = texts[turn - 1]
    if turn >= 2 and acknowledgement(previous):
        previous = texts[turn - 2]
    return previous[-PREVIOUS_TURN_CONTEXT_CHARS:]


def _text_of_turn(texts: Sequence[str], turn: int) -> _Text:
    """Turn `turn` with its lead-in (`lead_in_of`). A question's cue reached over an acknowledgement counts for
    a value opening the turn only (`ANSWER_OPENING_CHARS`): the asker speaking again after "Okay." ("Thanks.
    Your replacement card ships on March 14th, 2026.") is not answering it."""
    over_acknowledgement = turn >= 2 and acknowledgement(texts[turn - 1])
    return _Text(texts[turn], lead_in_of(texts, turn), ANSWER_OPENING_CHARS if over_acknowledgement else None)


def acknowledgement(text: str) -> bool:
    """`text` only acknowledges (`_ACKNOWLEDGEMENT`): "Sure.", "Mm-hmm, go ahead.", "Okay, one moment."."""
    return len(text) <= ACKNOWLEDGEMENT_MAX_CHARS and _ACKNOWLEDGEMENT.fullmatch(text) is not None


def detect_turns(texts: Sequence[str], *, names: bool = False, resolve: bool = True) -> list[list[Detection]]:
    """`detect` for each turn of a call, plus card numbers read out across two consecutive turns: resolved
    (for redaction) or, `resolve=False`, every detection (for masking; see `TurnScan.unresolved`)."""
    scan = scan_turns(texts, names=names)
    return scan.resolved() if resolve else scan.unresolved()


def resolve_overlaps(detections: Iterable[Detection]) -> list[Detection]:
    """Keep higher-priority, then longer, then earlier detections (equal ones in the order given); drop what
    overlaps a kept one."""
    candidates = list(detections)
    if len(candidates) < 2:
        return candidates  # nothing to rank, nothing to overlap (most turns)
    ranked = sorted(candidates, key=lambda d: (PRIORITY.index(d.kind), -(d.end - d.start), d.start))
    # A candidate overlaps a kept detection when one of those starting before the candidate's end ends after
    # the candidate's start: the furthest end among them answers for all at once. Comparing each candidate
    # with every kept detection took quadratic time: 10,000 card numbers in one turn, 5 s.
    kept_ends = _FurthestEnds(sorted({d.start for d in candidates}))
    kept: list[Detection] = []
    for candidate in ranked:
        furthest = kept_ends.starting_before(candidate.end)
        if furthest is None or furthest <= candidate.start:
            kept.append(candidate)
            kept_ends.add(candidate.start, candidate.end)
    return sorted(kept, key=lambda d: d.start)


class _FurthestEnds:
    """The furthest end of the spans added so far that start before a position, each span starting at one of
    `starts` (sorted, distinct). A Fenwick tree of maxima over the starts' ranks: adding a span and asking
    take O(log n)."""

    def __init__(self, starts: list[int]) -> None:
        self._starts = starts
        # `_furthest[i]` (from 1): the furthest end of the spans whose start's rank is in (i - lowbit(i), i].
        self._furthest: list[int | None] = [None] * (len(starts) + 1)

    def add(self, start: int, end: int) -> None:
        rank = bisect_left(self._starts, start) + 1
        while rank < len(self._furthest):
            furthest = self._furthest[rank]
            if furthest is None or furthest < end:
                self._furthest[rank] = end
            rank += rank & -rank

    def starting_before(self, position: int) -> int | None:
        """The furthest end of the spans added that start before `position`; None if none does."""
        rank = bisect_left(self._starts, position)  # how many starts are before `position`
        found: int | None = None
        while rank > 0:
            furthest = self._furthest[rank]
            if furthest is not None and (found is None or furthest > found):
                found = furthest
            rank -= rank & -rank
        return found


def number_tokens(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, digits) of every digit token in `text` ("4111", "four", "double one")."""
    for token in _tokens(text):
        yield token.start, token.end, token.digits


# ---------------------------------------------------------------------------------------------
# Detectors


def _detect(source: _Text, numbers: Sequence[_Number], *, names: bool) -> Iterator[Detection]:
    text = source.text
    yield from _emails(text)
    # IBANs, written dates and street numbers all contain a digit (`\d`, as their patterns match it); most
    # turns have none, and one scan of the text then skips their cue searches and pattern scans.
    written_digits = has_written_digit(text)
    ibans = list(_ibans(text)) if written_digits else []
    yield from ibans
    # IBANs are found in order and apart, so their ends are in order too: the one a number may overlap is the
    # first ending after the number's start (comparing each number with every IBAN took quadratic time).
    iban_ends = [iban.end for iban in ibans]
    for number in numbers:
        if len(number.digits) < _CLASSIFIED_MIN_DIGITS:
            continue  # no kind has so few digits, nor has any part of the number ("this one", "2 days")
        # The digits of an IBAN are not a card or a phone of their own.
        next_iban = bisect_right(iban_ends, number.start)
        if next_iban == len(ibans) or ibans[next_iban].start >= number.end:
            yield from _classify(source, number)
    if written_digits:
        yield from _odd_separator_numbers(source)
        yield from _dates_of_birth(source)
        yield from _id_documents(source)
    yield from _expiry_dates(source)
    if written_digits:
        yield from _addresses(source)
    if names:
        yield from _names(text)


def _tokens(text: str) -> Iterator[_Token]:
    for match in _NUMBER_TOKEN.finditer(_ascii_lowered(text)):
        if match.group("digits") is not None:
            digits, spoken = match.group("digits"), False
        else:
            # "one eight hundred ..." is 1-800-...: a digit word followed by "hundred" is that digit and 00.
            digits, spoken = SPOKEN_DIGITS[match.group("word")] + ("00" if match.group("hundred") else ""), True
        multiplier = match.group("mult")
        if multiplier:
            if len(digits) != 1:
                # "double 55" is not a doubled digit: keep the number without the word.
                yield _Token(match.start("digits" if not spoken else "word"), match.end(), digits, spoken)
                continue
            digits *= 2 if multiplier == "double" else 3
        yield _Token(match.start(), match.end(), digits, spoken)


def _ascii_lowered(text: str) -> str:
    """`text` with A-Z lower-cased and nothing else changed (same length, same offsets)."""
    # On ASCII text `str.lower` does exactly that; on other text, `str.translate` with a table would look up
    # every character in a dict, the bytes' translation is many times faster.
    if text.isascii():
        return text.lower()
    return text.encode("utf-8", "surrogatepass").translate(_ASCII_LOWER_BYTES).decode("utf-8", "surrogatepass")


def _numbers(text: str) -> tuple[_Number, ...]:
    return tuple(_trim_interjections(text, number) for number in _raw_numbers(text))


def _trim_interjections(text: str, number: _Number) -> _Number:
    """ "Oh" is a zero only among spoken digits: "... 312190 Oh no" ends at 312190."""
    first, last = 0, len(number.tokens) - 1

    def interjection(i: int, neighbour: int) -> bool:
        token = number.tokens[i]
        return text[token.start : token.end].lower() == "oh" and not number.tokens[neighbour].spoken

    while first < last and interjection(first, first + 1):
        first += 1
    while last > first and interjection(last, last - 1):
        last -= 1
    if first == 0 and last == len(number.tokens) - 1:
        return number  # nothing trimmed (most numbers): no copy
    return number.part(first, last)


def _raw_numbers(text: str) -> Iterator[_Number]:
    tokens: list[_Token] = []
    gaps: list[str] = []
    for token in _tokens(text):
        if tokens:
            gap = text[tokens[-1].end : token.start]
            if len(gap) <= MAX_GAP_CHARS and _GAP.fullmatch(gap):
                tokens.append(token)
                gaps.append(gap)
                continue
            yield _Number(tuple(tokens), tuple(gaps))
            tokens, gaps = [], []
        tokens.append(token)
    if tokens:
        yield _Number(tuple(tokens), tuple(gaps))


_SENTENCE_BREAK = re.compile(r"[.,]\s*\b(?:and|then|so|okay|ok)\b|\.\s")


def _sentence_break(gap: str) -> bool:
    """ ". " between two numbers ends a sentence ("... 30 days. 5 more ..."); "4111.1111" does not.
    Only for the kinds other than cards: a card read out "four one one one. one one one one. ..."
    (recognizers punctuate pauses) is still one number, and the Luhn check keeps that safe."""
    return _SENTENCE_BREAK.search(gap) is not None


def _sentences(number: _Number) -> Iterator[_Number]:
    """`number` cut at every sentence break between its tokens."""
    first = 0
    for i, gap in enumerate(number.gaps):
        if _sentence_break(gap):
            yield number.part(first, i)
            first = i + 1
    yield number.part(first, len(number.tokens) - 1)


def _classify(source: _Text, number: _Number) -> Iterator[Detection]:
    """The card inside `number` if any (its longest, `_card_run`), and what the pieces around it are: what is
    left on either side may hold another card ("4111 ..., and 5500 ..."), found the same way, the left side's
    detections before the right side's.

    The pieces are token ranges of `number` on a stack of their own (the right one pushed first, so the left
    one's detections come first), and each range's card is looked up in `_CardRuns`, found once for the whole
    number. Each piece classified by calling this again, as a copy searched again for a card, made cards
    written as one number ("4111 1111 1111 1111 4111 1111 1111 1111 ...", with spaces only) take quadratic
    time, and from about 990 of them fail with a RecursionError."""
    last_token = len(number.tokens) - 1
    runs = _CardRuns(number.tokens) if len(number.digits) >= CARD_MIN_DIGITS else None
    pieces = [(0, last_token)]
    while pieces:
        first, last = pieces.pop()
        card = runs.longest(first, last) if runs is not None else None
        if card is not None:
            card_first, card_last = card
            part = number.part(card_first, card_last)
            yield _span(source.text, PiiKind.card, part, part.digits)
            if card_last < last:
                pieces.append((card_last + 1, last))
            if card_first > first:
                pieces.append((first, card_first - 1))
            continue
        piece = number if first == 0 and last == last_token else number.part(first, last)
        for sentence in _sentences(piece):
            yield from _classify_rest(source, sentence)


class _CardRuns:
    """Every run of whole tokens that `_card_run` takes for a card (13-19 digits passing Luhn, in a card's
    groups), by its number of digits, so that the card of any range of the tokens is found without searching
    the range again: `longest(first, last)` is `_card_run` of the tokens `first` to `last` (as indexes of all)."""

    def __init__(self, tokens: Sequence[_Token]) -> None:
        # For each number of digits, the runs' first tokens in order, and their last tokens: in order too, as
        # every token has a digit (a run with the same digits that starts later cannot end sooner).
        self._firsts: dict[int, list[int]] = {}
        self._lasts: dict[int, list[int]] = {}
        for first in range(len(tokens)):
            digits = ""
            for last in range(first, len(tokens)):
                digits += tokens[last].digits
                if len(digits) > CARD_MAX_DIGITS:
                    break
                if len(digits) >= CARD_MIN_DIGITS and luhn_valid(digits):
                    self._firsts.setdefault(len(digits), []).append(first)
                    self._lasts.setdefault(len(digits), []).append(last)
                if len(tokens[last].digits) > CARD_MAX_WRITTEN_GROUP:
                    break  # only a card's last group may be longer (`_card_grouping`)
        self._lengths = sorted(self._firsts, reverse=True)

    def longest(self, first: int, last: int) -> tuple[int, int] | None:
        """The longest run within tokens `first` to `last`, the earliest of those as long: `_card_run`'s."""
        for length in self._lengths:
            firsts = self._firsts[length]
            i = bisect_left(firsts, first)
            if i < len(firsts) and self._lasts[length][i] <= last:
                return firsts[i], self._lasts[length][i]
        return None


def _card_run(number: _Number, accept: Callable[[int, int], bool] | None = None) -> tuple[int, int] | None:
    """The longest run of whole tokens with 13-19 digits passing Luhn, as (first, last) token indexes;
    with `accept`, only runs it accepts count."""
    if len(number.digits) < CARD_MIN_DIGITS:
        return None  # no run of it can be a card: no search (most numbers)
    best: tuple[int, int] | None = None
    best_length = 0
    tokens = number.tokens
    for first in range(len(tokens)):
        length = 0
        for last in range(first, len(tokens)):
            length += len(tokens[last].digits)
            if length > CARD_MAX_DIGITS:
                break
            if accept is not None and not accept(first, last):
                continue
            if length >= CARD_MIN_DIGITS and length > best_length and _card_grouping(tokens[first : last + 1]):
                digits = "".join(t.digits for t in tokens[first : last + 1])
                if luhn_valid(digits):
                    best, best_length = (first, last), length
    return best


def _nearer(source: _Text, start: int, cue: re.Pattern[str], *rivals: re.Pattern[str]) -> bool:
    """`cue` is before `start`, nearer than any of the `rivals` cues and any content cue."""
    distance = source.cue_distance(start, cue)
    if distance is None:
        return False
    others = [source.cue_distance(start, c) for c in (*rivals, _CONTENT_CUE)]
    return all(other is None or distance < other for other in others)


def _card_grouping(tokens: tuple[_Token, ...]) -> bool:
    """Cards are written whole or in groups of 4 (Amex 4-6-5); a 7-digit group is something else."""
    return len(tokens) == 1 or all(len(t.digits) <= CARD_MAX_WRITTEN_GROUP for t in tokens[:-1])


def _classify_rest(source: _Text, number: _Number) -> Iterator[Detection]:
    text = source.text
    digits = number.digits
    count = len(digits)
    if not _CLASSIFIED_MIN_DIGITS <= count <= _CLASSIFIED_MAX_DIGITS:
        return  # no kind below has this many digits ("one", "2", most numbers in a call): skip the cue searches
    start = _extended_start(text, number.start)
    if _handle_or_amount(text, start, number.end):
        return
    content = source.cue_distance(start, _CONTENT_CUE, CONTENT_CUE_WINDOW_CHARS)

    def cued(cue: re.Pattern[str]) -> bool:
        return _cued_before_content(source, start, cue, content)

    # Dotted groups read as a software version ("8.4.22"), unless a cue says what they are: "my social is
    # 123.45.6789" is an SSN written with dots.
    # (Cards, accounts and phones are not written in groups of one or two digits.)
    if _version_like(number) and not (
        cued(_SSN_CUE) or _id_cued(source, start) or source.has_cue(start, _CVV_CUE, 30)
    ):
        return

    # Uncued, only a number shaped and numbered as an SSN is one; after a cue ("SSN", "tax id") nearer than a
    # routing number's, any nine digits are: an ITIN begins with 9, and a misheard or mistyped SSN is still one.
    if count == SSN_DIGITS and (
        (_plausible_ssn(digits) and ((_ssn_shaped(number) and content is None) or cued(_SSN_CUE)))
        or _nearer(source, start, _SSN_CUE, _ROUTING_CUE)
    ):
        yield _span(text, PiiKind.ssn, number, digits, start)
    elif count == ROUTING_DIGITS and aba_valid(digits) and cued(_ROUTING_CUE):
        yield _span(text, PiiKind.account, number, digits, start)
    elif ID_MIN_DIGITS <= count <= ID_MAX_DIGITS and _id_cued(source, start) and not _date_like(text, number):
        yield _span(text, PiiKind.id_document, number, digits, start)
    elif CVV_DIGITS[0] <= count <= CVV_DIGITS[1] and source.has_cue(start, _CVV_CUE, 30):
        yield _span(text, PiiKind.cvv, number, digits, start)
    elif CARD_CUED_MIN_DIGITS <= count <= CARD_MAX_DIGITS and _card_cued(source, start, content):
        yield _span(text, PiiKind.card, number, digits, start)
    elif ACCOUNT_MIN_DIGITS <= count <= ACCOUNT_MAX_DIGITS and _nearer(source, start, _ACCOUNT_CUE, _PHONE_CUE):
        yield _span(text, PiiKind.account, number, digits, start)
    elif PHONE_MIN_DIGITS <= count <= PHONE_MAX_DIGITS and _is_phone(
        text, start, digits, cued(_PHONE_CUE) or _spoken_long(number), content is not None
    ):  # (`_is_phone` says no to other lengths too: this spares the phone cue search its argument needs)
        yield _span(text, PiiKind.phone, number, digits[-NANP_DIGITS:], start)
    elif ACCOUNT_MIN_DIGITS <= count <= ACCOUNT_MAX_DIGITS and (cued(_ACCOUNT_CUE) or cued(_ROUTING_CUE)):
        yield _span(text, PiiKind.account, number, digits, start)


def _handle_or_amount(text: str, start: int, end: int) -> bool:
    """The number at `text[start:end]` is a handle or a hashtag (the cheapest test first: "@135060" is common),
    an amount ("$ 120") or a quantity ("120   dollars"): by what is next to it only. The whole text before it,
    searched for every number of a long turn ("123:45:123:45:..."), made a turn of 64k characters take a
    second and one of 140k over ten."""
    before = text[max(0, start - _NEXT_TO_CHARS) : start]
    return (
        before.endswith(("@", "#"))
        or _CURRENCY_BEFORE.search(before) is not None
        or _UNIT_AFTER.match(text[end : end + _NEXT_TO_CHARS]) is not None
    )


def _cued_before_content(source: _Text, start: int, cue: re.Pattern[str], content: int | None) -> bool:
    """`cue` is before `start`, nearer than the content cue found `content` characters before it (if any)."""
    distance = source.cue_distance(start, cue)
    return distance is not None and (content is None or distance < content)


def _card_cued(source: _Text, start: int, content: int | None) -> bool:
    """A card's cue ("card", "visa") makes the 12-19 digits at `start` a card even when they fail the Luhn
    check (a digit misheard, mistyped or lost): nearer than any content cue (`content`: its distance), and no
    account cue so ("my card account number" is the account's)."""
    return _cued_before_content(source, start, _CARD_CUE, content) and not _cued_before_content(
        source, start, _ACCOUNT_CUE, content
    )


def _version_like(number: _Number) -> bool:
    """1.0.65.320, 8.4.22: dotted groups, some of one or two digits."""
    return (
        len(number.tokens) >= 3
        and all(gap == "." for gap in number.gaps)
        and any(len(t.digits) < 3 for t in number.tokens[1:])
    )


def _extended_start(text: str, start: int) -> int:
    """Include a "+" or "(" written right before the first digit: "+44 ...", "(555) ..."."""
    while start > 0 and text[start - 1] in "+(":
        start -= 1
    return start


def _span(text: str, kind: PiiKind, number: _Number, value: str, start: int | None = None) -> Detection:
    begin = number.start if start is None else start
    end = number.end
    if end < len(text) and text[end] == ")" and "(" in text[begin:end]:
        end += 1
    return Detection(kind, begin, end, value)


def _plausible_ssn(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def _ssn_shaped(number: _Number) -> bool:
    """3-2-4 written groups (apart, or joined by a dash of any kind), or groups read out with "dash" between them."""
    if [len(t.digits) for t in number.tokens] == [3, 2, 4] and all(_SSN_GROUP_GAP.fullmatch(g) for g in number.gaps):
        return True
    groups: list[int] = [0]
    for token, gap in zip(number.tokens, (*number.gaps, ""), strict=True):
        groups[-1] += len(token.digits)
        if _DASH_GAP.search(gap):
            groups.append(0)
    return groups == [3, 2, 4]


def _is_phone(text: str, start: int, digits: str, cued: bool, content_cued: bool) -> bool:
    count = len(digits)
    if not PHONE_MIN_DIGITS <= count <= PHONE_MAX_DIGITS:
        return False
    international = text.startswith("+", start) or (digits.startswith("00") and not content_cued)
    if international:
        national = digits[2:] if digits.startswith("00") else digits
        if count >= INTERNATIONAL_MIN_DIGITS and _possible_international(national):
            return True
    if cued:
        return True
    if content_cued:
        return False
    return _nanp(digits[1:] if count == NANP_DIGITS + 1 and digits[0] == "1" else digits)


def _spoken_long(number: _Number) -> bool:
    """Ten or more digits read out as words are somebody's number, not call content."""
    return len(number.digits) >= NANP_DIGITS and any(t.spoken for t in number.tokens)


def _nanp(digits: str) -> bool:
    """A North American number: area code and exchange never start with 0 or 1."""
    return len(digits) == NANP_DIGITS and digits[0] not in "01" and digits[3] not in "01"


def _possible_international(digits: str) -> bool:
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(parsed))


def _emails(text: str) -> Iterator[Detection]:
    if "@" in text and _EMAIL_DOMAIN.search(text) is not None:
        for match in _EMAIL.finditer(text):
            yield Detection(PiiKind.email, match.start(), match.end(), match.group(0).casefold())
    if _SPOKEN_EMAIL_DOMAIN.search(text) is None:
        return
    for match in _SPOKEN_EMAIL.finditer(text):
        local = re.split(r"\s", match.group(0), maxsplit=1)[0]
        if local.casefold() in _EMAIL_NOT_LOCAL:
            continue
        yield Detection(PiiKind.email, match.start(), match.end(), _spoken_email_value(match.group(0)))


def _spoken_email_value(surface: str) -> str:
    value = surface.casefold()
    for word, symbol in ((" at sign ", "@"), (" at ", "@"), (" dot ", "."), (" underscore ", "_"), (" dash ", "-")):
        value = value.replace(word, symbol)
    return re.sub(r"\s", "", value)


def _odd_separator_numbers(source: _Text) -> Iterator[Detection]:
    """Cards written with ":", ";" or "+" between their groups ("4111:1111:1111:1111"), and, after an SSN's
    cue, SSNs ("123;45;6789"), after an account's, account numbers ("1234;5678;9012"). These are no gaps of the
    number stream (`_GROUP_SEPARATORS` says why), so only the shape of these numbers reads them: the same
    separator throughout, and a card's groups passing Luhn (or, as written with spaces, after a card's cue:
    `_card_cued`), or 3-2-4 digits, or an account number's digits after its cue, as written with spaces."""
    text = source.text
    if ":" not in text and ";" not in text and "+" not in text:
        return
    for match in _ODD_SEPARATED_GROUPS.finditer(text):
        groups = re.split("[:;+]", match.group())
        digits = "".join(groups)
        sizes = [len(group) for group in groups]
        card_grouped = sizes[0] == 4 and all(4 <= size <= CARD_MAX_WRITTEN_GROUP for size in sizes[1:-1])
        if card_grouped and (
            (CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS and luhn_valid(digits))
            or (
                CARD_CUED_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS
                and not _handle_or_amount(text, match.start(), match.end())
                and _card_cued(source, match.start(),
                               source.cue_distance(match.start(), _CONTENT_CUE, CONTENT_CUE_WINDOW_CHARS))
            )
        ):
            yield Detection(PiiKind.card, match.start(), match.end(), digits)
        elif sizes == [3, 2, 4] and _nearer(source, match.start(), _SSN_CUE, _ROUTING_CUE):
            yield Detection(PiiKind.ssn, match.start(), match.end(), digits)
        elif (
            ACCOUNT_MIN_DIGITS <= len(digits) <= ACCOUNT_MAX_DIGITS
            and not _handle_or_amount(text, match.start(), match.end())
            and _nearer(source, match.start(), _ACCOUNT_CUE, _PHONE_CUE)
        ):  # (the cue `_classify_rest` reads an account number's digits by, written with spaces)
            yield Detection(PiiKind.account, match.start(), match.end(), digits)


def _ibans(text: str) -> Iterator[Detection]:
    if _IBAN_START.search(text) is None:
        return
    for match in _IBAN.finditer(text):
        surface = match.group(0)
        length = IBAN_LENGTHS.get(surface[:2].upper())
        # The pattern runs on into following words; the country's IBAN length says where it ends.
        positions = [i for i, c in enumerate(surface) if c != " "]
        compact = surface.replace(" ", "").upper()
        if length is None or len(compact) < length:
            continue
        candidate = compact[:length]
        if sum(c.isalpha() for c in candidate[4:]) <= IBAN_MAX_LETTERS and iban_valid(candidate):
            end = match.start() + positions[length - 1] + 1
            yield Detection(PiiKind.account, match.start(), end, candidate)


def _id_cued(source: _Text, start: int) -> bool:
    """A document is named ("passport", "driver's licence") right before `start`, in this turn, or at the end
    of the turn before while this one opens with the number: nothing but `_ID_FILLER` between the two."""
    text = source.text
    if source.names_document:
        last = None
        for match in _ID_CUE.finditer(text, max(0, start - CONTEXT_WINDOW_CHARS), start):
            last = match
        if last is not None:
            return _ID_FILLER.fullmatch(text, last.end(), start) is not None
    # `_ID_FILLER` matches no digit: a number after one written with digits does not open the turn, and is not
    # matched against all the text before it (for each number of a long turn: 6 ms each after 10,000 spaces).
    if (not source.lead_in_names_document or start > source.first_written_digit
            or _ID_FILLER.fullmatch(text, 0, start) is None):
        return False
    if _MONEY_QUESTION.search(source.lead_in):
        return False
    last_in_lead = None
    for match in _ID_CUE.finditer(source.lead_in):
        last_in_lead = match
    return last_in_lead is not None and _ID_FILLER.fullmatch(source.lead_in, last_in_lead.end()) is not None


def _date_like(text: str, number: _Number) -> bool:
    """Digits read as a date or an amount: written with '/', shaped as a date ("15 03 2024", "2024 03 15",
    "03 2030", "12.03.85", "12-03-85"), eight digits that are one ("20240315", "15032024"), or with a decimal
    point and two decimals ("1,500.00"; not "12.34.56.78")."""
    written = text[number.start : number.end]
    if "/" in written or _DECIMAL_AMOUNT.fullmatch(written) or _short_date(written):
        return True
    sizes = tuple(len(token.digits) for token in number.tokens)
    years = [i for i, token in enumerate(number.tokens) if len(token.digits) == 4 and token.digits[:2] in ("19", "20")]
    if years and 2 <= len(sizes) <= 3 and all(size <= 2 for i, size in enumerate(sizes) if i != years[0]):
        return True  # a year with a day and a month, or a month (on either side)
    digits = number.digits
    if len(digits) != 8:
        return False
    year_first = digits[:2] in ("19", "20") and "01" <= digits[4:6] <= "12" and "01" <= digits[6:] <= "31"
    year_last = digits[4:6] in ("19", "20") and "01" <= digits[:2] <= "31" and "01" <= digits[2:4] <= "31"
    return year_first or year_last


def _short_date(written: str) -> bool:
    """`written` is a day and a month, in either order, and a two-digit year, with dots or dashes (`_SHORT_DATE`):
    "12.03.85", "03-12-85"."""
    match = _SHORT_DATE.fullmatch(written)
    if match is None:
        return False
    day_and_month = sorted((int(match.group("first")), int(match.group("second"))))
    return 1 <= day_and_month[0] <= _MONTHS_IN_YEAR and day_and_month[1] <= _DAYS_IN_MONTH_MAX


def _id_documents(source: _Text) -> Iterator[Detection]:
    """Document numbers written with letters ("C01X00T47", "AB 12 34 56 C") after a document's cue; those of
    digits alone are numbers, found by `_classify_rest` (spoken ones too)."""
    if not source.names_document and not source.lead_in_names_document:
        return
    for match in _ID_WRITTEN.finditer(source.text):
        value = "".join(character for character in match.group() if character.isalnum()).upper()
        digits = sum(character.isdigit() for character in value)
        if (ID_WRITTEN_CHARS[0] <= len(value) <= ID_WRITTEN_CHARS[1] and digits >= ID_WRITTEN_MIN_DIGITS
                and digits < len(value) and not _ORDINAL_GROUP.search(match.group())
                and _id_cued(source, match.start())):
            yield Detection(PiiKind.id_document, match.start(), match.end(), value)


def _dates_of_birth(source: _Text) -> Iterator[Detection]:
    if not _cue_in(source.text, _DOB_CUE, _DOB_CUE_WORDS) and not _cue_in(source.lead_in, _DOB_CUE, _DOB_CUE_WORDS):
        return  # a date is a date of birth only next to a cue
    for match in _DATE.finditer(source.text):
        if source.has_cue(match.start(), _DOB_CUE):
            yield Detection(PiiKind.dob, match.start(), match.end(), match.group(0).casefold())


def _expiry_dates(source: _Text) -> Iterator[Detection]:
    text = source.text
    if not _cue_in(text, _EXPIRY_CUE, _EXPIRY_CUE_WORDS):
        return
    for cue in _EXPIRY_CUE.finditer(text):
        match = _EXPIRY_VALUE.match(text, cue.end())
        if match is not None:
            yield Detection(PiiKind.expiry, match.start("value"), match.end("value"), match.group("value").casefold())


def _addresses(source: _Text) -> Iterator[Detection]:
    if not _cue_in(source.text, _ADDRESS_CUE, _ADDRESS_CUE_WORDS) and not _cue_in(
        source.lead_in, _ADDRESS_CUE, _ADDRESS_CUE_WORDS
    ):
        return
    for match in _STREET.finditer(source.text):
        if source.has_cue(match.start(), _ADDRESS_CUE, 40):
            surface = match.group(0).rstrip(".")
            yield Detection(PiiKind.address, match.start(), match.start() + len(surface), surface.casefold())


def _names(text: str) -> Iterator[Detection]:
    """Cue-based only: "my name is Jane Roe", "this is Jane (from ...)"; a capital is required after
    the weak cues ("this is", "I'm") so "this is great" stays."""
    for cue in _NAME_CUE.finditer(text):
        strong = cue.group(0).lower().startswith(("my name", "name"))
        words: list[re.Match[str]] = []
        at = cue.end()
        while len(words) < 2:
            word = _NAME_WORD.match(text, at)
            if word is None or word.group(0).lower() in _NOT_NAMES:
                break
            if not strong and not word.group(0)[0].isupper():
                break
            words.append(word)
            at = word.end()
            while at < len(text) and text[at] == " ":
                at += 1
        if words:
            start, end = words[0].start(), words[-1].end()
            yield Detection(PiiKind.name, start, end, text[start:end].casefold())


def _cross_turn_cards(texts: Sequence[str], numbers: Sequence[Sequence[_Number]]) -> Iterator[tuple[int, Detection]]:
    """Card numbers read across consecutive turns ("5500 0000" / "0000 0004", or four groups in
    four turns while the agent types): (turn, detection) for each turn's part.

    A chain starts with the number that ends a turn and goes on with the number that begins the
    next, through turns that hold nothing but their number, for at most `SPLIT_MAX_TURNS` parts.
    Stepped over in between: short acknowledgements ("okay", "mm-hmm, go ahead") and read-backs, turns
    that repeat the part before ("4111 1111, okay, and?"); a read-back holds the card's digits too, so
    it is found with the card. A turn that repeats the part before may as well be the next part (the
    groups of 4111 1111 1111 1111 repeat): every reading that makes a card is found.
    """
    for start in range(len(texts) - 1):
        tail = numbers[start][-1] if numbers[start] else None
        if tail is None or len(texts[start][tail.end :].strip(" .,;:-!?")) > SPLIT_TAIL_CHARS:
            continue
        if len(tail.digits) < SPLIT_MIN_DIGITS or _DATE.search(texts[start], tail.start):
            continue
        found: dict[tuple[int, Detection], None] = {}  # in order, each once
        for chain, read_backs in islice(_chain_readings(texts, numbers, [(start, tail)], [], start + 1),
                                        MAX_CHAIN_READINGS):
            if len(chain) > 1:
                found.update(dict.fromkeys(_chain_card(chain, read_backs)))
        yield from found


def _chain_readings(
    texts: Sequence[str], numbers: Sequence[Sequence[_Number]], chain: list[tuple[int, _Number]],
    read_backs: list[_ReadBack], first_turn: int,
) -> Iterator[tuple[list[tuple[int, _Number]], list[_ReadBack]]]:
    """The ways to read the turns from `first_turn` on as parts of `chain` or read-backs of it: (parts,
    read-backs), by `_cross_turn_cards`'s rules: first the reading that takes each such turn for the next
    part, then those that take some for read-backs."""
    # Where a turn may be a read-back: the chain and read-backs so far with it, and the turn after it.
    read_back_readings: list[tuple[list[tuple[int, _Number]], list[_ReadBack], int]] = []
    # Each part may be followed by an acknowledgement and a read-back before the next.
    for turn in range(first_turn, min(len(texts), chain[0][0] + 3 * SPLIT_MAX_TURNS)):
        head = numbers[turn][0] if numbers[turn] else None
        text = texts[turn]
        if (head is None and len(text.strip()) <= BACKCHANNEL_CHARS) or acknowledgement(text):
            continue  # "okay", "mhm", "go on" from the other side between the groups
        read_back = _read_back(turn, text, numbers[turn], chain)
        if read_back is not None:
            read_back_readings.append((chain, [*read_backs, read_back], turn + 1))
        if (
            len(chain) == SPLIT_MAX_TURNS
            or head is None
            or head.start > SPLIT_HEAD_CHARS
            or text[: head.start].endswith(("@", "#"))
            or len(head.digits) < SPLIT_MIN_DIGITS
        ):
            break
        chain = [*chain, (turn, head)]
        if (
            len(numbers[turn]) > 1
            or len(text[head.end :].strip(" .,;:-!?")) > SPLIT_TAIL_CHARS
            or len(text[: head.start].strip()) > SPLIT_TAIL_CHARS
        ):
            break  # the turn says more than its number: the chain ends here
    yield chain, read_backs
    for earlier_chain, with_read_back, next_turn in read_back_readings:
        yield from _chain_readings(texts, numbers, earlier_chain, with_read_back, next_turn)


@dataclass(frozen=True)
class _ReadBack:
    """A turn that repeats parts of a number read across turns: its number, and the chain's parts
    (indexes, first to last) that it repeats."""

    turn: int
    number: _Number
    first_part: int
    last_part: int


def _read_back(turn: int, text: str, numbers: Sequence[_Number], chain: list[tuple[int, _Number]]) -> _ReadBack | None:
    """`text` repeats the last part of `chain`, or all its parts so far, and says little else (an agent
    reading a group back: "4111 1111, okay, and?", "Got it, 4111 1111. And the next four?"): the same digits,
    and no other number of a part's length there."""
    long_numbers = [number for number in numbers if len(number.digits) >= SPLIT_MIN_DIGITS]
    if len(long_numbers) != 1:
        return None
    number = long_numbers[0]
    if len(text) - (number.end - number.start) > READ_BACK_OTHER_CHARS:
        return None
    last = len(chain) - 1
    if number.digits == chain[last][1].digits:
        return _ReadBack(turn, number, last, last)
    if number.digits == "".join(part.digits for _, part in chain):
        return _ReadBack(turn, number, 0, last)
    return None


def _chain_card(
    chain: list[tuple[int, _Number]], read_backs: Sequence[_ReadBack] = ()
) -> Iterator[tuple[int, Detection]]:
    owners = [turn for turn, number in chain for _ in number.tokens]
    # The chain's part (index) of each token.
    parts = [position for position, (_, number) in enumerate(chain) for _ in number.tokens]
    tokens = tuple(token for _, number in chain for token in number.tokens)
    gaps: list[str] = []
    for position, (_, number) in enumerate(chain):
        gaps.extend(number.gaps)
        if position < len(chain) - 1:
            gaps.append(" ")
    joined = _Number(tokens, tuple(gaps))

    ends = {i for i in range(len(owners)) if i == len(owners) - 1 or owners[i + 1] != owners[i]}

    def across_turns(first: int, last: int) -> bool:
        # A card wholly in one turn is found there already; this chain looks for the card that
        # begins in its first turn (later turns start chains of their own). Across turns a card is
        # read in groups of four (Amex 4-6-5) or digit by digit; other groupings are something else.
        return owners[first] == chain[0][0] != owners[last] and all(
            t.spoken or len(t.digits) in (4, 6) for t in joined.tokens[first:last]
        )

    def whole_parts(first: int, last: int) -> bool:
        # Best: the whole number that ends the first turn, through the end of a later turn's part.
        return first == 0 and last in ends and across_turns(first, last)

    run = _card_run(joined, whole_parts) or _card_run(joined, across_turns)
    if run is None:
        return
    first, last = run
    digits = joined.part(first, last).digits
    for turn in sorted(set(owners[first : last + 1])):
        mine = [i for i in range(first, last + 1) if owners[i] == turn]
        yield turn, Detection(PiiKind.card, tokens[mine[0]].start, tokens[mine[-1]].end, digits,
                              ends_value=mine[-1] == last)
    for read_back in read_backs:
        repeated = [i for i in range(first, last + 1) if read_back.first_part <= parts[i] <= read_back.last_part]
        if repeated:
            number = read_back.number
            yield read_back.turn, Detection(PiiKind.card, number.start, number.end, digits,
                                            ends_value=repeated[-1] == last)
