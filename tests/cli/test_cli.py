"""CLI tests: every command, its JSON shapes, exit codes and bad-input handling (on SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()

GOOD_CALL = """\
[00:01] Agent: Thank you for calling Contoso Mobile, this is Sam. How can I help you?
[00:05] Customer: My internet has been down since this morning and I work from home.
[00:12] Agent: I'm sorry about that. There is an outage in your area.
[00:18] Agent: I will send you a text message as soon as service is restored.
[00:25] Agent: I'll also apply a credit of $15 to your next bill.
[00:31] Customer: Thank you, please do.
"""


def _use_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from app.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def migrated() -> None:
    code, _, err = _invoke("db", "upgrade")
    assert code == 0, err


@pytest.fixture
def call_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "outage-17.txt").write_text(GOOD_CALL, encoding="utf-8")
    return folder


def test_db_upgrade_reports_revision(migrated: None) -> None:
    code, out, _ = _invoke("db", "upgrade")
    assert code == 0
    assert "head" in out


def test_ingest_stores_and_names_call_from_file(migrated: None, call_dir: Path) -> None:
    code, out, err = _invoke("ingest", str(call_dir), "--no-enqueue", "--json")
    assert code == 0, err
    files = json.loads(out)["files"]
    assert [f["external_id"] for f in files] == ["outage-17"]
    assert files[0]["format"] == "text" and files[0]["status"] == "created"
    # Identical re-ingest: a no-op that says so.
    code, out, _ = _invoke("ingest", str(call_dir), "--no-enqueue", "--json")
    assert code == 0 and json.loads(out)["files"][0]["status"] == "unchanged"


def test_ingest_changed_content_needs_replace(migrated: None, call_dir: Path) -> None:
    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    (call_dir / "outage-17.txt").write_text(GOOD_CALL + "[00:40] Agent: Goodbye!\n", encoding="utf-8")
    code, _, err = _invoke("ingest", str(call_dir), "--no-enqueue")
    assert code == 1
    assert "--replace" in err
    code, out, _ = _invoke("ingest", str(call_dir), "--no-enqueue", "--replace", "--json")
    assert code == 0 and json.loads(out)["files"][0]["status"] == "replaced"


def test_two_files_named_alike_in_one_run_are_not_one_call(migrated: None, call_dir: Path) -> None:
    # Recorders name files alike in dated folders: the second file became the first call's "changed
    # content", and the advised --replace deleted the first call.
    (call_dir / "05-02").mkdir()
    (call_dir / "05-02" / "outage-17.txt").write_text(GOOD_CALL + "[00:40] Agent: Goodbye!\n", encoding="utf-8")
    for replace in ((), ("--replace",)):
        code, out, _ = _invoke("ingest", str(call_dir), "--no-enqueue", "--json", *replace)
        assert code == 1
        files = {f["file"]: f for f in json.loads(out)["files"]}
        first, second = files[str(call_dir / "05-02" / "outage-17.txt")], files[str(call_dir / "outage-17.txt")]
        assert first["status"] in {"created", "unchanged"} and second["call_id"] is None
        assert "is also" in second["error"] and "file names" in second["error"]
    code, out, _ = _invoke("show", "outage-17", "--json")
    assert code == 0 and "Goodbye" in out  # the call stored first is the one kept, twice


def test_an_id_from_a_file_name_says_so_before_replace_overwrites(migrated: None, call_dir: Path) -> None:
    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    (call_dir / "outage-17.txt").write_text(GOOD_CALL + "[00:40] Agent: Goodbye!\n", encoding="utf-8")
    code, _, err = _invoke("ingest", str(call_dir), "--no-enqueue")
    assert code == 1 and "the id is this file's name" in err and "--replace would overwrite" in err


def test_batch_with_bad_file_stores_good_ones_and_exits_nonzero(migrated: None, call_dir: Path) -> None:
    (call_dir / "broken.json").write_text('{"utterances": [{"speaker": "Agent", "text": "hi"', encoding="utf-8")
    code, out, _ = _invoke("ingest", str(call_dir), "--no-enqueue", "--json")
    assert code == 1
    files = {Path(f["file"]).name: f for f in json.loads(out)["files"]}
    assert files["outage-17.txt"]["call_id"]
    assert files["broken.json"]["call_id"] is None
    assert "broken.json" in files["broken.json"]["error"]
    code, out, _ = _invoke("status", "--json")
    assert json.loads(out)["counts"]["queued"] == 1


def test_process_show_and_status(migrated: None, call_dir: Path) -> None:
    code, out, err = _invoke("process", str(call_dir), "--json")
    assert code == 0, err
    calls = json.loads(out)["calls"]
    assert len(calls) == 1 and calls[0]["state"] in {"ready_for_review", "needs_attention"}

    code, out, _ = _invoke("show", "outage-17", "--json")  # by external id
    assert code == 0
    shown = json.loads(out)
    assert shown["external_id"] == "outage-17" and shown["call_id"] == calls[0]["call_id"]
    assert shown["state"] == calls[0]["state"]
    assert shown["claims"], "the heuristic provider extracted nothing"
    for claim in shown["claims"]:
        assert {"kind", "text", "status", "evidence", "owner", "due"} <= set(claim)
        for ev in claim["evidence"]:
            assert {"utterance", "quote", "status", "char_start", "char_end", "reason"} <= set(ev)
    assert [u["index"] for u in shown["utterances"]] == list(range(6))
    assert {"index", "speaker", "role", "role_confidence", "start", "end", "text"} <= set(shown["utterances"][0])

    code, out, _ = _invoke("show", calls[0]["call_id"])  # by call id, human output
    assert code == 0 and "outage-17" in out

    code, out, _ = _invoke("status", "--json")
    counts = json.loads(out)["counts"]
    assert counts[calls[0]["state"]] == 1 and sum(counts.values()) == 1


def test_show_unknown_call(migrated: None) -> None:
    code, _, err = _invoke("show", "nope")
    assert code == 1 and "nope" in err


@pytest.fixture
def transcript_file(tmp_path: Path) -> Path:
    path = tmp_path / "call.txt"
    path.write_text(GOOD_CALL, encoding="utf-8")
    return path


def _extraction(tmp_path: Path, quote: str, text: str = "Agent will text when service is restored.") -> Path:
    path = tmp_path / "extraction.json"
    path.write_text(json.dumps({
        "summary": [{"text": "Customer's internet is down.", "evidence": [
            {"utterance": 1, "quote": "My internet has been down since this morning"}]}],
        "action_items": [{"text": text, "owner": "agent", "due": None,
                          "evidence": [{"utterance": 3, "quote": quote}]}],
    }), encoding="utf-8")
    return path


def test_verify_grounded_exits_zero(transcript_file: Path, tmp_path: Path) -> None:
    extraction = _extraction(tmp_path, "I will send you a text message as soon as service is restored.")
    code, out, err = _invoke("verify", str(transcript_file), str(extraction), "--json")
    assert code == 0, err
    claims = json.loads(out)["claims"]
    assert [c["status"] for c in claims] == ["grounded", "grounded"]
    ev = claims[1]["evidence"][0]
    assert ev["status"] == "exact" and ev["utterance"] == 3
    assert GOOD_CALL.splitlines()[3].split(": ", 1)[1][ev["char_start"] : ev["char_end"]] == ev["quote"]


def test_verify_fabricated_and_changed_number_exit_one(transcript_file: Path, tmp_path: Path) -> None:
    extraction = _extraction(
        tmp_path, "I'll also apply a credit of $50 to your next bill.", "Agent applies a $50 credit."
    )
    code, out, _ = _invoke("verify", str(transcript_file), str(extraction), "--json")
    assert code == 1
    claim = json.loads(out)["claims"][1]
    assert claim["status"] == "ungrounded"
    assert claim["evidence"][0]["status"] == "ungrounded"
    assert claim["evidence"][0]["reason"] in {"number_mismatch", "amount_mismatch"}


def test_verify_rejects_invalid_extraction(transcript_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"summary": [{"evidence": []}]}), encoding="utf-8")
    code, _, err = _invoke("verify", str(transcript_file), str(bad))
    assert code == 2
    assert "summary.0.text" in err


@pytest.mark.parametrize("document", [{}, {"foo": 1}, {"utterances": [{"speaker": "A", "text": "hi"}]}])
def test_verify_refuses_a_document_with_no_statement(transcript_file: Path, tmp_path: Path,
                                                     document: dict[str, object]) -> None:
    # Any JSON object parses (every field is optional): "0/0 grounded", exit 0, passed a gate on garbage.
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document), encoding="utf-8")
    code, _, err = _invoke("verify", str(transcript_file), str(other))
    assert code == 2 and "holds no statement" in err


def test_verify_rejects_bad_transcript(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    code, _, err = _invoke("verify", str(empty), str(_extraction(tmp_path, "x")))
    assert code == 2 and "empty.txt" in err


def test_demo_processes_every_sample(samples_dir: Path) -> None:
    code, out, err = _invoke("demo")
    assert code == 0, err
    sample_count = len([p for p in samples_dir.iterdir() if p.suffix in {".json", ".txt"}])
    assert sample_count >= 8
    assert f"{sample_count} sample calls processed offline + 1 through the openai provider" in out
    assert "Action items" in out and "exact" in out
    # The safeguard: the scripted model's invented $25 fee is printed as unverified.
    assert "UNVERIFIED The customer was charged a $25 fee" in " ".join(out.split())
    # Running it again is idempotent: same calls, no duplicates.
    code, out, _ = _invoke("demo")
    assert code == 0 and f"{sample_count} sample calls processed" in out
    code, out, _ = _invoke("status", "--json")
    counts = json.loads(out)["counts"]
    assert sum(counts.values()) == sample_count + 1
    assert counts["needs_attention"] == 1


def test_retry_requeues_failed_calls(migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import update

    from app.config import get_settings
    from app.db.session import get_engine
    from app.models import Call, CallState

    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    with get_engine(get_settings().database_url).begin() as conn:
        conn.execute(update(Call).values(state=CallState.failed, last_error="boom"))
    # Unreachable broker: the calls are still requeued in the database, and the command says so.
    _use_env(monkeypatch, POSTCALL_BROKER_URL="redis://127.0.0.1:1/0")
    code, out, err = _invoke("retry", "--json")
    assert len(json.loads(out)["requeued"]) == 1
    assert code == 1 and "reconcile" in err
    code, out, _ = _invoke("status", "--json")
    assert json.loads(out)["counts"]["queued"] == 1


def test_retry_requeues_every_failed_call_once(
    migrated: None, samples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from app.config import get_settings
    from app.db.session import get_engine
    from app.models import Call, CallState

    assert _invoke("ingest", str(samples_dir), "--no-enqueue")[0] == 0
    with get_engine(get_settings().database_url).begin() as conn:
        failed = conn.execute(update(Call).values(state=CallState.failed, last_error="boom")).rowcount
    assert failed >= 5
    _use_env(monkeypatch, POSTCALL_BROKER_URL="redis://127.0.0.1:1/0")
    code, out, _ = _invoke("retry", "--json")
    requeued = json.loads(out)["requeued"]
    assert len(requeued) == len(set(requeued)) == failed  # each call once (chunks: tests/pipeline/test_reconcile.py)
    assert code == 1  # the broker is down: they wait in the database for the reconciler
    code, out, _ = _invoke("status", "--json")
    assert code == 0 and json.loads(out)["counts"]["queued"] == failed


def test_reconcile_requeues_stuck_calls(migrated: None, call_dir: Path) -> None:
    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    code, out, _ = _invoke("reconcile", "--stuck-after", "3600", "--json")
    assert code == 0 and json.loads(out)["requeued"] == []  # fresh call: not stuck yet


def test_health_reports_each_check(migrated: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_env(monkeypatch, POSTCALL_BROKER_URL="redis://127.0.0.1:1/0")
    code, out, _ = _invoke("health", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert checks["database"]["ok"] is True
    assert checks["broker"]["ok"] is False
    assert checks["provider"]["ok"] is True


def test_health_fails_when_batch_calls_wait_for_a_provider_without_a_batch_api(
    migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider switched away from openai with batch-mode calls queued: no collector sends them and no
    # worker takes them, while health said the offline provider was fine.
    with monkeypatch.context() as batch_time:
        _use_env(batch_time, POSTCALL_LLM_PROVIDER="openai", OPENAI_API_KEY="sk-test")
        assert _invoke("ingest", str(call_dir), "--mode", "batch", "--no-enqueue")[0] == 0
    _use_env(monkeypatch, POSTCALL_LLM_PROVIDER="heuristic")
    code, out, _ = _invoke("health", "--json")
    provider = {c["name"]: c for c in json.loads(out)["checks"]}["provider"]
    assert code == 1 and provider["ok"] is False
    assert provider["detail"].startswith("1 batch-mode calls wait") and "--mode sync" in provider["detail"]
    assert _invoke("retry", "--state", "queued", "--mode", "sync")[0] == 0
    code, out, _ = _invoke("health", "--json")
    assert {c["name"]: c for c in json.loads(out)["checks"]}["provider"]["ok"] is True


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://:SuperS3cret@127.0.0.1:1/0", "ConnectionError"),
    ("redis://127.0.0.1:6379/abc", "must be a number"),  # redis-py reads it; Celery's transport refuses it
])
def test_health_names_the_broker_problem_without_its_password(
    migrated: None, monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    _use_env(monkeypatch, POSTCALL_BROKER_URL=url)
    code, out, _ = _invoke("health", "--json")
    broker = {c["name"]: c for c in json.loads(out)["checks"]}["broker"]
    assert code == 1 and broker["ok"] is False and problem in broker["detail"]
    assert "SuperS3cret" not in out


def test_health_fails_on_unmigrated_database() -> None:
    code, out, _ = _invoke("health", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1 and checks["database"]["ok"] is False


def test_unknown_provider_is_a_clear_error(migrated: None, call_dir: Path) -> None:
    code, _, err = _invoke("process", str(call_dir), "--provider", "gpt-magic")
    assert code == 2
    assert "gpt-magic" in err and "heuristic" in err


def test_reprocess_with_new_prompt_version_keeps_old_runs(
    migrated: None, call_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from app.config import PROJECT_ROOT

    prompts = tmp_path / "prompts"
    shutil.copytree(PROJECT_ROOT / "prompts" / "extract-v1", prompts / "extract-v1")
    shutil.copytree(PROJECT_ROOT / "prompts" / "extract-v1", prompts / "extract-v2")
    _use_env(monkeypatch, POSTCALL_PROMPTS_DIR=str(prompts))
    assert _invoke("process", str(call_dir))[0] == 0

    # Same prompt, provider and model: nothing to redo.
    code, out, _ = _invoke("reprocess", "--json")
    assert code == 0
    assert [c["skipped"] for c in json.loads(out)["calls"]] == [True]

    code, out, err = _invoke("reprocess", "outage-17", "--prompt-version", "extract-v2", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["calls"]
    assert result["skipped"] is False

    from sqlalchemy import select

    from app.config import get_settings
    from app.db.session import get_engine
    from app.models import ExtractionRun

    with get_engine(get_settings().database_url).connect() as conn:
        versions = conn.execute(select(ExtractionRun.prompt_version).order_by(ExtractionRun.id)).scalars().all()
    assert versions == ["extract-v1", "extract-v2"]
    code, out, _ = _invoke("show", "outage-17", "--json")
    assert json.loads(out)["run"]["prompt_version"] == "extract-v2"

    code, _, err = _invoke("reprocess", "--prompt-version", "extract-v9")
    assert code == 2 and "extract-v9" in err


def test_reprocessing_a_decided_call_reopens_it_with_the_new_result_and_says_so_downstream(
    migrated: None, call_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An approved call extracted again became ready_for_review with only a call.processed event: a receiver
    # following decisions (call.approved/rejected/reopened) kept an approval that no longer stood.
    import shutil

    from sqlalchemy import select

    from app.config import PROJECT_ROOT, get_settings
    from app.db.session import get_engine, make_session_factory, unit_of_work
    from app.models import OutboxEvent, ReviewEvent, UserRole
    from app.pipeline.calls import find_call
    from app.review import CallDecision, decide_call
    from app.users import create_user, principal_of

    prompts = tmp_path / "prompts"
    for version in ("extract-v1", "extract-v2"):
        shutil.copytree(PROJECT_ROOT / "prompts" / "extract-v1", prompts / version)
    _use_env(monkeypatch, POSTCALL_PROMPTS_DIR=str(prompts))
    assert _invoke("process", str(call_dir))[0] == 0
    factory = make_session_factory(get_engine(get_settings().database_url))
    with unit_of_work(factory) as session:
        call = find_call(session, "outage-17")
        call_id, tenant = call.id, get_settings().default_tenant
        supervisor = create_user(session, tenant=tenant, name="sue", role=UserRole.supervisor).user
        decide_call(session, principal_of(supervisor, tenant), call_id, CallDecision.approve)

    def events() -> list[str]:
        with unit_of_work(factory) as session:
            return list(session.scalars(select(OutboxEvent.type).where(OutboxEvent.call_id == call_id)
                                        .order_by(OutboxEvent.id)))

    # Same prompt, provider and model: nothing is redone, so the decision stands.
    code, out, _ = _invoke("reprocess", "outage-17", "--json")
    assert code == 0 and json.loads(out)["calls"][0] == {**json.loads(out)["calls"][0], "skipped": True,
                                                         "reopened": False, "state": "approved"}
    assert events() == ["call.processed", "call.approved"]
    code, out, err = _invoke("reprocess", "outage-17", "--prompt-version", "extract-v2", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["calls"]
    assert result["reopened"] is True and result["skipped"] is False
    assert result["state"] in {"ready_for_review", "needs_attention"}
    assert events() == ["call.processed", "call.approved", "call.reopened", "call.processed"]
    with unit_of_work(factory) as session:
        audit = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == call_id)
                                .order_by(ReviewEvent.id)).all()
        assert [(e.action, e.actor_name) for e in audit][-1] == ("call_reopened", "system")
        assert audit[-1].before == {"state": "approved"}


@pytest.mark.parametrize("command", [["status"], ["show", "x"], ["ingest", "."], ["process", "."], ["retry"]])
def test_unmigrated_database_gets_an_actionable_error(command: list[str]) -> None:
    code, _, err = _invoke(*command)
    assert code == 2
    assert "postcall db upgrade" in err


def _stuck_rows(count: int) -> list[str]:
    """`count` calls of the default tenant (beside the ingested one), queued two hours ago: past the timeout."""
    from datetime import timedelta

    from sqlalchemy import insert, select

    from app.config import get_settings
    from app.db.session import get_engine
    from app.models import Call, CallState
    from app.models.tables import utcnow

    long_ago = utcnow() - timedelta(hours=2)
    with get_engine(get_settings().database_url).begin() as conn:
        tenant_id = conn.scalar(select(Call.tenant_id).limit(1))
        rows = [{"id": f"stuck-{n:05d}", "tenant_id": tenant_id, "external_id": f"stuck-{n:05d}",
                 "source_format": "json", "transcript_hash": f"{n:064d}", "state": CallState.queued,
                 "state_changed_at": long_ago, "attempts": 1, "created_at": long_ago} for n in range(count)]
        conn.execute(insert(Call), rows)
    return [row["id"] for row in rows]


def test_reconcile_requeues_every_stuck_call_not_only_the_first_chunk(
    migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    from app.pipeline.reconcile import RECONCILE_BATCH
    from tests.support.services import redis_url

    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    stuck = _stuck_rows(2 * RECONCILE_BATCH + 1)
    broker = redis_url(11)
    redis.Redis.from_url(broker).flushdb()
    _use_env(monkeypatch, POSTCALL_BROKER_URL=broker)
    code, out, _ = _invoke("reconcile", "--json")
    assert code == 0
    assert json.loads(out) == {"requeued": stuck, "enqueued": True}  # oldest first: here, id order
    assert redis.Redis.from_url(broker).llen("postcall") == len(stuck)
    redis.Redis.from_url(broker).flushdb()


def test_reconcile_stops_at_the_first_chunk_the_broker_refuses(
    migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.pipeline.reconcile import RECONCILE_BATCH

    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    stuck = _stuck_rows(RECONCILE_BATCH + 10)
    _use_env(monkeypatch, POSTCALL_BROKER_URL="redis://127.0.0.1:1/0")
    code, out, err = _invoke("reconcile", "--json")
    assert code == 1 and "reconcile" in err
    assert json.loads(out)["requeued"] == stuck[:RECONCILE_BATCH]
    # The rest were never claimed: still stuck, the next pass takes them (still refused: the broker is down).
    code, out, _ = _invoke("reconcile", "--json")
    assert code == 1 and json.loads(out)["requeued"] == stuck[RECONCILE_BATCH:]


def test_reconcile_refuses_a_negative_timeout(migrated: None) -> None:
    code, _, err = _invoke("reconcile", "--stuck-after", "-1")
    assert code == 2 and "--stuck-after" in err and "greater than or equal to" in err


def test_a_rerun_hands_over_calls_an_earlier_run_stored_but_never_enqueued(
    migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ingest interrupted before its enqueue (or run while the broker was down) left its calls queued
    # with no message; rerunning it found them "unchanged" and left them for the reconciler's timeout.
    import redis

    from tests.support.services import redis_url

    assert _invoke("ingest", str(call_dir), "--no-enqueue")[0] == 0
    broker = redis_url(11)
    redis.Redis.from_url(broker).flushdb()
    _use_env(monkeypatch, POSTCALL_BROKER_URL=broker)
    code, out, _ = _invoke("ingest", str(call_dir), "--json")
    files = json.loads(out)["files"]
    assert code == 0 and {f["status"] for f in files} == {"unchanged"}
    assert json.loads(out)["enqueued"] is True
    assert redis.Redis.from_url(broker).llen("postcall") == len(files)
    redis.Redis.from_url(broker).flushdb()


def test_health_and_ingest_name_a_full_broker(migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Redis at maxmemory with noeviction answers PING and refuses writes: health said "reachable" (exit 0)
    # and ingest "could not reach the broker".
    from tests.support.private_redis import PrivateRedis

    broker = PrivateRedis()
    broker.start()
    try:
        broker.fill()
        _use_env(monkeypatch, POSTCALL_BROKER_URL=broker.url(0))
        code, out, _ = _invoke("health", "--json")
        checks = {c["name"]: c for c in json.loads(out)["checks"]}
        assert code == 1 and checks["broker"]["ok"] is False and "out of memory" in checks["broker"]["detail"]
        code, _, err = _invoke("ingest", str(call_dir))
        assert code == 0 and "the broker refused the calls" in err  # stored; the reconciler hands them over
    finally:
        broker.stop()


def test_metrics_show_a_full_broker(migrated: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from app.config import get_settings
    from app.metrics import render_latest
    from tests.support.private_redis import PrivateRedis

    broker = PrivateRedis()
    broker.start()
    try:
        _use_env(monkeypatch, POSTCALL_BROKER_URL=broker.url(0))

        def full() -> float:
            body, _ = render_latest(get_settings())
            families = {family.name: family for family in text_string_to_metric_families(body.decode())}
            return families["postcall_broker_full"].samples[0].value

        assert full() == 0
        broker.fill()
        assert full() == 1
    finally:
        broker.stop()


def test_retry_moves_calls_waiting_for_a_batch_to_sync_mode(
    migrated: None, call_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no batch coming (the provider switched, a lost Batch API) batch-mode calls waited for ever:
    # `retry` said they were re-enqueued, and the workers left them to the batch collector.
    with monkeypatch.context() as batch_time:
        _use_env(batch_time, POSTCALL_LLM_PROVIDER="openai", OPENAI_API_KEY="sk-test")
        code, out, err = _invoke("ingest", str(call_dir), "--mode", "batch", "--no-enqueue", "--json")
    assert code == 0, err
    call_id = json.loads(out)["files"][0]["call_id"]
    code, _, err = _invoke("retry", "--state", "queued", "--mode", "sync")
    assert code == 0, err
    code, out, _ = _invoke("show", call_id, "--json")
    assert json.loads(out)["llm_mode"] == "sync" and json.loads(out)["llm_batch_id"] is None
    code, _, err = _invoke("retry", "--state", "queued", "--mode", "bulk")
    assert code == 2 and "bulk" in err


def test_one_file_named_twice_in_a_run_is_one_call_not_a_clash(migrated: None, call_dir: Path) -> None:
    (path,) = list(call_dir.iterdir())
    code, out, err = _invoke("ingest", str(call_dir), str(path), "--no-enqueue", "--json")
    assert code == 0, err
    statuses = [f["status"] for f in json.loads(out)["files"]]
    assert statuses == ["created", "unchanged"]


def test_ingest_lists_skipped_files_names_each_warnings_file_and_totals(migrated: None, call_dir: Path) -> None:
    # Files of other extensions were left out in silence (exit 0), warnings named no file, and nothing
    # summed the run up.
    (call_dir / "MONO[bold].TXT").write_text("Agent: Thank you for calling.\nAgent: Goodbye.\n", encoding="utf-8")
    (call_dir / "archive.json.gz").write_bytes(b"\x1f\x8b")
    (call_dir / "notes.log").write_text("Agent: hi\n", encoding="utf-8")
    (call_dir / "broken.json").write_text('{"utterances": [', encoding="utf-8")
    code, out, err = _invoke("ingest", str(call_dir), "--no-enqueue")
    assert code == 1
    assert f"skipped: {call_dir / 'archive.json.gz'}: compressed (.gz)" in err
    assert f"skipped: {call_dir / 'notes.log'}: extension .log is not read" in err
    # Each warning names its file, escaped: the markup in the name is printed as text.
    assert f"warning: {call_dir / 'MONO[bold].TXT'}: only one speaker label" in err
    assert "3 files: 2 stored, 0 replaced, 0 updated, 0 unchanged, 1 failed; 2 skipped" in out
    code, out, _ = _invoke("ingest", str(call_dir), "--no-enqueue", "--json")
    document = json.loads(out)
    assert {Path(s["file"]).name: s["reason"][:10] for s in document["skipped"]} == {
        "archive.json.gz": "compressed", "notes.log": "extension ",
    }
    assert [f["status"] for f in document["files"]] == ["unchanged", None, "unchanged"]
    code, out, err = _invoke("ingest", str(call_dir / "notes.log"), "--no-enqueue")  # named: read as given
    assert code == 0 and "1 file: 1 stored, 0 replaced, 0 updated, 0 unchanged, 0 failed; 0 skipped" in out, err


def test_ingest_help_says_which_extensions_a_folder_is_read_for() -> None:
    code, out, _ = _invoke("ingest", "--help")
    assert code == 0
    assert all(word in out for word in (".json,", ".txt,", ".vtt,", ".srt", "(.JSON", "README.md", "skipped"))


def test_process_says_a_call_already_processed_was_skipped_and_counts_nothing_for_it(
    migrated: None, call_dir: Path
) -> None:
    # The second run reported "claims": 0, "ungrounded": 0: made-up counts of a call it did not extract.
    code, out, err = _invoke("process", str(call_dir), "--json")
    assert code == 0, err
    [first] = json.loads(out)["calls"]
    assert first["skipped"] is False and first["claims"] > 0 and first["run_id"]
    code, out, err = _invoke("process", str(call_dir), "--json")
    assert code == 0, err
    [again] = json.loads(out)["calls"]
    assert again["skipped"] is True and again["claims"] is None and again["ungrounded"] is None
    assert again["run_id"] == first["run_id"] and again["state"] == first["state"]
    code, out, err = _invoke("process", str(call_dir))
    assert code == 0, err
    assert "(already processed: not extracted again)" in " ".join(out.split())
    assert "1 file: 0 stored, 0 replaced, 0 updated, 1 unchanged, 0 failed; 0 skipped" in out
    assert "1 call: 0 extracted, 1 already processed, 0 failed" in out


def test_a_folder_with_nothing_to_read_says_why_each_entry_was_skipped(migrated: None, tmp_path: Path) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "call.json.gz").write_bytes(b"\x1f\x8b")
    for args in ((), ("--json",)):
        code, out, err = _invoke("ingest", str(folder), "--no-enqueue", *args)
        assert code == 2 and out == ""
        assert f"skipped: {folder / 'call.json.gz'}: compressed (.gz)" in err
        assert "no transcript files found" in err and "1 skipped: listed above" in " ".join(err.split())
