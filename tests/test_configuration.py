"""A service refuses to start with a configuration that cannot work, before it touches its
database, and names what is missing; the two example environments in deploy/ start."""

import re
from pathlib import Path

import pytest

from services.common.configuration_check import ConfigurationError
from services.common.settings import ServiceSettings

DEPLOY = Path(__file__).parent.parent / "deploy"
# Nothing listens on port 1: a service that connected before refusing would fail otherwise.
UNREACHABLE_DB = "postgresql://sip@127.0.0.1:1/{}"


def example(name):
    """The variables an example environment file sets."""
    pairs = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


@pytest.fixture
def environment(monkeypatch):
    """The production example in the environment, nothing else of ours."""
    import os

    for variable in list(os.environ):
        if variable.startswith(("SIP_", "CONSENT_")):
            monkeypatch.delenv(variable)
    for key, value in example("sip.env.example").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SIP_DATABASE_URL", UNREACHABLE_DB.format("sip"))
    monkeypatch.setenv("CONSENT_DATABASE_URL", UNREACHABLE_DB.format("consent"))
    return monkeypatch


def start(service):
    if service == "sip":
        from services.sip.api import create_app
    else:
        from services.consent.api import create_app
    return create_app()


def refusal(service):
    with pytest.raises(ConfigurationError) as refused:
        start(service)
    return str(refused.value)


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_the_production_example_is_complete(environment, service):
    variable = f"{service.upper()}_DATABASE_URL"
    assert ServiceSettings.from_env(variable).checked(service)  # nothing missing
    # The service gets past the check to its database, which is not there.
    with pytest.raises(Exception) as failed:
        start(service)
    assert not isinstance(failed.value, ConfigurationError)


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_the_development_example_is_complete(monkeypatch, environment, service):
    for key in example("sip.env.example"):
        monkeypatch.delenv(key, raising=False)
    for key, value in example("sip-dev.env.example").items():
        monkeypatch.setenv(key, value)
    assert ServiceSettings.from_env(f"{service.upper()}_DATABASE_URL").checked(service)


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_no_trusted_issuer_without_the_development_issuer_is_refused(environment, service):
    environment.delenv("SIP_TRUSTED_ISSUERS")
    message = refusal(service)
    assert "SIP_TRUSTED_ISSUERS" in message and "401" in message


def test_the_sip_service_names_each_missing_client_credential(environment):
    environment.delenv("SIP_CLIENT_SECRET")
    environment.setenv("SIP_CLIENT_ID", "")
    message = refusal("sip")
    assert "SIP_CLIENT_SECRET" in message and "SIP_CLIENT_ID" in message
    assert "SIP_CLIENT_TOKEN_URL" not in message
    # The consent service does not need them.
    assert start_checked("consent")


def start_checked(service):
    return ServiceSettings.from_env(f"{service.upper()}_DATABASE_URL").checked(service)


@pytest.mark.parametrize("variable", ["CONSENT_TRUSTED_PEERS", "CONSENT_WHOLE_LOG_READERS"])
def test_the_consent_service_must_name_the_sip_services_client(environment, variable):
    environment.delenv(variable)
    assert variable in refusal("consent")
    assert start_checked("sip")  # the SIP service does not read it
    environment.setenv(variable, "")  # a deliberate "nobody" is a choice, not a gap
    assert start_checked("consent")


def test_a_relative_key_directory_on_postgresql_is_refused(environment):
    environment.delenv("SIP_KEY_DIR")
    environment.delenv("SIP_DATA_DIR")
    message = refusal("sip")
    assert "SIP_KEY_DIR" in message and "relative" in message
    environment.setenv("SIP_KEY_DIR", "/var/lib/sip/keys")
    assert start_checked("sip")


def test_every_problem_is_named_at_once(environment):
    for variable in ("SIP_TRUSTED_ISSUERS", "CONSENT_TRUSTED_PEERS", "CONSENT_WHOLE_LOG_READERS"):
        environment.delenv(variable)
    message = refusal("consent")
    assert all(v in message for v in ("SIP_TRUSTED_ISSUERS", "CONSENT_TRUSTED_PEERS",
                                      "CONSENT_WHOLE_LOG_READERS"))  # fmt: skip


def test_the_embedded_default_needs_nothing(monkeypatch, tmp_path):
    import os

    for variable in list(os.environ):
        if variable.startswith(("SIP_", "CONSENT_")):
            monkeypatch.delenv(variable)
    for service in ("sip", "consent"):
        assert start_checked(service).dev_issuer_enabled


def test_every_setting_the_services_read_is_in_the_production_example():
    services = Path(__file__).parent.parent / "services"
    read = set()
    for source in services.rglob("*.py"):
        read |= set(
            re.findall(r'environ(?:\.get)?[\[(]"((?:SIP|CONSENT|WEB)_[A-Z_]+)"', source.read_text())
        )
    read |= {"CONSENT_SERVICE_URL", "SIP_WHOLE_LOG_READERS", "CONSENT_WHOLE_LOG_READERS"}
    # Ports and host are `sip up`'s (development); the units give each replica its port.
    documented = set(example("sip.env.example"))
    assert read - documented <= {"SIP_PORT", "CONSENT_PORT", "WEB_PORT", "SIP_HOST"}, (
        read - documented
    )
