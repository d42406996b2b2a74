"""The offline heuristic provider on the project's samples and on shared real data.

Samples are read by the real ingestion (`app.ingest.load_transcript`), as a production file would be;
the shared corpora by the benchmark's readers (`bench.heuristic.datasets`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.grounding.claims import verify_extraction
from app.ingest import load_transcript
from app.llm.heuristic import HEURISTIC_MODEL_VERSION, HeuristicProvider, extract_heuristic
from app.llm.prompt import PromptTemplate
from app.schemas.extraction import Extraction, Owner, Statement
from app.schemas.grounding import ClaimStatus, EvidenceStatus
from app.schemas.transcript import Role, Transcript, Utterance
from bench.datasets import HarperValleyText
from bench.heuristic.datasets import SAMPLES_DIR, load_harper_valley, load_tweetsumm, sample_paths
from tests.support.data import require_shared_data

SAMPLE_PATHS = list(sample_paths())
TWEETSUMM_SELECTION = 120


def _claims(extraction: Extraction) -> list[Statement]:
    found: list[Statement] = [*extraction.summary, *extraction.action_items]
    return found + [s for s in (extraction.reason, extraction.outcome) if s is not None]


def _load(path: Path) -> Transcript:
    return load_transcript(path).transcript


def _sample(name: str) -> Transcript:
    return _load(SAMPLES_DIR / name)


def _spoken(turns: list[tuple[Role, str]]) -> Transcript:
    """A transcript whose speakers are named by their roles."""
    utterances = [Utterance(index=i, speaker=role.value, role=role, text=text) for i, (role, text) in enumerate(turns)]
    return Transcript(utterances=utterances)


def _assert_well_grounded(transcript: Transcript, extraction: Extraction) -> None:
    """Quotes verbatim in the cited utterance, agent items on agent speech, verifier content."""
    texts = [u.text for u in transcript.utterances]
    for claim in _claims(extraction):
        assert claim.evidence, f"claim without evidence: {claim.text!r}"
        for ref in claim.evidence:
            assert ref.quote in texts[ref.utterance], (claim.text, ref)
    for item in extraction.action_items:
        if item.owner is Owner.agent:
            assert all(transcript.utterances[e.utterance].role is not Role.customer for e in item.evidence), item
        if item.due is not None:
            assert any(item.due in e.quote for e in item.evidence), item
    report = verify_extraction(transcript, extraction)
    failures = [(c.text, c.reason) for c in report.claims if c.status is not ClaimStatus.grounded]
    assert not failures
    assert all(e.status is EvidenceStatus.exact for c in report.claims for e in c.evidence)


# --- the provider contract --------------------------------------------------------------------------


def test_provider_identity_and_usage() -> None:
    provider = HeuristicProvider()
    prompt = PromptTemplate.load(Path(__file__).resolve().parents[2] / "prompts", "extract-v1")
    result = provider.extract(_sample("bank_lost_card.json"), prompt)

    assert provider.name == "heuristic"
    assert provider.model == HEURISTIC_MODEL_VERSION
    assert provider.sends_data_offsite is False
    assert provider.supports_repair is False
    assert result.usage.llm_calls == 0
    assert result.usage.cost_usd == 0.0
    assert result.extraction.reason is not None


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda p: p.name)
def test_same_input_gives_same_output(path: Path) -> None:
    first = extract_heuristic(_load(path))
    second = extract_heuristic(_load(path))
    assert first.model_dump() == second.model_dump()


# --- every sample --------------------------------------------------------------------------------


def test_samples_cover_both_file_formats() -> None:
    suffixes = [p.suffix for p in SAMPLE_PATHS]
    assert len(SAMPLE_PATHS) >= 8
    assert suffixes.count(".txt") >= 2


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda p: p.name)
def test_sample_extraction_is_grounded_and_complete(path: Path) -> None:
    transcript = _load(path)
    extraction = extract_heuristic(transcript)

    _assert_well_grounded(transcript, extraction)
    assert extraction.reason is not None
    assert extraction.outcome is not None
    assert 1 <= len(extraction.summary) <= 4
    assert extraction.action_items, "every sample call ends with at least one commitment"
    assert any(item.due for item in extraction.action_items), "every sample has a dated commitment"


@pytest.mark.parametrize(
    ("name", "reason_words"),
    [
        ("bank_lost_card.json", {"lost", "card"}),
        ("telecom_outage.json", {"internet", "down"}),
        ("insurance_claim.json", {"accident"}),
        ("clinic_appointment.txt", {"reschedule"}),
        ("ecommerce_refund_injection.json", {"refund", "blender"}),
        ("utility_billing.txt", {"bill"}),
        ("travel_rebooking.json", {"cancelled", "flight"}),
        ("software_subscription_escalation.json", {"charged", "twice"}),
        ("pharmacy_refill_unlabelled.txt", {"prescription"}),
    ],
)
def test_reason_names_the_callers_request(name: str, reason_words: set[str]) -> None:
    transcript = _sample(name)
    reason = extract_heuristic(transcript).reason

    assert reason is not None
    quoted = " ".join(e.quote for e in reason.evidence).lower()
    assert reason_words <= set(re.findall(r"[a-z]+", quoted)), reason
    assert all(transcript.utterances[e.utterance].role is not Role.agent for e in reason.evidence)


@pytest.mark.parametrize(
    ("name", "owner", "due", "word"),
    [
        ("bank_lost_card.json", Owner.agent, "within 5 to 7 business days", "card"),
        ("bank_lost_card.json", Owner.agent, "today", "confirmation"),
        ("telecom_outage.json", Owner.other, "tomorrow between 8 and 12", "technician"),
        ("telecom_outage.json", Owner.agent, "by the end of the week", "credit"),
        ("insurance_claim.json", Owner.customer, "by Friday", "photos"),
        ("insurance_claim.json", Owner.other, "within 2 business days", "adjuster"),
        ("insurance_claim.json", Owner.agent, "within the hour", "form"),
        ("utility_billing.txt", Owner.customer, "by March 3rd", "meter"),
        ("ecommerce_refund_injection.json", Owner.customer, "by Sunday", "photo"),
        ("travel_rebooking.json", Owner.agent, "within the next 10 minutes", "itinerary"),
        ("software_subscription_escalation.json", Owner.other, "within 24 hours", "specialist"),
    ],
)
def test_commitments_carry_owner_and_due_phrase_as_said(name: str, owner: Owner, due: str, word: str) -> None:
    items = extract_heuristic(_sample(name)).action_items

    matching = [i for i in items if i.due == due]
    assert matching, f"no item due {due!r} in {[(i.text, i.due) for i in items]}"
    assert matching[0].owner is owner
    assert word in matching[0].text.lower()


def test_customer_is_asked_to_send_photos() -> None:
    transcript = _sample("insurance_claim.json")
    items = extract_heuristic(transcript).action_items

    photos = [i for i in items if i.owner is Owner.customer and "photos" in i.text]
    assert photos
    cited = photos[0].evidence[0]
    assert "email us the photos" in cited.quote
    assert transcript.utterances[cited.utterance].role is Role.agent


def test_escalated_call_has_escalated_outcome() -> None:
    outcome = extract_heuristic(_sample("software_subscription_escalation.json")).outcome

    assert outcome is not None
    assert outcome.text.startswith("Escalated")
    assert "escalat" in outcome.evidence[0].quote.lower()


def test_caller_instructions_are_not_followed() -> None:
    transcript = _sample("ecommerce_refund_injection.json")
    injected = [u.index for u in transcript.utterances if "ignore previous instructions" in u.text.lower()]
    assert injected, "the sample must contain the injection attempt"
    extraction = extract_heuristic(transcript)

    cited = {e.utterance for claim in _claims(extraction) for e in claim.evidence}
    assert not cited & set(injected)
    for claim in _claims(extraction):
        assert not re.search(r"refund (?:was|is|has been) approved", claim.text, re.IGNORECASE), claim.text
    assert extraction.outcome is not None
    assert not extraction.outcome.text.startswith("Resolved")


def test_personal_data_sample_is_quoted_only_verbatim() -> None:
    transcript = _sample("bank_lost_card.json")
    extraction = extract_heuristic(transcript)

    card_number = "4539 1488 0343 6467"
    assert any(card_number in u.text for u in transcript.utterances)
    # Extraction never invents or reformats personal data: anything it carries is copied verbatim.
    for claim in _claims(extraction):
        digits_in_claim = re.findall(r"\d{4}", claim.text)
        quoted = " ".join(e.quote for e in claim.evidence)
        assert all(d in quoted for d in digits_in_claim)


# --- roles --------------------------------------------------------------------------------------


def test_unlabelled_speakers_are_resolved_from_content() -> None:
    # Ingestion already infers who is who in this sample; with the roles removed again, the provider
    # has to tell the speakers apart itself.
    transcript = _without_roles(_sample("pharmacy_refill_unlabelled.txt"))
    assert {u.role for u in transcript.utterances} == {Role.unknown}
    extraction = extract_heuristic(transcript)

    assert extraction.reason is not None
    assert {transcript.utterances[e.utterance].speaker for e in extraction.reason.evidence} == {"Speaker 2"}
    agent_items = [i for i in extraction.action_items if i.owner is Owner.agent]
    assert agent_items
    for item in agent_items:
        assert {transcript.utterances[e.utterance].speaker for e in item.evidence} == {"Speaker 1"}


def _without_roles(transcript: Transcript, labels: dict[Role, str] | None = None) -> Transcript:
    """Every role unknown; with `labels`, speakers are also renamed after the role they had."""
    return transcript.model_copy(
        update={
            "utterances": [
                Utterance(
                    index=u.index,
                    speaker=labels[u.role] if labels else u.speaker,
                    start=u.start,
                    end=u.end,
                    text=u.text,
                )
                for u in transcript.utterances
            ]
        }
    )


@pytest.mark.parametrize("name", ["bank_lost_card.json", "telecom_outage.json", "insurance_claim.json"])
def test_roles_stripped_give_the_same_evidence(name: str) -> None:
    labelled = _sample(name)
    anonymous = _without_roles(labelled, {Role.agent: "spk_0", Role.customer: "spk_1"})

    expected = extract_heuristic(labelled)
    actual = extract_heuristic(anonymous)

    assert actual.reason is not None
    assert expected.reason is not None
    assert [e.utterance for e in actual.reason.evidence] == [e.utterance for e in expected.reason.evidence]
    assert [(i.owner, i.due) for i in actual.action_items] == [(i.owner, i.due) for i in expected.action_items]


def test_customer_speaking_first_is_still_the_customer() -> None:
    lines = [
        ("A", "Hello? Hi, I'm calling because my internet keeps dropping every evening."),
        ("B", "Thanks for calling, I can help with that. Can I have your account number?"),
        ("A", "It's 55120."),
        ("B", "Thank you. I can see a fault on the line. A technician will visit on Thursday morning."),
        ("A", "Okay, thanks."),
    ]
    transcript = Transcript(
        utterances=[Utterance(index=i, speaker=s, text=t) for i, (s, t) in enumerate(lines)]
    )
    extraction = extract_heuristic(transcript)

    assert extraction.reason is not None
    assert extraction.reason.evidence[0].utterance == 0
    technician = [i for i in extraction.action_items if "technician" in i.text.lower()]
    assert technician
    assert technician[0].owner is Owner.other
    assert technician[0].due == "on Thursday morning"


# --- odd inputs ------------------------------------------------------------------------------------


def test_tiny_call_gives_a_valid_possibly_empty_extraction() -> None:
    transcript = Transcript(
        utterances=[
            Utterance(index=0, speaker="Agent", role=Role.agent, text="Hello?"),
            Utterance(index=1, speaker="Customer", role=Role.customer, text="[noise]"),
        ]
    )
    extraction = extract_heuristic(transcript)

    assert extraction.action_items == []
    assert extraction.reason is None
    _assert_well_grounded(transcript, extraction)


def test_asr_run_on_text_is_split_into_clauses() -> None:
    lines = [
        (Role.agent, "hello this is harper valley national bank my name is james how can i help you today"),
        (Role.customer, "hi my name is linda garcia i need to check my account balance"),
        (Role.agent, "okay i see your savings account balance is eighty six dollars is there anything else"),
        (Role.customer, "no thank you that was it"),
    ]
    transcript = _spoken(lines)
    extraction = extract_heuristic(transcript)

    assert extraction.reason is not None
    assert extraction.reason.evidence[0].quote == "i need to check my account balance"
    assert extraction.outcome is not None
    outcome_quote = extraction.outcome.evidence[0].quote
    assert "balance is eighty six dollars" in outcome_quote
    assert "anything else" not in outcome_quote
    _assert_well_grounded(transcript, extraction)


# --- shared real data --------------------------------------------------------------------------------


@pytest.mark.parametrize("text_source", ["human", "asr"])
def test_harper_valley_calls_are_grounded_with_a_reason(text_source: HarperValleyText) -> None:
    calls = load_harper_valley(require_shared_data("harper_valley_bank"), text_source=text_source)
    assert calls
    with_reason = 0
    for call in calls:
        extraction = extract_heuristic(call.transcript)
        _assert_well_grounded(call.transcript, extraction)
        with_reason += extraction.reason is not None
    assert with_reason >= 0.9 * len(calls)


def test_tweetsumm_selection_is_grounded() -> None:
    path = require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl")
    dialogs = load_tweetsumm(path, limit=TWEETSUMM_SELECTION)
    assert len(dialogs) == TWEETSUMM_SELECTION
    for dialog in dialogs:
        extraction = extract_heuristic(dialog.transcript)
        _assert_well_grounded(dialog.transcript, extraction)
        assert extraction.reason is not None
        assert extraction.summary


def test_a_spoken_due_window_becomes_the_items_due() -> None:
    turns = [
        (Role.agent, "Thank you for calling Acme, how can I help?"),
        (Role.customer, "I was charged twice and I need a refund."),
        (Role.agent, "I'll refund the charge within twenty one days."),
        (Role.agent, "Is there anything else I can help you with?"),
        (Role.customer, "no thank you that was it"),
    ]
    transcript = _spoken(turns)
    extraction = extract_heuristic(transcript)
    assert [(item.owner, item.due) for item in extraction.action_items] == [(Owner.agent, "within twenty one days")]
    report = verify_extraction(transcript, extraction)
    assert all(claim.status is ClaimStatus.grounded for claim in report.claims)
