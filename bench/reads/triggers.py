"""PostgreSQL CPU the counter triggers add per call: the writes of one call's life (claimed, run stored
with its timings, state and flag set, then decided by a reviewer), each step its own transaction, with
the triggers enabled and disabled, on a loaded database. CPU is read from the backend's /proc entry
(the database must run on this machine), so other load on the box does not count.

    python -m bench.reads.triggers --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench_reads --calls 2000

It writes (a run per call, states changed, triggers disabled for a while): use a database of its own
(bench/reads/load.py with a few thousand calls), not one another benchmark reads.
"""

from __future__ import annotations

import argparse
import os

import psycopg
from sqlalchemy import make_url

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime, stime


def _one_call(conn: psycopg.Connection, call_id: str, tenant_id: int, key: str) -> None:
    """The writes of one call's life, each step committed as the worker and the reviewer commit it."""
    with conn.transaction():
        conn.execute("UPDATE calls SET state = 'processing', attempts = attempts + 1, state_changed_at = now() "
                     "WHERE id = %s", (call_id,))
    with conn.transaction():
        run_id = conn.execute(
            "INSERT INTO extraction_runs (call_id, tenant_id, idempotency_key, provider, model, prompt_version, "
            "transcript_hash, status, prompt_tokens, completion_tokens, cached_tokens, cost_usd, llm_calls, "
            "queue_wait_ms, llm_ms, verify_ms, started_at) VALUES (%s, %s, %s, 'openai', 'gpt-4o-mini', "
            "'extract-v1', 'h', 'succeeded', 1000, 250, 0, 0.0004, 1, 30, 1800, 3, now()) RETURNING id",
            (call_id, tenant_id, key),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE extraction_runs SET db_ms = 6, total_ms = 1850 WHERE id = %s", (run_id,))
        conn.execute("UPDATE calls SET state = 'needs_attention', flagged_items = 2, current_run_id = %s, "
                     "state_changed_at = now() WHERE id = %s", (run_id, call_id))
    with conn.transaction():
        conn.execute("UPDATE calls SET state = 'approved', flagged_items = 0, state_changed_at = now() "
                     "WHERE id = %s", (call_id,))


def _set_triggers(dsn: str, enabled: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("calls", "extraction_runs"):
            conn.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER USER")


def _measure(dsn: str, calls: list[tuple[str, int]], *, triggers: bool, label: str) -> float:
    _set_triggers(dsn, triggers)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            started = _backend_cpu_seconds(pid)
            for n, (call_id, tenant_id) in enumerate(calls):
                _one_call(conn, call_id, tenant_id, f"bench-trigger-{label}-{n}")
            return (_backend_cpu_seconds(pid) - started) / len(calls)
    finally:
        _set_triggers(dsn, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = make_url(args.url)
    dsn = (f"host={url.host or '127.0.0.1'} port={url.port or 5432} user={url.username or 'postgres'} "
           f"dbname={url.database}")
    with psycopg.connect(dsn) as conn:
        calls = [(row[0], row[1]) for row in conn.execute("SELECT id, tenant_id FROM calls ORDER BY id LIMIT %s",
                                                          (args.calls,))]
    print(f"load average {os.getloadavg()[0]:.2f}; {len(calls)} calls per round, 5 writes each")
    for round_ in range(args.rounds):
        tag = os.urandom(4).hex()
        without = _measure(dsn, calls, triggers=False, label=f"{tag}-off")
        with_triggers = _measure(dsn, calls, triggers=True, label=f"{tag}-on")
        print(f"round {round_ + 1}: PostgreSQL CPU per call {without * 1000:.3f} ms without triggers, "
              f"{with_triggers * 1000:.3f} ms with: +{(with_triggers - without) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
