"""The demo's safeguard call: one sample through the `openai` provider against a local scripted server
whose answer invents an amount. The verifier flags that statement, so the call lands in
`needs_attention` with one unverified item, in the review queue like any other. No network, no key."""

from __future__ import annotations

from pathlib import Path

from openai import OpenAI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.session import unit_of_work
from app.ingest import load_transcript
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.llm.scripted_server import DEMO_MODEL, ScriptedOpenAIServer, fabricating_answer
from app.models import Call
from app.pipeline.run import ProcessOutcome, process_call
from app.pipeline.store import store_transcript

SAFEGUARD_SUFFIX = "-openai-scripted"


def run_safeguard_call(
    factory: sessionmaker[Session], settings: Settings, prompt: PromptTemplate, sample: Path, tenant: str
) -> ProcessOutcome:
    """Store `sample` again under `<external id>-openai-scripted` and process it through the openai
    provider, answered by `fabricating_answer` on 127.0.0.1."""
    transcript = load_transcript(sample).transcript
    external_id = f"{transcript.metadata.external_id or sample.stem}{SAFEGUARD_SUFFIX}"
    with unit_of_work(factory) as session:
        existing = session.scalar(select(Call.id).where(Call.external_id == external_id))
        call_id = existing or store_transcript(
            session, transcript, tenant=tenant, external_id=external_id, source_name=str(sample)
        ).call_id
    with ScriptedOpenAIServer(fabricating_answer) as server:
        client = OpenAI(base_url=server.base_url, api_key="demo-no-key-needed", max_retries=0, timeout=10)
        provider = OpenAIProvider(settings.model_copy(update={"openai_model": DEMO_MODEL}), client=client)
        return process_call(factory, call_id, provider, prompt, reprocess_reviewed=True)
