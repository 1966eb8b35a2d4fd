"""The web client for tests: its app served on a loopback port in front of a running
`System`, and users who sign in and submit its forms as a browser would (the CSRF token taken
from the page they were shown)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx

from services.web.app import create_app
from services.web.settings import WebSettings
from tests.servers import http_client, serve

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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
    with serve(create_app(web_settings(system, **changes)), port) as url:
        yield url


class WebUser:
    """One browser: a cookie jar, the last page it was shown, and every URL it visited."""

    def __init__(self, web_url: str) -> None:
        self.http: httpx.Client = http_client(web_url, follow_redirects=True)
        self.page: httpx.Response | None = None
        self.visited: list[str] = []
        self.http.event_hooks["response"] = [lambda r: self.visited.append(str(r.url))]

    def get(self, path: str, **options: Any) -> httpx.Response:
        self.page = self.http.get(path, **options)
        return self.page

    def csrf(self) -> str:
        assert self.page is not None, "no page shown yet"
        found = CSRF.search(self.page.text)
        assert found, "the page has no form with a CSRF token"
        return found.group(1)

    def submit(self, path: str, data: dict[str, Any] | None = None, **options: Any):
        """Posts a form as the last page's form would, with that page's CSRF token."""
        form = {"csrf_token": self.csrf(), **(data or {})}
        self.page = self.http.post(path, data=form, **options)
        return self.page

    def sign_in(self, user_key: str) -> httpx.Response:
        self.get("/signin")
        return self.submit("/signin/dev", {"user": user_key})

    def close(self) -> None:
        self.http.close()


def text_of(page: httpx.Response) -> str:
    """The page's text without tags, whitespace collapsed: what a reader sees."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)).strip()
