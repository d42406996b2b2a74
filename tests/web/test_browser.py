"""The review flow in a real browser: Playwright driving Debian's headless Chromium against uvicorn.

Sign in, open a call, select an item and see its evidence highlighted, approve one, edit one, reject
one, add one from a transcript selection, see the history; then a user of another tenant cannot reach
the call by URL. The screenshot of the call page in the docs is taken here (docs/screenshots/call-page.png,
with POSTCALL_UPDATE_SCREENSHOTS=1: tests/support/screenshots.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn

from app.db.session import create_db_engine, make_session_factory
from app.models import UserRole
from app.web import create_app
from tests.support.screenshots import screenshot_path
from tests.support.services import migrated_sqlite_database, skip_or_fail
from tests.web.world import SeededCall, seed_call, seed_user, settings_for

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous: these wait for success and return as soon as it comes; on a loaded 2-core box (the suite runs in
# parallel) a page or the server's start has taken seconds.
SERVER_START_TIMEOUT_S = 60.0
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
# Playwright waits up to this long for any expectation; the pages render in milliseconds when the box is idle.
EXPECT_TIMEOUT_MS = 30_000


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    skip_or_fail(f"Chromium not found at {CHROMIUM}; install it with: apt-get install -y chromium")


class ServerThread:
    """uvicorn serving the app on 127.0.0.1, on a port the OS picks, in a background thread."""

    def __init__(self, app: object) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=SERVER_START_TIMEOUT_S)
        self._socket.close()


@dataclass
class Site:
    url: str
    call: SeededCall
    reviewer_token: str
    outsider_token: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    require_chromium()
    url = migrated_sqlite_database(str(tmp_path / "browser.db"))
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    reviewer = seed_user(factory, tenant="acme", name="Sam Supervisor", role=UserRole.supervisor)
    outsider = seed_user(factory, tenant="globex", name="Gil Globex", role=UserRole.admin)
    call = seed_call(factory, tenant="acme", external_id="ACME-2026-0303-114", agent_id="dana", team="billing",
                     utterances=14)
    engine.dispose()
    with ServerThread(create_app(settings_for(url))) as server:
        yield Site(server.url, call, reviewer, outsider)


SELECT_TEXT_JS = """
([index, quote]) => {
  const box = document.querySelector(`#u-${index} .utext`);
  const start = box.textContent.indexOf(quote);
  if (start < 0) throw new Error(`quote not in utterance ${index}`);
  const end = start + quote.length;
  const range = document.createRange();
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  let offset = 0, node;
  while ((node = walker.nextNode())) {
    const next = offset + node.data.length;
    if (start >= offset && start < next) range.setStart(node, start - offset);
    if (end > offset && end <= next) { range.setEnd(node, end - offset); break; }
    offset = next;
  }
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}
"""


def test_review_flow_in_chromium(site: Site) -> None:
    from playwright.sync_api import expect, sync_playwright

    call = site.call
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            # Sign in, then open the call from the queue.
            page.goto(f"{site.url}/calls/{call.call_id}")
            expect(page).to_have_url(f"{site.url}/login?next=%2Fcalls%2F{call.call_id}")
            page.fill("#token", site.reviewer_token)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{site.url}/calls/{call.call_id}")
            page.click("a.brand")
            page.click("text=ACME-2026-0303-114")
            expect(page.locator("h1")).to_have_text("ACME-2026-0303-114")

            # Selecting an item highlights exactly its evidence and scrolls it into view.
            action = page.locator(f"#claim-{call.claim('action0')}")
            action.locator(".item-text").click()
            marks = page.locator("#transcript .ev.hl")
            expect(marks).to_have_text(["I will also send you a confirmation email today"])
            expect(marks.first).to_be_in_viewport()
            expect(page.locator("#u-4")).to_have_class("utt role-agent hl")
            # The fabricated item is flagged, its quote found nowhere, so nothing to highlight.
            fabricated = page.locator(f"#claim-{call.claim('summary1')}")
            expect(fabricated.locator(".badge.unverified")).to_have_text("unverified")
            fabricated.locator(".item-text").click()
            expect(marks).to_have_count(0)

            # Approve the reason with the keyboard: select it, then j/k and a.
            page.locator(f"#claim-{call.claim('reason')}").locator(".item-text").click()
            page.keyboard.press("j")
            expect(page.locator(f"#claim-{call.claim('outcome')}")).to_have_class(
                "item grounded review-pending selected")
            page.keyboard.press("k")
            page.keyboard.press("a")
            expect(page.locator(f"#claim-{call.claim('reason')} .badge.review-approved")).to_have_text("approved")
            expect(page.locator(f"#claim-{call.claim('reason')}")).to_be_focused()

            # Edit the action item with e.
            action = page.locator(f"#claim-{call.claim('action0')}")
            action.locator(".item-text").click()
            page.keyboard.press("e")
            textarea = action.locator("textarea[name=text]")
            expect(textarea).to_be_focused()
            textarea.fill("Email the customer a confirmation today")
            action.locator("input[name=due]").fill("today")
            action.locator(".edit-form button[type=submit]").click()
            expect(page.locator(f"#claim-{call.claim('action0')} .item-text")).to_have_text(
                "Email the customer a confirmation today")

            # Reject the fabricated item with its button.
            page.locator(f"#claim-{call.claim('summary1')} button[data-role=reject]").click()
            expect(page.locator(f"#claim-{call.claim('summary1')} .badge.review-rejected")).to_be_visible()

            # Add a missed item from a transcript selection (n takes the selection).
            quote = "You will see the refund within 5 business days"
            page.evaluate(SELECT_TEXT_JS, [4, quote])
            page.keyboard.press("n")
            expect(page.locator("#selection-preview")).to_have_text(f"[4] {quote}")
            expect(page.locator("#add-text")).to_be_focused()
            page.fill("#add-text", "Refund reaches the card within 5 business days")
            page.fill("#add-due", "5 business days")
            page.click("#add-submit")
            expect(page.locator("#flash")).to_have_text("Item added.")
            added = page.locator("article.item", has_text="Refund reaches the card within 5 business days")
            expect(added.locator(".badge.origin")).to_have_text("added by reviewer")
            expect(added.locator(".badge.grounded")).to_have_text("verified")
            added.locator(".item-text").click()
            expect(page.locator("#transcript .ev.hl")).to_have_text([quote])

            # The history lists every decision, oldest first; the call can now be approved.
            history = page.locator("#history li > b")
            expect(history).to_have_count(4)
            expect(page.locator("#history")).to_contain_text("approved an item")
            expect(page.locator("#history")).to_contain_text("edited an item")
            expect(page.locator("#history")).to_contain_text("rejected an item")
            expect(page.locator("#history")).to_contain_text("added an item")
            expect(page.locator("#approve-call")).to_be_enabled()

            # Help dialog.
            page.keyboard.press("?")
            expect(page.locator("#help-dialog")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#help-dialog")).to_be_hidden()

            screenshot = screenshot_path("call-page.png")
            page.goto(f"{site.url}/calls/{call.call_id}")
            page.locator(f"#claim-{call.claim('action0')} .item-text").click()
            page.locator(f"#claim-{call.claim('action0')}").scroll_into_view_if_needed()
            expect(page.locator("#transcript .ev.hl")).to_have_count(1)
            page.screenshot(path=str(screenshot))
            assert screenshot.stat().st_size > 0

            page.locator("#approve-call").click()
            expect(page.locator("#call-state")).to_have_text("approved")
            assert errors == []

            # Another tenant's user cannot reach the call by its URL: 404, nothing of it shown.
            outsider = browser.new_context(viewport=VIEWPORT).new_page()
            outsider.goto(f"{site.url}/login")
            outsider.fill("#token", site.outsider_token)
            outsider.click("button[type=submit]")
            expect(outsider.locator(".whoami")).to_contain_text("Gil Globex")
            response = outsider.goto(f"{site.url}/calls/{call.call_id}")
            assert response is not None and response.status == 404
            expect(outsider.locator("h1")).to_have_text("Not found")
            expect(outsider.locator("body")).not_to_contain_text("ACME-2026-0303-114")
        finally:
            browser.close()
