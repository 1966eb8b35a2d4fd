"""The web client in a real browser (Chromium through Playwright), on the system `sip up
--demo` starts as a newcomer would: every main screen passes axe-core's WCAG 2.1 AA checks
and is kept as a screenshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import check_screen, chromium, require_browser
from tests.conftest import Backend
from tests.sip_up import SipUp

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipUp]:
    require_browser()
    data_dir = tmp_path_factory.mktemp("demo")
    system = SipUp(Backend("sqlite", data_dir, {"sip": None, "consent": None}), "--demo")
    try:
        system.wait_ready()
        assert system.wait_printed("Press Ctrl-C to stop."), "".join(system.lines)
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def browser(demo: SipUp) -> Iterator[object]:
    with chromium() as browser:
        yield browser


def sign_in(browser, demo: SipUp, user: str):
    context = browser.new_context(base_url=demo.web_url, locale="sv-SE")
    page = context.new_page()
    page.goto("/signin")
    page.click(f"button[data-user='{user}']")
    return page


def test_sign_in_and_the_worklist_pass_the_accessibility_checks(browser, demo):
    page = browser.new_page(base_url=demo.web_url)
    page.goto("/")
    assert page.url.endswith("/signin")
    check_screen(page, "signin")
    page.close()
    page = sign_in(browser, demo, "region-coordinator")
    assert page.url.endswith("/worklist")
    assert page.get_by_role("heading", level=1).inner_text() == "Arbetslista"
    assert page.get_by_role("link", name="SIP för Tolvan Tolvansson").is_visible()
    check_screen(page, "worklist")
    page.context.close()


def test_the_persons_own_pages_pass_the_accessibility_checks(browser, demo):
    page = sign_in(browser, demo, "person")
    assert page.url.endswith("/me")
    check_screen(page, "person-plans")
    page.get_by_role("link", name="SIP för Tolvan Tolvansson").first.click()
    check_screen(page, "person-plan")
    page.goto("/me/consents")
    check_screen(page, "person-consents")
    page.goto("/me/access-log")
    check_screen(page, "person-access-log")
    page.context.close()
