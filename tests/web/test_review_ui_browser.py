"""The call page in Chromium against two probe findings: keys pressed while the help dialog is open act on
nothing behind it, and one very long token wraps inside its pane instead of widening it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Claim, UserRole
from app.models import Utterance as UtteranceRow
from app.web import create_app
from tests.support.services import migrated_sqlite_database
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, VIEWPORT, ServerThread, require_chromium
from tests.web.world import SeededCall, seed_call, seed_user, settings_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

LONG_TOKEN = "x" * 6000


@dataclass
class Site:
    url: str
    call: SeededCall
    long_call: SeededCall
    token: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    require_chromium()
    url = migrated_sqlite_database(str(tmp_path / "review-ui.db"))
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    token = seed_user(factory, tenant="acme", name="Sam Supervisor", role=UserRole.supervisor)
    call = seed_call(factory, tenant="acme", external_id="ACME-DIALOG", agent_id="dana", team="billing")
    long_call = seed_call(factory, tenant="acme", external_id="ACME-LONG", agent_id="dana", team="billing")
    with unit_of_work(factory) as session:  # one unbroken 6,000-character token in an utterance and an item
        session.execute(update(UtteranceRow).where(UtteranceRow.call_id == long_call.call_id,
                                                   UtteranceRow.index == 5).values(text=f"see {LONG_TOKEN} end"))
        session.execute(update(Claim).where(Claim.id == long_call.claim("summary1"))
                        .values(text=LONG_TOKEN, text_masked=LONG_TOKEN))
    engine.dispose()
    with ServerThread(create_app(settings_for(url))) as server:
        yield Site(server.url, call, long_call, token)


def signed_in_page(site: Site, playwright: object) -> Page:
    from playwright.sync_api import Playwright

    assert isinstance(playwright, Playwright)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{site.url}/login")
    page.fill("#token", site.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    return page


def test_keys_do_nothing_behind_the_help_dialog(site: Site) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        page = signed_in_page(site, playwright)
        try:
            page.goto(f"{site.url}/calls/{site.call.call_id}")
            reason = page.locator(f"#claim-{site.call.claim('reason')}")
            reason.locator(".item-text").click()
            expect(reason).to_have_class("item grounded review-pending selected")
            page.keyboard.press("?")
            help_dialog = page.locator("#help-dialog")
            expect(help_dialog).to_be_visible()
            for key in ("r", "a", "j", "e", "y", "]", "g"):
                page.keyboard.press(key)
            page.wait_for_timeout(300)  # a submitted form would navigate: give it the time to
            expect(page).to_have_url(f"{site.url}/calls/{site.call.call_id}")
            expect(help_dialog).to_be_visible()
            expect(reason.locator(".badge.review-pending")).to_have_text("pending")
            expect(reason).to_have_class("item grounded review-pending selected")
            # Escape closes the dialog; then the keys act again.
            page.keyboard.press("Escape")
            expect(help_dialog).to_be_hidden()
            page.keyboard.press("r")
            expect(page.locator("#flash")).to_have_text("Item rejected.")
            expect(page.locator(f"#claim-{site.call.claim('reason')} .badge.review-rejected")).to_be_visible()
        finally:
            page.context.browser.close()  # type: ignore[union-attr]


def test_a_very_long_token_wraps_inside_its_pane(site: Site) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        page = signed_in_page(site, playwright)
        try:
            page.goto(f"{site.url}/calls/{site.long_call.call_id}")
            widths = page.evaluate("""() => {
              const pane = (id) => document.getElementById(id);
              return {
                transcript: [pane("transcript").scrollWidth, pane("transcript").clientWidth],
                items: [pane("items").scrollWidth, pane("items").clientWidth],
                page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
              };
            }""")
            for name, (scroll_width, client_width) in widths.items():
                assert scroll_width <= client_width + 1, (name, widths)
            assert page.locator("#u-5 .utext").text_content() == f"see {LONG_TOKEN} end"
        finally:
            page.context.browser.close()  # type: ignore[union-attr]
