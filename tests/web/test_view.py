"""The call page's view model (app/web/view.py): evidence segmentation, labels, history lines."""

from __future__ import annotations

import pytest

from app.web.view import describe_changes, segment_text, time_label


def test_segments_cover_the_text_and_name_every_citing_claim() -> None:
    text = "I will refund the $30 late fee today."
    #       0         1         2         3
    spans = [(2, 30, 7), (18, 21, 9), (31, 36, 7)]
    segments = segment_text(text, spans)
    assert "".join(s.text for s in segments) == text
    covered = {s.text: s.claim_ids for s in segments}
    assert covered["$30"] == "7 9"
    assert covered["I "] == ""
    assert covered["today"] == "7"
    assert covered[" "] == ""


def test_offsets_are_code_points_so_marks_survive_emoji_and_accents() -> None:
    text = "Merci 🙂 José, le remboursement arrive demain."
    start = text.index("José")
    (before, mark, after) = segment_text(text, [(start, start + len("José"), 1)])
    assert (before.text, mark.text, mark.claim_ids) == ("Merci 🙂 ", "José", "1")
    assert after.text.startswith(",")


def test_text_without_evidence_is_one_plain_segment() -> None:
    (only,) = segment_text("Hello", [])
    assert (only.text, only.claim_ids) == ("Hello", "")


@pytest.mark.parametrize(("seconds", "label"), [(None, ""), (0, "00:00"), (75.9, "01:15"), (3725, "1:02:05")])
def test_time_label(seconds: float | None, label: str) -> None:
    assert time_label(seconds) == label


def test_history_lines_show_what_changed() -> None:
    before = {"text": "Call back", "owner": "agent", "due": None, "review_status": "pending"}
    after = {"text": "Call back Monday", "owner": "agent", "due": "Monday", "review_status": "edited"}
    assert describe_changes(before, after) == [
        "text: “Call back” → “Call back Monday”",
        "due: — → “Monday”",
        "review_status: “pending” → “edited”",
    ]
    assert describe_changes(None, {"state": "approved"}) == ["state: “approved”"]
