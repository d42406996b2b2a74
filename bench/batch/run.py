"""Batch mode's own work on one box: how fast the collector writes and submits a batch file, and how fast
the poller stores a finished batch's answers (the path every answer takes: validation, verification,
persist), against the local fake server's Batch API, which answers every line at once.

    .venv/bin/python -m bench.batch.run --calls 2000

Uses a fresh database on the local PostgreSQL (dropped afterwards). The sample calls in samples/ are
cycled, each stored in batch mode under its own external id. Exit status 1 when a call is not stored
exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from sqlalchemy import func, select

from app.config import PROJECT_ROOT, Settings
from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.ingest import load_transcript
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, CallState, ExtractionRun, LlmBatch, LlmMode, RunStatus
from app.pipeline.batch import collect_batches, poll_batches
from app.pipeline.store import store_transcript
from tests.support.fake_openai import (
    FAKE_API_KEY,
    BatchScript,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    extraction_quoting,
    extraction_reply,
)
from tests.support.services import temporary_pg_database

SAMPLES_DIR = PROJECT_ROOT / "samples"
DONE = (CallState.ready_for_review, CallState.needs_attention)


def quoting(request: RecordedRequest) -> ScriptedReply:
    return extraction_reply(extraction_quoting(request.last_user_text))


def run(calls: int) -> dict[str, object]:
    transcripts = [load_transcript(path).transcript for path in sorted(SAMPLES_DIR.glob("*.*"))
                   if path.suffix in (".json", ".txt")]
    server = FakeOpenAIServer().start()
    server.batch_responder = quoting
    server.responder = lambda request: extraction_reply(extraction_quoting(request.contents("user")[0]))
    os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"] = server.base_url, FAKE_API_KEY
    settings = Settings(llm_provider="openai", openai_model="bench-model", batch_poll_min_interval_seconds=0,
                        batch_poll_max_interval_seconds=0)
    provider = OpenAIProvider(settings)
    prompt = PromptTemplate.load(PROJECT_ROOT / "prompts", settings.prompt_version)
    try:
        with temporary_pg_database() as url:
            upgrade(url)
            engine = create_db_engine(url)
            factory = make_session_factory(engine)
            for number in range(calls):
                with unit_of_work(factory) as session:
                    store_transcript(session, transcripts[number % len(transcripts)], tenant="bench",
                                     external_id=f"batch-{number:06d}", llm_mode=LlmMode.batch)
            server.script_batches(*[BatchScript(progress=())] * 100)

            started = time.perf_counter()
            collected = collect_batches(factory, provider, prompt, settings)
            collect_seconds = time.perf_counter() - started
            input_bytes = sum(len(server.files[b.input_file_id]) for b in server.batches.values())

            started = time.perf_counter()
            polled = poll_batches(factory, provider, prompt, settings)
            store_seconds = time.perf_counter() - started

            with unit_of_work(factory) as session:
                done = session.scalar(select(func.count()).select_from(Call).where(Call.state.in_(DONE)))
                runs = session.scalar(select(func.count()).select_from(ExtractionRun)
                                      .where(ExtractionRun.status == RunStatus.succeeded))
                open_batches = session.scalar(select(func.count()).select_from(LlmBatch)
                                              .where(LlmBatch.collected_at.is_(None)))
            engine.dispose()
    finally:
        server.stop()
    return {
        "calls": calls,
        "batches": len(collected.submitted),
        "input_mb": round(input_bytes / 1e6, 1),
        "collect_seconds": round(collect_seconds, 1),
        "collect_calls_per_s": round(calls / collect_seconds, 1),
        "store_seconds": round(store_seconds, 1),
        "store_calls_per_s": round(polled.stored / store_seconds, 1),
        "repairs_sent": len(server.requests),
        "stored": done,
        "succeeded_runs": runs,
        "open_batches": open_batches,
        "load_average_before": os.getloadavg()[0],
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = run(args.calls)
    result["load_average_before"] = round(load, 2)
    print(json.dumps(result, indent=2))
    if result["stored"] != args.calls or result["succeeded_runs"] != args.calls or result["open_batches"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
