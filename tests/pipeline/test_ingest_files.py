"""Ingesting files (app/pipeline/ingest_files.py): each file in its own transaction, a bad one reported
beside the good ones."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from app.config import PROJECT_ROOT, Settings
from app.context import AppContext
from app.db.session import unit_of_work
from app.models import CallState
from app.pipeline.calls import count_by_state
from app.pipeline.ingest_files import expand_paths, find_transcript_files, ingest_files
from app.pipeline.store import Actor, StoreStatus
from tests.support.data import require_shared_data

SAMPLES = PROJECT_ROOT / "samples"


def test_expand_paths_lists_transcripts_of_a_folder_and_keeps_files_as_given(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "README.md").write_text("not a call")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.vtt").write_text("WEBVTT")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.json").write_text("{}")  # inside a dot-folder: not a transcript of the batch
    given = tmp_path / "anything.bin"
    assert expand_paths([tmp_path, given]) == [tmp_path / "a.json", tmp_path / "nested" / "b.vtt", given]


def test_a_folder_is_read_in_any_case_and_every_entry_left_out_is_listed_with_why(tmp_path: Path) -> None:
    # `postcall ingest DIR` left out .json.gz, .jsonl, .log and files without an extension in silence.
    for name in ("A.TXT", "b.JSON", "c.log", "calls.jsonl", "noext", "d.json.gz", "README.md"):
        (tmp_path / name).write_text("Agent: hi\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.json").write_text("{}")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "e.Vtt").write_text("WEBVTT")
    (tmp_path / "linked").symlink_to(tmp_path / "nested")
    os.mkfifo(tmp_path / "pipe.json")
    found = find_transcript_files([tmp_path])
    assert found.files == [tmp_path / "A.TXT", tmp_path / "b.JSON", tmp_path / "nested" / "e.Vtt"]
    reasons = {skipped.path.name: skipped.reason for skipped in found.skipped}
    assert set(reasons) == {".git", "README.md", "c.log", "calls.jsonl", "d.json.gz", "linked", "noext", "pipe.json"}
    assert reasons["c.log"].startswith("extension .log is not read; only .json, .txt, .vtt, .srt files are read")
    assert reasons["calls.jsonl"].startswith("extension .jsonl is not read")
    assert reasons["noext"].startswith("no extension")
    assert reasons["d.json.gz"].startswith("compressed (.gz): decompress it first")
    assert "hidden" in reasons[".git"] and "README" in reasons["README.md"]
    assert "not followed" in reasons["linked"] and "not a regular file" in reasons["pipe.json"]
    assert expand_paths([tmp_path]) == found.files


def test_a_bad_file_is_reported_and_the_good_ones_are_stored(sqlite_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"utterances": [')
    missing = tmp_path / "missing.json"
    ctx = AppContext(Settings(database_url=sqlite_url))
    files = [SAMPLES / "bank_lost_card.json", broken, missing, SAMPLES / "utility_billing.txt"]
    results = ingest_files(ctx, files, tenant="acme", actor=Actor("test"))
    assert [r.status for r in results] == [StoreStatus.created, None, None, StoreStatus.created]
    assert results[1].error is not None and "broken.json" in results[1].error and "JSON" in results[1].error
    assert results[2].error is not None and "missing.json: file not found" in results[2].error
    assert results[0].as_json()["format"] == results[0].format and results[0].call_id
    with unit_of_work(ctx.session_factory) as session:
        assert count_by_state(session)[CallState.queued.value] == 2
    again = ingest_files(ctx, files[:1], tenant="acme", actor=Actor("test"))
    assert again[0].status == StoreStatus.unchanged and again[0].call_id == results[0].call_id


def test_a_refusal_names_its_file_and_a_dangling_link_is_reported(sqlite_url: str, tmp_path: Path) -> None:
    # Two files of one name in two folders give one external id: the second is refused, and the line must
    # say which file it was. A transcript-named link to nothing is reported, not skipped in silence.
    for folder, line in (("a", "Customer: my card was charged twice."), ("b", "Customer: I want a refund.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "call.txt").write_text(f"Agent: Thanks for calling, how can I help?\n{line}\n")
    (tmp_path / "gone.json").symlink_to(tmp_path / "nowhere.json")
    ctx = AppContext(Settings(database_url=sqlite_url))
    files = expand_paths([tmp_path])
    assert files == [tmp_path / "a" / "call.txt", tmp_path / "b" / "call.txt", tmp_path / "gone.json"]
    results = ingest_files(ctx, files, tenant="acme", actor=Actor("test"))
    assert results[0].status is StoreStatus.created
    assert results[1].error is not None and results[1].error.startswith(f"{tmp_path / 'b' / 'call.txt'}: ")
    assert f"is also {tmp_path / 'a' / 'call.txt'}'s in this run" in results[1].error  # not one call
    assert results[2].error is not None and "gone.json" in results[2].error


def _harper_valley_calls(count: int) -> list[dict[str, object]]:
    """Real Harper Valley bank calls as native calls without an id (their human transcripts, in seconds)."""
    folder = require_shared_data("harper_valley_bank", "transcript")
    calls = []
    for path in sorted(folder.glob("*.json"))[:count]:
        segments = json.loads(path.read_text(encoding="utf-8"))
        calls.append({"utterances": [
            {"speaker": s["speaker_role"], "text": s["human_transcript"], "start": s["start_ms"] / 1000}
            for s in sorted(segments, key=lambda s: s["start_ms"]) if s["human_transcript"].strip()
        ]})
    return calls


def test_ids_of_calls_without_one_do_not_follow_their_place_in_the_file(sqlite_url: str, tmp_path: Path) -> None:
    # `calls-3` / `calls-line4` shifted when a call or a blank line was inserted: --replace then overwrote
    # another conversation's stored call. The id is the file's name and a hash of what the call says.
    first, second, third = _harper_valley_calls(3)
    ctx = AppContext(Settings(database_url=sqlite_url))
    batch, stream = tmp_path / "batch.json", tmp_path / "stream.ndjson"
    batch.write_text(json.dumps([first, second]), encoding="utf-8")
    stream.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n", encoding="utf-8")
    before = ingest_files(ctx, [batch, stream], tenant="acme", actor=Actor("test"))
    assert [r.status for r in before] == [StoreStatus.created] * 4
    ids = [r.external_id for r in before]
    assert all(re.fullmatch(r"(batch|stream)-[0-9a-f]{10}", str(i)) for i in ids)
    assert ids[0].removeprefix("batch-") == ids[2].removeprefix("stream-")  # type: ignore[union-attr]

    batch.write_text(json.dumps([third, first, second], indent=2), encoding="utf-8")
    stream.write_text("\n" + json.dumps(third) + "\n\n" + json.dumps(first) + "\n" + json.dumps(second) + "\n",
                      encoding="utf-8")
    after = ingest_files(ctx, [batch, stream], tenant="acme", actor=Actor("test"), replace=True)
    assert [r.status for r in after] == [StoreStatus.created, StoreStatus.unchanged, StoreStatus.unchanged] * 2
    assert [r.external_id for r in after if r.status is StoreStatus.unchanged] == ids
