"""Load a PostgreSQL database with synthetic calls for the analyst benchmarks (export memory, view and
dashboard latency at scale).

    python -m bench.analysts.load --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench --calls 150000

Creates the database if missing, migrates it, and fills two tenants (90% / 10% of the calls) server-side
with generate_series, so a million calls take minutes, not hours. Shape per call: 6 utterances, one
succeeded run (every 10th call has an older succeeded run too, so `is_current` has work to do; every 50th
run failed), `--claims-per-call` claims (summary, reason, outcome, action items) with one evidence span
each, due phrases with resolved dates on action items, an owner name on some, review decisions on every
5th call. The text is synthetic; the shape and the indexes are the real schema's.

A new database is migrated up to the revision before the first trigger-kept counters (0009), loaded,
then migrated to the head, whose migrations fill the counters (0009) and the rollups (0011) from the
loaded rows in one pass each; the time of that is printed. Loading under the triggers is not an option:
0009's row trigger updates one of 24 counter rows per inserted call, in the one transaction of the
INSERT, so each update walks the row's ever longer chain of versions (the calls step had not finished
after 15 minutes at 1M calls).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psycopg
from alembic.script import ScriptDirectory
from sqlalchemy import make_url

from app.db.migrate import alembic_config, upgrade

STATES = ["ready_for_review", "needs_attention", "approved", "rejected", "ready_for_review", "approved", "failed"]
DUE_PHRASES = [
    ("within 5 business days", 7), ("by Friday", 3), ("tomorrow", 1), ("end of the month", 20), ("today", 0),
    ("in a few days", None), ("within 24 hours", 1), ("next week", 9),
]  # fmt: skip
FIRST_COUNTERS_REVISION = "0009"  # the first revision with triggers that count inserted rows
MODELS = [("gpt-4o-mini", "extract-v1"), ("gpt-4o-mini", "extract-v2"), ("heuristic-v2", "extract-v1")]


TENANT_COPIES = ("claims", "extraction_runs", "evidence")  # tables that copy their call's tenant


def tables_with_tenant(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """Which of TENANT_COPIES have their tenant_id column in the schema the rows go into (claims since 0015,
    runs and evidence since 0025); a database loaded before gets the column filled by that revision's
    upgrade, from the row's call or claim."""
    found = conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
                         "AND column_name = 'tenant_id' AND table_name = ANY(%s)", (list(TENANT_COPIES),))
    return frozenset(str(row[0]) for row in found)


def _statements(calls: int, claims_per_call: int, *, with_tenant: frozenset[str]) -> list[tuple[str, str]]:
    states = "ARRAY[" + ",".join(f"'{s}'" for s in STATES) + "]"
    phrases = "ARRAY[" + ",".join(f"'{p}'" for p, _ in DUE_PHRASES) + "]"
    offsets = "ARRAY[" + ",".join("NULL" if o is None else str(o) for _, o in DUE_PHRASES) + "]::int[]"
    models = "ARRAY[" + ",".join(f"'{m}'" for m, _ in MODELS) + "]"
    prompts = "ARRAY[" + ",".join(f"'{p}'" for _, p in MODELS) + "]"
    kinds = "ARRAY['summary','reason','outcome','action_item','action_item','action_item','action_item','summary']"

    def tenant(table: str, value: str) -> str:
        """The tenant column (or its value) followed by a comma, where `table` has the column."""
        return f"{value}, " if table in with_tenant else ""

    return [
        ("tenants", """
            INSERT INTO tenants (slug, created_at, time_zone) VALUES
            ('bench-main', now(), 'America/New_York'), ('bench-other', now(), 'Europe/Berlin')
            ON CONFLICT (slug) DO NOTHING"""),
        ("calls", f"""
            INSERT INTO calls (id, tenant_id, external_id, agent_id, team, started_at, language, source_format,
                               transcript_hash, state, state_changed_at, attempts, created_at)
            SELECT md5('call' || g), CASE WHEN g % 10 = 0 THEN t2.id ELSE t1.id END, 'ext-' || g,
                   'agent-' || (g % 400), 'team-' || (g % 12),
                   now() - interval '180 days' + g * (interval '180 days' / {calls}), 'en', 'native',
                   md5('hash' || g), ({states})[1 + g % 7], now(), 1,
                   now() - interval '180 days' + g * (interval '180 days' / {calls}) + interval '5 minutes'
            FROM generate_series(1, {calls}) g, tenants t1, tenants t2
            WHERE t1.slug = 'bench-main' AND t2.slug = 'bench-other'"""),
        ("utterances", f"""
            INSERT INTO utterances (call_id, index, speaker, role, role_confidence, start_s, end_s, text)
            SELECT md5('call' || g), u, CASE WHEN u % 2 = 0 THEN 'Agent' ELSE 'Customer' END,
                   CASE WHEN u % 2 = 0 THEN 'agent' ELSE 'customer' END, 1.0, u * 5, u * 5 + 4,
                   'Synthetic utterance ' || u || ' of call ' || g || ', about an order and a refund.'
            FROM generate_series(1, {calls}) g, generate_series(0, 5) u"""),
        ("older runs", f"""
            INSERT INTO extraction_runs (call_id, {tenant("extraction_runs", "tenant_id")}idempotency_key, provider,
                                         model, prompt_version, transcript_hash,
                                         status, prompt_tokens, completion_tokens, cached_tokens, cost_usd,
                                         llm_calls, queue_wait_ms, llm_ms, verify_ms, db_ms, total_ms,
                                         started_at, finished_at)
            SELECT md5('call' || g), {tenant("extraction_runs", "c.tenant_id")}md5('old' || g), 'openai',
                   'gpt-4o-mini', 'extract-v0', md5('hash' || g),
                   'succeeded', 900, 200, 0, 0.0003, 1, 40, 1800, 3, 8, 1860,
                   c.started_at + interval '1 minute', c.started_at + interval '2 minutes'
            FROM generate_series(1, {calls}) g JOIN calls c ON c.id = md5('call' || g)
            WHERE g % 10 = 3"""),
        ("runs", f"""
            INSERT INTO extraction_runs (call_id, {tenant("extraction_runs", "tenant_id")}idempotency_key, provider,
                                         model, prompt_version, transcript_hash,
                                         status, error, prompt_tokens, completion_tokens, cached_tokens, cost_usd,
                                         llm_calls, queue_wait_ms, llm_ms, verify_ms, db_ms, total_ms,
                                         started_at, finished_at)
            SELECT md5('call' || g), {tenant("extraction_runs", "c.tenant_id")}md5('run' || g),
                   CASE WHEN g % 3 = 2 THEN 'heuristic' ELSE 'openai' END, ({models})[1 + g % 3],
                   ({prompts})[1 + g % 3], md5('hash' || g),
                   CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
                   CASE WHEN g % 50 = 0 THEN 'model returned invalid JSON twice' END,
                   1000 + g % 500, 250 + g % 100, g % 300, 0.0004 + (g % 7) * 0.00001, 1,
                   20 + g % 90, 1500 + g % 900, 2 + g % 5, 6 + g % 9, 1600 + g % 1000,
                   c.started_at + interval '3 minutes', c.started_at + interval '4 minutes'
            FROM generate_series(1, {calls}) g JOIN calls c ON c.id = md5('call' || g)"""),
        ("current runs", """
            UPDATE calls SET current_run_id = latest.run_id
            FROM (SELECT call_id, MAX(id) AS run_id FROM extraction_runs WHERE status = 'succeeded'
                  GROUP BY call_id) latest
            WHERE latest.call_id = calls.id"""),
        ("claims", f"""
            INSERT INTO claims (run_id, call_id, {tenant("claims", "tenant_id")}position, kind, text, owner,
                                owner_name, due, due_date, grounding_status, grounding_reason, review_status, origin,
                                created_at)
            SELECT r.id, r.call_id, {tenant("claims", "c.tenant_id")}p, ({kinds})[1 + p % 8],
                   CASE ({kinds})[1 + p % 8]
                     WHEN 'reason' THEN (ARRAY['Refund for a damaged order','Lost card','Billing dispute',
                                               'Change of address','Outage report'])[1 + r.id % 5]
                     ELSE 'Synthetic statement ' || p || ' of run ' || r.id END,
                   CASE WHEN ({kinds})[1 + p % 8] = 'action_item'
                        THEN (ARRAY['agent','customer','agent','other'])[1 + (r.id + p) % 4] END,
                   CASE WHEN ({kinds})[1 + p % 8] = 'action_item' AND (r.id + p) % 6 = 0
                        THEN (ARRAY['the returns team','Maria','the billing department'])[1 + r.id % 3] END,
                   CASE WHEN ({kinds})[1 + p % 8] = 'action_item' THEN ({phrases})[1 + (r.id + p) % 8] END,
                   CASE WHEN ({kinds})[1 + p % 8] = 'action_item'
                        THEN CAST(r.started_at AS date) + ({offsets})[1 + (r.id + p) % 8] END,
                   CASE WHEN (r.id + p) % 23 = 0 THEN 'ungrounded' ELSE 'grounded' END,
                   CASE WHEN (r.id + p) % 23 = 0 THEN 'quote_not_found' END,
                   CASE WHEN r.id % 5 = 0 THEN (ARRAY['approved','edited','rejected','approved'])[1 + p % 4]
                        ELSE 'pending' END,
                   'model', r.finished_at
            FROM extraction_runs r JOIN calls c ON c.id = r.call_id, generate_series(0, {claims_per_call - 1}) p
            WHERE r.status = 'succeeded'"""),
        ("evidence", f"""
            INSERT INTO evidence (claim_id, {tenant("evidence", "tenant_id")}position, cited_utterance,
                                  utterance_index, char_start, char_end, quote, status, score, reason)
            SELECT cl.id, {tenant("evidence", "cl.tenant_id")}0, cl.position % 6, cl.position % 6, 0, 20,
                   'Synthetic utterance',
                   CASE WHEN cl.grounding_status = 'grounded' THEN 'exact' ELSE 'ungrounded' END,
                   CASE WHEN cl.grounding_status = 'grounded' THEN 1.0 ELSE 0.3 END, cl.grounding_reason
            FROM claims cl"""),
        ("review events", """
            INSERT INTO review_events (tenant_id, call_id, claim_id, actor_user_id, actor_name, action, before,
                                       after, created_at)
            SELECT c.tenant_id, cl.call_id, cl.id, NULL, 'supervisor-' || (c.tenant_id), 'claim_' || cl.review_status,
                   NULL, NULL, cl.created_at + interval '1 hour'
            FROM claims cl JOIN calls c ON c.id = cl.call_id
            WHERE cl.review_status <> 'pending'"""),
        # What autovacuum would have done by the time analysts query: statistics, and visibility maps
        # so index-only scans (the utterance count of analytics_calls) skip the heap.
        ("vacuum", "VACUUM ANALYZE"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the PostgreSQL database to fill")
    parser.add_argument("--calls", type=int, default=150_000)
    parser.add_argument("--claims-per-call", type=int, default=7)
    args = parser.parse_args()
    url = make_url(args.url)
    admin = f"host={url.host or '127.0.0.1'} port={url.port or 5432} user={url.username or 'postgres'} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{url.database}"')
    script = ScriptDirectory.from_config(alembic_config(args.url))
    before_counters = script.get_revision(FIRST_COUNTERS_REVISION).down_revision
    assert isinstance(before_counters, str)
    upgrade(args.url, before_counters)  # a no-op when the database is already past it
    dsn = admin.replace("dbname=postgres", f"dbname={url.database}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, sql in _statements(args.calls, args.claims_per_call, with_tenant=tables_with_tenant(conn)):
            started = time.perf_counter()
            cursor = conn.execute(sql)
            print(f"{name:<14} {cursor.rowcount:>11,} rows  {time.perf_counter() - started:7.1f} s", flush=True)
    started = time.perf_counter()
    upgrade(args.url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"{'migrate to head':<14} (counters, rollups backfilled)  {time.perf_counter() - started:7.1f} s", flush=True)


if __name__ == "__main__":
    main()
