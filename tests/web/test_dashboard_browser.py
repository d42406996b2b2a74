"""The dashboard in a real browser (Playwright, Debian's headless Chromium): charts render under the
Content-Security-Policy with no script and no error, the window control works, another tenant's calls
are not counted. Takes docs/screenshots/dashboard.png (with POSTCALL_UPDATE_SCREENSHOTS=1).

The seeded calls are real pipeline output (offline heuristic provider, two prompt versions) started over
the last twelve days; each run's start is moved to its call's day so the per-day latency has a spread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, Claim, ExtractionRun, UserRole
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.review import CallDecision, ClaimAction, decide_call, review_claim
from app.users import authenticate
from app.web import create_app
from tests.support.analytics import RETURNS_LINES
from tests.support.screenshots import screenshot_path
from tests.support.services import migrated_sqlite_database
from tests.support.transcripts import CARD_CALL_LINES, make_transcript
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, ServerThread, require_chromium
from tests.web.world import seed_user, settings_for

pytestmark = pytest.mark.browser

CALLS = 36


def _seed(factory: sessionmaker[Session], supervisor_token: str) -> None:
    settings = get_settings()
    prompt = PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
    tuned = dataclasses.replace(prompt, version="extract-v1-tuned")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for index in range(CALLS):
        started = now - timedelta(days=index % 12, hours=index % 5)
        lines = CARD_CALL_LINES if index % 3 else RETURNS_LINES
        transcript = make_transcript(lines, external_id=f"ACME-{index:03d}", agent_id=f"a{index % 4}")
        transcript.metadata.started_at = started
        with unit_of_work(factory) as session:
            call_id = store_transcript(session, transcript, tenant="acme", external_id=f"ACME-{index:03d}").call_id
        if index % 9 == 8:
            continue  # still queued
        process_call(factory, call_id, HeuristicProvider(), tuned if index % 2 else prompt)
        with unit_of_work(factory) as session:
            session.execute(update(ExtractionRun).where(ExtractionRun.call_id == call_id)
                            .values(started_at=started + timedelta(minutes=1)))
        if index % 4 == 0:
            with unit_of_work(factory) as session:
                supervisor = authenticate(session, supervisor_token)
                assert supervisor is not None
                for claim in session.scalars(select(Claim).where(Claim.call_id == call_id)):
                    action = ClaimAction.reject if claim.kind == "summary" and index % 8 == 0 else ClaimAction.approve
                    review_claim(session, supervisor, claim.id, action)
                decide_call(session, supervisor, call_id, CallDecision.approve)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, str]]:
    require_chromium()
    url = migrated_sqlite_database(str(tmp_path / "dashboard.db"))
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    supervisor = seed_user(factory, tenant="acme", name="Sam Supervisor", role=UserRole.supervisor)
    outsider = seed_user(factory, tenant="globex", name="Gil Globex", role=UserRole.admin)
    _seed(factory, supervisor)
    with unit_of_work(factory) as session:
        assert session.scalar(select(Call.id).where(Call.state == "approved").limit(1)) is not None
    engine.dispose()
    with ServerThread(create_app(settings_for(url))) as server:
        yield server.url, supervisor + " " + outsider


def test_dashboard_in_a_browser(site: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, tokens = site
    supervisor_token, outsider_token = tokens.split()
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            # Every resource the page loads answers (the browser's own favicon probe aside).
            page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
                    if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)
            page.on("console", lambda message: problems.append(message.text)
                    if "Content Security Policy" in message.text else None)

            page.goto(f"{url}/dashboard")
            expect(page).to_have_url(f"{url}/login?next=%2Fdashboard")
            page.fill("#token", supervisor_token)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{url}/dashboard")
            expect(page.locator("h1")).to_have_text("Dashboard")
            expect(page.locator("#tile-calls b")).to_have_text(str(CALLS))
            expect(page.locator("#calls-per-day svg.chart rect.state-approved").first).to_be_visible()
            expect(page.locator("#calls-per-day svg.chart rect.state-queued").first).to_be_visible()
            expect(page.locator("#review-outcomes svg.chart rect.outcome-approved").first).to_be_visible()
            expect(page.locator("#stage-latency svg.chart rect").first).to_be_visible()
            expect(page.locator("#grounding tbody tr")).to_have_count(2)  # two prompt versions
            expect(page.locator("#open-items")).to_contain_text("the returns team")
            # A CSS colour reached the SVG: the stylesheet applies under the CSP.
            fill = page.locator("#calls-per-day rect.state-approved").first.evaluate(
                "element => getComputedStyle(element).fill")
            assert fill == "rgb(31, 122, 67)"

            screenshot = screenshot_path("dashboard.png")
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 0

            page.select_option("select[name=days]", "7")
            page.click(".dashboard form button[type=submit]")
            expect(page).to_have_url(f"{url}/dashboard?days=7")
            calls_in_week = int(page.locator("#tile-calls b").inner_text())
            assert 0 < calls_in_week < CALLS
            assert problems == []

            outsider = browser.new_context().new_page()
            outsider.goto(f"{url}/login?next=%2Fdashboard")
            outsider.fill("#token", outsider_token)
            outsider.click("button[type=submit]")
            expect(outsider.locator("#tile-calls b")).to_have_text("0")
        finally:
            browser.close()
