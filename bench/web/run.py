"""Render the call page of a one-hour call server-side and time it.

The call: 500 utterances over an hour, 30 verified items (reason, outcome, 8 summary points, 20 action
items) each citing its own utterance, and a history of 40 review decisions. The page is fetched through
the full ASGI stack in-process (session cookie check, queries, view model, Jinja2), so the figure is
what the server spends per page, without network. The view model and the template are also timed
alone, to show where the time goes.

    .venv/bin/python -m bench.web.run                  # SQLite in a temporary directory
    .venv/bin/python -m bench.web.run --database-url postgresql+psycopg://postgres@127.0.0.1/bench
    .venv/bin/python -m bench.web.run --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.grounding import verify_extraction
from app.models import CallState, Claim, RunStatus, UserRole
from app.pipeline.calls import get_call, set_state
from app.pipeline.persist import RunFacts, add_claims, add_run, idempotency_key
from app.pipeline.store import store_transcript
from app.review import ClaimAction, ClaimChanges, review_claim
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from app.schemas.usage import Usage
from app.users import authenticate, create_user
from app.web import create_app
from app.web.view import build_call_page

UTTERANCES = 500
CALL_SECONDS = 3600.0
SUMMARY_ITEMS = 8
ACTION_ITEMS = 20
REVIEW_DECISIONS = 40
WARMUP_RENDERS = 5
DEFAULT_RENDERS = 50
TARGET_MS = 100.0
PERCENTILE_95 = 0.95


def one_hour_call() -> Transcript:
    step = CALL_SECONDS / UTTERANCES
    utterances = []
    for index in range(UTTERANCES):
        if index % 2 == 0:
            role, speaker = Role.agent, "Dana"
            text = (f"For case {1000 + index} I will email you the claim form today, and the adjuster will call "
                    f"you back within {2 + index % 5} business days about the repair estimate.")
        else:
            role, speaker = Role.customer, "Caller"
            text = (f"Okay, so the estimate for item {index} was ${100 + index}, and I should keep the receipts "
                    "until the adjuster calls, right?")
        utterances.append(Utterance(index=index, speaker=speaker, role=role, start=index * step,
                                    end=index * step + step * 0.9, text=text))
    return Transcript(metadata=CallMetadata(external_id="bench-one-hour", agent_id="dana", team="claims"),
                      utterances=utterances, source_format="native")


def extraction() -> Extraction:
    """30 items, each citing a different agent utterance spread over the call."""
    cited = list(range(0, UTTERANCES, UTTERANCES // (SUMMARY_ITEMS + ACTION_ITEMS + 2)))

    def quote(index: int) -> str:
        return f"For case {1000 + index} I will email you the claim form today"

    def statement(index: int) -> Statement:
        return Statement(text=f"Agent will email the claim form for case {1000 + index}",
                         evidence=[EvidenceRef(utterance=index, quote=quote(index))])

    return Extraction(
        reason=statement(cited[0]),
        outcome=statement(cited[1]),
        summary=[statement(i) for i in cited[2 : 2 + SUMMARY_ITEMS]],
        action_items=[
            ActionItem(text=f"Email the claim form for case {1000 + i}", owner=Owner.agent, due="today",
                       evidence=[EvidenceRef(utterance=i, quote=quote(i))])
            for i in cited[2 + SUMMARY_ITEMS : 2 + SUMMARY_ITEMS + ACTION_ITEMS]
        ],
    )


@dataclass(frozen=True)
class Seeded:
    call_id: str
    token: str
    claims: int
    events: int


def seed(url: str) -> Seeded:
    factory = make_session_factory(create_db_engine(url))
    transcript = one_hour_call()
    report = verify_extraction(transcript, extraction())
    with unit_of_work(factory) as session:
        token = create_user(session, tenant="bench", name="reviewer", role=UserRole.supervisor).token
        stored = store_transcript(session, transcript, tenant="bench", external_id="bench-one-hour")
        call = get_call(session, stored.call_id)
        facts = RunFacts(idempotency_key(call.id, call.transcript_hash, "extract-v1", "bench", "bench"), "bench",
                         "bench", "extract-v1", call.transcript_hash, Usage(), None, None)
        run = add_run(session, call, facts, status=RunStatus.succeeded)
        add_claims(session, run, report)
        set_state(call, CallState.ready_for_review)
    with unit_of_work(factory) as session:
        principal = authenticate(session, token)
        assert principal is not None
        claim_ids = list(session.scalars(Claim.__table__.select().with_only_columns(Claim.id)
                                         .where(Claim.call_id == stored.call_id)).all())
        for n in range(REVIEW_DECISIONS):
            claim_id = claim_ids[n % len(claim_ids)]
            if n % 2:
                review_claim(session, principal, claim_id, ClaimAction.approve)
            else:
                review_claim(session, principal, claim_id, ClaimAction.edit, ClaimChanges(text=f"Edited item {n}"))
    grounded = sum(1 for claim in report.claims if claim.status.value == "grounded")
    if grounded != len(report.claims):
        raise SystemExit(f"bench data is broken: only {grounded}/{len(report.claims)} items verify")
    return Seeded(stored.call_id, token, len(report.claims), REVIEW_DECISIONS)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    # CPU time of the whole process (server threads included): unlike wall time, it does not grow when
    # other work competes for the cores, so it is the figure to compare between busy machines.
    cpu_median_ms: float


def timed(action: Callable[[], object], runs: int) -> Timing:
    for _ in range(WARMUP_RENDERS):
        action()
    samples = []
    cpu_samples = []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        action()
        samples.append((time.perf_counter() - started) * 1000.0)
        cpu_samples.append((time.process_time() - cpu_started) * 1000.0)
    samples.sort()
    return Timing(
        median_ms=statistics.median(samples),
        p95_ms=samples[min(len(samples) - 1, int(len(samples) * PERCENTILE_95))],
        min_ms=samples[0],
        max_ms=samples[-1],
        cpu_median_ms=statistics.median(cpu_samples),
    )


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": _cpu_model(), "load_average": " ".join(f"{v:.1f}" for v in os.getloadavg())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(url: str, renders: int) -> dict[str, Any]:
    upgrade(url)
    seeded = seed(url)
    settings = Settings(database_url=url, secret_key="bench-secret-key-not-the-default")
    app = create_app(settings, enqueue=lambda ids: len(ids))
    with TestClient(app) as client:
        login = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        client.post("/login", data={"token": seeded.token, "csrf_token": csrf.group(1)})
        page = client.get(f"/calls/{seeded.call_id}")
        if page.status_code != 200 or page.text.count('class="utt role-') != UTTERANCES:
            raise SystemExit(f"the call page did not render the whole call (status {page.status_code})")
        http = timed(lambda: client.get(f"/calls/{seeded.call_id}"), renders)
        page_bytes = len(page.content)

    factory = make_session_factory(create_db_engine(url))
    with factory() as session:
        principal = authenticate(session, seeded.token)
        assert principal is not None
        view = timed(lambda: build_call_page(session, principal, seeded.call_id), renders)
        call_page = build_call_page(session, principal, seeded.call_id)
    template = app.state.web.templates.get_template("call.html")
    context = {"user": principal, "page": call_page, "call": call_page.call, "run": call_page.run,
               "owners": [o.value for o in Owner], "csrf_token": "x", "flash": None, "insecure_secret": False,
               "request": None}
    jinja = timed(lambda: template.render(context), renders)
    return {
        "database": url.split(":", 1)[0],
        "utterances": UTTERANCES,
        "items": seeded.claims,
        "review_events": seeded.events,
        "page_kib": round(page_bytes / 1024, 1),
        "renders": renders,
        "full_request": asdict(http),
        "view_model": asdict(view),
        "template": asdict(jinja),
        "target_ms": TARGET_MS,
        "meets_target": http.median_ms < TARGET_MS,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--renders", type=int, default=DEFAULT_RENDERS)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        result = run(url, args.renders)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"call page: {result['utterances']} utterances, {result['items']} items, "
              f"{result['review_events']} review events, {result['page_kib']} KiB of HTML ({result['database']})")
        for name in ("full_request", "view_model", "template"):
            t = result[name]
            print(f"  {name:<13} median {t['median_ms']:6.1f} ms   p95 {t['p95_ms']:6.1f} ms   "
                  f"min {t['min_ms']:6.1f} ms   CPU median {t['cpu_median_ms']:6.1f} ms")
        verdict = "meets" if result["meets_target"] else "MISSES"
        print(f"  {verdict} the {TARGET_MS:.0f} ms target (median of the full request, {result['renders']} renders)")
        print(f"  machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs, "
              f"Python {result['machine']['python']}, load average {result['machine']['load_average']}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
