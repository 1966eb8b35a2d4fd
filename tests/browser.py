"""A real browser for the web client's tests: Playwright driving Debian's Chromium
(`apt-get install chromium`; Playwright's own browser download cannot be reached here), and
axe-core through axe-playwright-python for WCAG 2.1 AA. Without Chromium the browser tests
skip with the reason, except under CI=true, where that fails the run."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SIP_TEST_CHROMIUM", "/usr/bin/chromium")
# Screenshots of each main screen, kept as test artifacts (not committed).
ARTIFACTS = Path(__file__).parent / "artifacts" / "screens"
# Without these, Chromium reaches for Google's hosts at every start, which this network
# refuses (slowly, many at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = ("serious", "critical")


def browser_problem() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import axe_playwright_python  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install -e '.[test]')"
    return None


def require_browser() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need a browser under CI=true: {problem}")
    pytest.skip(problem)


@contextmanager
def chromium() -> Iterator[object]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def accessibility_problems(page) -> list[str]:
    """The serious and critical WCAG 2.1 A/AA violations axe-core finds on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node.get("target")) for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation.get("impact") in BLOCKING_IMPACTS
    ]


def check_screen(page, name: str) -> None:
    """Every main screen: no serious or critical axe violation, no personnummer in its URL
    or title, and a screenshot kept as an artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    problems = accessibility_problems(page)
    assert not problems, f"{name}: " + "; ".join(problems)
    assert not PERSONNUMMER.search(page.url), f"{name}: a personnummer in {page.url}"
    assert not PERSONNUMMER.search(page.title()), f"{name}: a personnummer in the title"


PERSONNUMMER = re.compile(r"(?<!\d)(19|20)\d{6}-?\d{4}(?!\d)")
