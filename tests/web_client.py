"""The web client for tests: its app served on a loopback port in front of a running
`System` (`serving_web`; with the demo loaded, `served_web` and `demo_web`), users who sign in
and submit its forms as a browser would (`WebUser`: the CSRF token taken from the pages they
were shown, every URL they were sent to kept), and what a test reads off a page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.demo_identities import MUNICIPALITY, PEOPLE, REGION
from services.demo import load_demo
from services.web.app import create_app
from services.web.settings import WebSettings
from tests.conftest import Caller, System, new_backend, running_system
from tests.servers import http_client, serve

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DEMO_PLAN = re.compile(r"CarePlan/(\S+) \((\S+)\)")


def web_settings(system: Any, **changes: Any) -> WebSettings:
    settings = WebSettings(
        sip_url=system.sip_url,
        consent_url=system.consent_url,
        dev_issuer=True,
        key_dir=system.backend.data_dir,
    )
    return replace(settings, **changes)


@contextmanager
def serving_web(system: Any, port: int | None = None, **changes: Any) -> Iterator[str]:
    """The web client's base URL, in front of the system's services (`changes` to its
    settings)."""
    with serve(create_app(web_settings(system, **changes)), port) as url:
        yield url


@dataclass
class Web:
    """The web client served in front of a running system with the demo loaded."""

    url: str
    system: System
    demo: dict[str, str]  # the demo plans' ids by state: active, draft, consent-withdrawn

    def user(self, user_key: str | None = None) -> WebUser:
        """A browser on the web client, signed in as the demo user `user_key` if given."""
        return WebUser(self.url, user_key)

    def api(self, organization: str | None = REGION, role: str = "coordinator") -> Caller:
        """The services' APIs as a user at `organization` (the demo's organisations, not
        those of tests/fhir_data.py, which `system.sip` calls as)."""
        return self.system.as_caller(role, organization, unit=organization)

    def person_api(self, personnummer: str = PEOPLE[0].personnummer) -> Caller:
        return self.system.as_caller("patient", None, patient=personnummer)

    @cached_property
    def region(self) -> Caller:
        """The API as the demo region's coordinator."""
        return self.api(REGION)

    @cached_property
    def municipality(self) -> Caller:
        return self.api(MUNICIPALITY)


@contextmanager
def served_web(system: System, **changes: Any) -> Iterator[Web]:
    """The web client over the system's services, with the demo plans loaded."""
    lines = load_demo(system.sip_url, system.consent_url, system.issuer)
    demo = {found[2]: found[1] for found in map(DEMO_PLAN.search, lines) if found}
    with serving_web(system, **changes) as url:
        yield Web(url, system, demo)


@contextmanager
def demo_web(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Web]:
    """Both services on SQLite storage of their own, the demo loaded, the web client in
    front of them."""
    with (
        new_backend("sqlite", data_dir, request) as backend,
        running_system(backend) as system,
        served_web(system) as web,
    ):
        yield web


def demo_web_fixtures() -> tuple[Any, Any]:
    """A test module's `web` (the demo in front of both services, one for the module) and
    `browsers` fixtures: `web, browsers = demo_web_fixtures()`; `browsers("region-coordinator")`
    opens a signed-in user, signed out at the test's end."""

    @pytest.fixture(scope="module")
    def web(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Web]:
        with demo_web(request, tmp_path_factory.mktemp("data")) as web:
            yield web

    @pytest.fixture
    def browsers(web: Web) -> Iterator[Any]:
        with ExitStack() as opened:

            def open_as(user: str) -> WebUser:
                return opened.enter_context(web.user(user))

            yield open_as

    return web, browsers


class Forms(HTMLParser):
    """The forms of a page: id → (action, fields as the browser would send them)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.forms: dict[str, tuple[str, dict[str, Any]]] = {}
        self._current: str | None = None
        self._textarea: str | None = None
        self._select: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = a.get("id") or a.get("action")
            self.forms[self._current] = (a.get("action", ""), {})
        elif self._current and tag == "input" and a.get("name"):
            fields = self.forms[self._current][1]
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            fields[a["name"]] = a.get("value", "")
        elif self._current and tag == "textarea":
            self._textarea = a.get("name")
            self.forms[self._current][1][self._textarea] = ""
        elif self._current and tag == "select":
            self._select = a.get("name")
        elif self._current and tag == "option" and self._select:
            fields = self.forms[self._current][1]
            if "selected" in a or self._select not in fields:
                fields[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._current and self._textarea:
            self.forms[self._current][1][self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


class WebUser:
    """One browser: a cookie jar, the last page it was shown (whose CSRF token its next form
    carries), and every URL it was sent to, redirects' Location headers included."""

    def __init__(self, web_url: str, user_key: str | None = None) -> None:
        self.visited: list[str] = []
        self.http: httpx.Client = http_client(
            web_url,
            follow_redirects=True,
            event_hooks={"request": [self._sent], "response": [self._answered]},
        )
        self.page: httpx.Response | None = None
        self._csrf = ""
        if user_key:
            page = self.sign_in(user_key)
            assert page.status_code == 200, page.text

    def _sent(self, request: httpx.Request) -> None:
        self.visited.append(str(request.url))

    def _answered(self, response: httpx.Response) -> None:
        if "location" in response.headers:
            self.visited.append(response.headers["location"])

    def _shown(self, page: httpx.Response) -> httpx.Response:
        self.page = page
        found = CSRF.search(page.text)
        if found:
            self._csrf = found[1]
        return page

    def csrf(self) -> str:
        """The CSRF token of the last page shown with a form (the session's)."""
        assert self._csrf, "no page with a form and its CSRF token shown yet"
        return self._csrf

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self._shown(self.http.get(path, **options))

    def submit(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **options: Any
    ) -> httpx.Response:
        """Posts a form as the last page's form would, with that page's CSRF token (without
        it if not `csrf`)."""
        form = {"csrf_token": self.csrf(), **(data or {})} if csrf else dict(data or {})
        return self._shown(self.http.post(path, data=form, **options))

    def sign_in(self, user_key: str) -> httpx.Response:
        """Through the development sign-in form, as the demo user `user_key`."""
        self.get("/signin")
        return self.submit("/signin/dev", {"user": user_key})

    def edit(self, plan_id: str, operation: str, data: dict[str, Any]) -> httpx.Response:
        """Opens the plan and submits one of its forms with the version the page showed."""
        page = self.get(f"/plans/{plan_id}")
        assert f'id="form-{operation}"' in page.text, f"no form {operation} on the page"
        return self.submit(f"/plans/{plan_id}/{operation}", {"version": version_on(page), **data})

    def form(self, page: httpx.Response | str, form_id: str) -> tuple[str, dict[str, Any]]:
        """A form of the page: its action and its fields as the browser would send them."""
        forms = Forms(page_text(page)).forms
        assert form_id in forms, f"no form {form_id} on the page: {sorted(forms)}"
        action, fields = forms[form_id]
        return action, dict(fields)

    def submit_form(
        self, page: httpx.Response | str, form_id: str, **values: Any
    ) -> httpx.Response:
        """Fills the page's form and sends it as the browser would (with its hidden fields)."""
        action, fields = self.form(page, form_id)
        fields.update(values)
        return self._shown(self.http.post(action, data=fields))

    def assert_no_personnummer_in_urls(self, personnummer: str) -> None:
        assert self.visited, "the test visited no page"
        for url in self.visited:
            for spelling in (personnummer, dashed(personnummer), personnummer[2:]):
                assert spelling not in url, f"personnummer in {url}"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WebUser:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()


def page_text(page: httpx.Response | str) -> str:
    return page.text if isinstance(page, httpx.Response) else page


def text_of(page: httpx.Response | str) -> str:
    """A page's (or a part's) text without tags, whitespace collapsed: what a reader sees."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page_text(page)).split()))


def dashed(personnummer: str) -> str:
    return f"{personnummer[:8]}-{personnummer[8:]}"


def field_error(page: httpx.Response | str, name: str) -> str | None:
    """The messages shown beside a field (`<p class="field-error" id="<name>-error">`, or
    `...-error-<n>` where there are several)."""
    found = re.findall(
        rf'<p class="field-error" id="{re.escape(name)}-error(?:-\d+)?">(.*?)</p>',
        page_text(page),
        re.S,
    )
    return " ".join(text_of(one).removeprefix("Fel: ") for one in found) if found else None


def version_on(page: httpx.Response | str) -> str:
    """The plan's version the page's forms carry."""
    found = re.search(r'name="version" value="(\d+)"', page_text(page))
    assert found, "the page has no form with the plan's version"
    return found[1]


def input_value(page: str, name: str) -> str | None:
    found = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*\bvalue="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


def checked_value(page: str, name: str) -> str | None:
    found = re.search(
        rf'<input type="radio" name="{re.escape(name)}"[^>]*value="([^"]*)" checked', page
    )
    return found.group(1) if found else None


def textarea_value(page: str, name: str) -> str | None:
    found = re.search(
        rf'<textarea[^>]*\bname="{re.escape(name)}"[^>]*>(.*?)</textarea>', page, re.S
    )
    return html.unescape(found.group(1)) if found else None
