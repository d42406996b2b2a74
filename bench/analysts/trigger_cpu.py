"""PostgreSQL CPU the rollup triggers add per processed call.

    python -m bench.analysts.trigger_cpu [--calls 400] [--rounds 4]

Makes a temporary database, stores the sample transcripts again and again under new external ids, and
processes them one after another in-process with the offline heuristic provider, in rounds that
alternate the rollup triggers off (ALTER TABLE ... DISABLE TRIGGER USER) and on, so the box's load falls
on both alike. Per round it reads the CPU the session's PostgreSQL backends spent (utime + stime from
/proc: the server runs on this machine) and reports PostgreSQL CPU per call with and without the
triggers, and the difference: what keeping the rollups costs the database per call (storing the
transcript, processing it and one item decision on it). After each round with the triggers it times the
fold (app/rollups.py) of that round's delta rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from itertools import cycle
from pathlib import Path

from sqlalchemy import select, text

from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.ingest.loader import load_transcript
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Claim, UserRole
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.review import ClaimAction, review_claim
from app.rollups import fold_rollups
from app.users import authenticate, create_user
from tests.support.services import temporary_pg_database

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TABLES = ("calls", "claims", "extraction_runs")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400, help="calls per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per setting (off, on, off, on, ...)")
    args = parser.parse_args()
    settings = get_settings()
    prompt = PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
    transcripts = [load_transcript(path).transcript for path in sorted(SAMPLES.glob("*.json"))]
    per_call: dict[bool, list[float]] = {False: [], True: []}
    with temporary_pg_database() as url:
        from app.db.migrate import upgrade

        upgrade(url)
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        with unit_of_work(factory) as session:
            token = create_user(session, tenant="bench", name="sup", role=UserRole.supervisor).token
        sources = cycle(transcripts)
        number = 0
        for round_number in range(args.rounds * 2):
            triggers = round_number % 2 == 1
            with engine.begin() as conn:
                for table in TABLES:
                    conn.execute(text(f"ALTER TABLE {table} {'ENABLE' if triggers else 'DISABLE'} TRIGGER USER"))
            with engine.connect() as conn:
                pids = {int(pid) for pid in conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()}
            before = backend_cpu_seconds(pids)
            seen = set(pids)
            started = time.process_time()
            for _ in range(args.calls):
                number += 1
                with unit_of_work(factory) as session:
                    call_id = store_transcript(session, next(sources), tenant="bench",
                                               external_id=f"bench-{number}").call_id
                process_call(factory, call_id, HeuristicProvider(), prompt)
                with unit_of_work(factory) as session:
                    principal = authenticate(session, token)
                    assert principal is not None
                    claim_id = session.scalar(select(Claim.id).where(Claim.call_id == call_id).limit(1))
                    if claim_id is not None:
                        review_claim(session, principal, claim_id, ClaimAction.approve)
                with engine.connect() as conn:
                    seen |= {int(pid) for pid in conn.execute(text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()}
            spent = backend_cpu_seconds(seen) - before
            per_call[triggers].append(spent / args.calls * 1000)
            print(f"round {round_number + 1}: triggers {'on ' if triggers else 'off'}  "
                  f"PostgreSQL CPU {spent / args.calls * 1000:6.3f} ms/call  "
                  f"(client CPU {(time.process_time() - started) / args.calls * 1000:.2f} ms/call)  "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            if triggers:
                # What the beat's fold then does with the round's delta rows.
                started_fold = time.perf_counter()
                with unit_of_work(factory) as session:
                    removed = fold_rollups(session)
                print(f"  fold: {removed} rows fewer in {(time.perf_counter() - started_fold) * 1000:.0f} ms",
                      flush=True)
        engine.dispose()
    off, on = statistics.median(per_call[False]), statistics.median(per_call[True])
    print(f"median PostgreSQL CPU per call: triggers off {off:.3f} ms, on {on:.3f} ms, "
          f"rollups cost {on - off:.3f} ms")


if __name__ == "__main__":
    main()
