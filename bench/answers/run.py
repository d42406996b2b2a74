"""Process a set of calls through the `openai` provider against the deterministic local model, then dump
every stored result (bench/answers/stored.py). Run it on two versions of the code on the same calls and
compare the dumps: a change that should only make the pipeline faster must leave them identical.

    python -m bench.answers.run postgresql+psycopg://postgres@127.0.0.1/scratch OUT.json --calls samples
    python -m bench.answers.run URL OUT.json --calls real:200
    python -m bench.answers.stored --compare main.json branch.json

The database must be freshly migrated (`postcall migrate` or the tests' helper) and empty.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from openai import OpenAI
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, Settings, get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.ingest import load_transcript
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.llm.scripted_server import DEMO_MODEL, ScriptedOpenAIServer
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.schemas.transcript import Transcript
from bench.answers.model import quoting_answer
from bench.answers.stored import dump_calls, write_dump

if TYPE_CHECKING:  # types only: bench/cpu runs this module against revisions that have no groups
    from app.pipeline.run import ClaimGroup, PersistGroup

TENANT = "answers"
PROMPT_NAME = "extract-v1"


def sample_transcripts() -> list[tuple[str, Transcript]]:
    """The shipped samples, each under its file name."""
    return [(path.stem, load_transcript(path).transcript)
            for path in sorted((PROJECT_ROOT / "samples").iterdir()) if path.suffix in {".json", ".txt"}]


def real_transcripts(count: int) -> list[tuple[str, Transcript]]:
    """`count` real calls from the shared data: every Harper Valley Bank call (human transcripts, 42),
    then TweetSumm customer-support dialogs in file order."""
    from bench.datasets import shared_data_dir
    from bench.heuristic.datasets import load_harper_valley, load_tweetsumm

    root = shared_data_dir()
    if root is None:
        raise SystemExit("no shared data beside this checkout")
    calls = [(call.sid, call.transcript) for call in load_harper_valley(root / "harper_valley_bank")][:count]
    if len(calls) < count:
        dialogs = load_tweetsumm(root / "tweetsumm" / "tweetsumm_train_joined.jsonl", limit=count - len(calls))
        calls += [(dialog.conversation_id, dialog.transcript) for dialog in dialogs]
    return calls


def named_transcripts(spec: str) -> list[tuple[str, Transcript]]:
    """`samples` or `real:N`."""
    if spec == "samples":
        return sample_transcripts()
    if spec.startswith("real:"):
        return real_transcripts(int(spec.split(":", 1)[1]))
    raise SystemExit(f"unknown call set {spec!r}: use samples or real:N")


def store_calls(factory: sessionmaker[Session], transcripts: Sequence[tuple[str, Transcript]]) -> list[str]:
    call_ids = []
    with unit_of_work(factory) as session:
        for external_id, transcript in transcripts:
            call_ids.append(store_transcript(session, transcript, tenant=TENANT, external_id=external_id).call_id)
    return call_ids


def scripted_provider(settings: Settings, base_url: str) -> OpenAIProvider:
    client = OpenAI(base_url=base_url, api_key="local-no-key", max_retries=0, timeout=30)
    return OpenAIProvider(settings.model_copy(update={"openai_model": DEMO_MODEL}), client=client)


def process_with_local_model(
    factory: sessionmaker[Session], settings: Settings, transcripts: Sequence[tuple[str, Transcript]],
    *, persist_group: PersistGroup | None = None, claim_group: ClaimGroup | None = None,
) -> list[str]:
    """Store and process the calls one after another; returns their call ids. With a `persist_group`, side by
    side in as many threads as its groups hold (a threaded worker's slots), their results stored in groups
    (and their claims made in groups, with a `claim_group`)."""
    call_ids = store_calls(factory, transcripts)
    prompt = PromptTemplate.load(PROJECT_ROOT / "prompts", PROMPT_NAME)
    with ScriptedOpenAIServer(quoting_answer) as server:
        provider = scripted_provider(settings, server.base_url)
        if persist_group is None:
            for call_id in call_ids:
                process_call(factory, call_id, provider, prompt)
        else:
            with ThreadPoolExecutor(max_workers=persist_group.max_size) as pool:
                list(pool.map(lambda call_id: process_call(factory, call_id, provider, prompt,
                                                           claim_group=claim_group, persist_group=persist_group),
                              call_ids))
    return call_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database_url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--calls", default="samples", help="samples (default) or real:N")
    args = parser.parse_args(argv)
    engine = create_db_engine(args.database_url)
    try:
        factory = make_session_factory(engine)
        call_ids = process_with_local_model(factory, get_settings(), named_transcripts(args.calls))
        with factory() as session:
            dump = dump_calls(session, call_ids)
    finally:
        engine.dispose()
    write_dump(dump, args.out)
    print(f"{len(dump)} calls processed and dumped to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
