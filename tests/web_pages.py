"""The web client in tests: served over real HTTP beside both services (`served_web`, over the
`system` of tests/conftest.py, with the demo data loaded), and a browser-like
user of it (`WebUser`: signs in through the development sign-in form, posts forms with the
session's CSRF token, and keeps every URL it was sent to, redirects included)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.demo_identities import PEOPLE, REGION
from services.demo import load_demo
from services.web.app import create_app
from services.web.settings import WebSettings
from tests.conftest import Caller, System
from tests.servers import http_client, serve

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def served_web(system: System) -> Iterator[str]:
    """The web client's base URL, over the module's services with the demo plans."""
    load_demo(system.sip_url, system.consent_url, system.issuer)
    settings = WebSettings(
        sip_url=system.sip_url,
        consent_url=system.consent_url,
        dev_issuer=True,
        key_dir=system.backend.data_dir,
        session_secret="web-tests-session-secret",
    )
    with serve(create_app(settings)) as url:
        yield url


def demo_region(system: System) -> Caller:
    """The demo region's coordinator at the API (the demo's organisations are not those of
    tests/fhir_data.py, which `system.sip` calls as)."""
    return system.as_caller(organization=REGION, unit=REGION, subject="api-check")


def demo_plan_id(system: System, person: int = 0) -> str:
    """The id of a demo person's plan (0: the active one, 1: the draft, 2: consent withdrawn)."""
    found = (
        demo_region(system)
        .sip.post(
            "/fhir/CarePlan/_search",
            data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{PEOPLE[person].personnummer}"},
        )
        .json()
    )
    return found["entry"][0]["resource"]["id"]


class WebUser:
    """One person at a browser: a cookie jar, the pages' CSRF token, and the URLs visited."""

    def __init__(self, base_url: str, demo_user: str | None = None) -> None:
        self.urls: list[str] = []
        self.client: httpx.Client = http_client(
            base_url,
            follow_redirects=True,
            event_hooks={"request": [self._sent], "response": [self._answered]},
        )
        self.csrf = ""
        if demo_user:
            self.sign_in(demo_user)

    def _sent(self, request: httpx.Request) -> None:
        self.urls.append(str(request.url))

    def _answered(self, response: httpx.Response) -> None:
        if "location" in response.headers:
            self.urls.append(response.headers["location"])

    def sign_in(self, demo_user: str) -> None:
        page = self.get("/signin")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        answer = self.client.post("/signin/dev", data={"csrf_token": token, "user": demo_user})
        assert answer.status_code == 200, answer.text
        self.get("/find")  # a page with a form, for the new session's CSRF token

    def get(self, path: str, **options: Any) -> httpx.Response:
        answer = self.client.get(path, **options)
        self._remember_csrf(answer)
        return answer

    def post(self, path: str, data: dict[str, str], csrf: bool = True, **options: Any):
        form = {"csrf_token": self.csrf, **data} if csrf else dict(data)
        answer = self.client.post(path, data=form, **options)
        self._remember_csrf(answer)
        return answer

    def _remember_csrf(self, answer: httpx.Response) -> None:
        found = CSRF.search(answer.text)
        if found:
            self.csrf = found.group(1)

    def close(self) -> None:
        self.client.close()


def text_of(page: str) -> str:
    """A page's visible text, whitespace collapsed (for asserting on what the user reads)."""
    body = re.sub(r"(?s)<head>.*?</head>", "", page)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", body).split()))


def field_error(page: str, name: str) -> str | None:
    """The message shown beside a field (`<p class="field-error" id="<name>-error">`)."""
    found = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">(.*?)</p>', page, re.S)
    return text_of(found.group(1)).removeprefix("Fel: ") if found else None


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
