"""The web client's frame, over real HTTP in front of both services: sign-in and sign-out,
the session that ends with its token, CSRF on every form, the headers that keep personal
data out of caches and other sites, and clear pages when a service is down."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from services.common.configuration_check import ConfigurationError
from services.common.demo_identities import DEMO_USERS, REGION
from services.web.session import NotSignedIn, SignedInUser, signed_in_user
from services.web.settings import WebSettings
from tests.fhir_data import FHIR_JSON, care_plan, new_personnummer
from tests.servers import free_port
from tests.web_client import WebUser, serving_web, text_of


@pytest.fixture(scope="module")
def web(system):
    with serving_web(system) as url:
        yield url


@pytest.fixture
def browser(web):
    user = WebUser(web)
    yield user
    user.close()


def test_the_start_page_sends_a_visitor_to_sign_in_and_lists_every_demo_user(browser):
    page = browser.get("/")
    assert page.url.path == "/signin"
    for demo in DEMO_USERS:
        assert f'data-user="{demo.key}"' in page.text
        assert demo.name in page.text


def test_a_coordinator_signs_in_to_the_worklist_and_out_again(system, browser):
    mine = system.as_caller(organization=REGION)
    personnummer = new_personnummer()
    created = mine.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer, REGION), headers=FHIR_JSON
    )
    assert created.status_code == 201, created.text
    page = browser.sign_in("region-coordinator")
    assert page.url.path == "/worklist"
    assert "Karin Lind" in text_of(page)
    assert f"/plans/{created.json()['id']}" in page.text
    set_cookie = page.history[0].headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    signed_out = browser.submit("/signout")
    assert signed_out.url.path == "/signin"
    assert browser.get("/worklist").url.path == "/signin"


def test_every_page_forbids_caching_framing_and_foreign_scripts(browser):
    page = browser.sign_in("region-coordinator")
    headers = page.headers
    assert headers["cache-control"] == "no-store"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "no-store" in browser.get("/signin").headers["cache-control"]


def test_a_form_without_the_sessions_csrf_token_is_refused(browser):
    browser.sign_in("region-coordinator")
    refused = browser.http.post("/signout", data={})
    assert refused.status_code == 403
    assert "Formuläret kunde inte tas emot" in text_of(refused)
    forged = browser.http.post("/signout", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert browser.get("/worklist").url.path == "/worklist"  # still signed in
    stranger = WebUser(str(browser.http.base_url))
    stranger.get("/signin")
    taken = stranger.http.post("/signin/dev", data={"csrf_token": "x", "user": "person"})
    assert taken.status_code == 403
    stranger.close()


def test_the_session_ends_with_its_token():
    request = SimpleNamespace(session={})
    with pytest.raises(NotSignedIn):
        signed_in_user(request)
    request.session["user"] = vars(
        SignedInUser(token="t", expires_at=time.time() - 1, role="coordinator", name="x")
    )
    with pytest.raises(NotSignedIn):
        signed_in_user(request)
    assert request.session == {}  # the ended session is gone, not kept


def test_a_token_the_services_no_longer_accept_sends_the_user_to_sign_in(system, browser):
    browser.sign_in("region-coordinator")
    # The services reject the token (signed with a key they do not know): the session is
    # over.
    with serving_web(system, key_dir=system.backend.data_dir / "elsewhere") as other:
        stranger = WebUser(other)
        page = stranger.sign_in("region-coordinator")
        assert page.url.path == "/signin"
        assert "Din session har tagit slut" in text_of(page)
        stranger.close()


def test_a_service_that_is_down_gives_a_clear_page_not_a_traceback(system):
    down = f"http://127.0.0.1:{free_port()}"
    with serving_web(system, sip_url=down) as url:
        user = WebUser(url)
        page = user.sign_in("region-coordinator")
        assert page.status_code == 503
        assert "Tjänsten svarar inte just nu" in text_of(page)
        assert "Traceback" not in page.text
        user.close()


def test_the_development_sign_in_does_not_exist_when_its_issuer_is_off(system):
    production = dict(
        dev_issuer=False,
        session_secret="s" * 40,
        oidc_issuer="https://idp.region.example",
        oidc_client_id="sip-web",
        public_url="https://sip.region.example",
    )
    with serving_web(system, **production) as url:
        user = WebUser(url)
        page = user.get("/signin")
        assert "data-user=" not in page.text
        assert "/signin/oidc" in page.text
        forged = user.http.post("/signin/dev", data={"user": "region-coordinator"})
        assert forged.status_code == 404
        user.close()


def test_a_configuration_nobody_could_sign_in_with_is_refused_at_start():
    with pytest.raises(ConfigurationError, match="WEB_OIDC_ISSUER"):
        WebSettings(dev_issuer=False, session_secret="s" * 40).checked()
    with pytest.raises(ConfigurationError, match="WEB_SESSION_SECRET"):
        WebSettings(dev_issuer=False, oidc_issuer="https://i", oidc_client_id="c").checked()
