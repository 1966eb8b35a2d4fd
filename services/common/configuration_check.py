"""A service refuses to start with a configuration that cannot work, and names what is
missing: better one clear failure at start than every request refused afterwards.

What is checked (deploy/README.md, "Configuration"): with the development issuer off, some
issuer must be trusted (else every request is 401); the SIP service needs all three client
credentials (else it cannot ask the consent service); the consent service must name its
trusted peers and its whole-log readers (else every `$check` on behalf of an organisation is
refused and the SIP service never sees a withdrawal), an empty value being a deliberate "none";
the SMART endpoints named must be absolute URLs; on PostgreSQL the key directory must be an
absolute path (else each replica makes its own keys
in whatever folder it was started from); with the development issuer off (production), the
master key of personal data must be given (else each replica would make its own beside the
signing keys, and whoever reads the key directory reads every person's data).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services.common.personal_data.master_key import MasterKey, MasterKeyProblem
from services.common.personal_data.retention import RetentionConfigProblem, retention_rules

if TYPE_CHECKING:
    from services.common.settings import ServiceSettings

log = logging.getLogger("sip.configuration")


class ConfigurationError(ValueError):
    """The configuration cannot work; the message names each missing setting."""


def refuse_unworkable(settings: ServiceSettings, service: str) -> None:
    problems = configuration_problems(settings, service)
    if problems:
        raise ConfigurationError(
            f"the {service} service cannot start: " + "; ".join(problems) + " (deploy/README.md)"
        )
    if settings.dev_issuer_enabled and settings.database_url:
        log.warning(
            "SIP_DEV_ISSUER=enabled on PostgreSQL: anyone with the key directory mints tokens "
            "for any organisation; for trials only, never with real data"
        )


def configuration_problems(settings: ServiceSettings, service: str) -> list[str]:
    problems = []
    if not settings.dev_issuer_enabled and not settings.trusted_issuers:
        problems.append(
            "no identity provider is trusted, so every request would be refused 401: set "
            "SIP_TRUSTED_ISSUERS (issuer|jwks-url pairs) or, for development only, "
            "SIP_DEV_ISSUER=enabled"
        )
    if service == "sip" and not settings.dev_issuer_enabled:
        missing = [
            name
            for name, value in (
                ("SIP_CLIENT_TOKEN_URL", settings.client_token_url),
                ("SIP_CLIENT_ID", settings.client_id),
                ("SIP_CLIENT_SECRET", settings.client_secret),
            )
            if not value
        ]
        if missing:
            problems.append(
                "the SIP service needs client credentials for the consent service: set "
                + ", ".join(missing)
            )
    if service == "consent" and not settings.dev_issuer_enabled:
        if settings.consent_trusted_peers is None:
            problems.append(
                "CONSENT_TRUSTED_PEERS is not set, so the SIP service's $check for an "
                "organisation would be refused: name the `sub` of its client's tokens (an empty "
                "value trusts no peer)"
            )
        if settings.whole_log_readers is None:
            problems.append(
                "CONSENT_WHOLE_LOG_READERS is not set, so the SIP service would never see a "
                "withdrawal: name the `sub` of its client's tokens (an empty value grants nobody)"
            )
    for name, url in (
        ("SIP_TOKEN_ENDPOINT", settings.token_endpoint),
        ("SIP_AUTHORIZATION_ENDPOINT", settings.authorization_endpoint),
    ):
        if url is not None and not url.startswith(("https://", "http://")):
            problems.append(
                f"{name} is not an absolute http(s) URL, so SMART clients could not use it"
            )
    if not settings.dev_issuer_enabled and not settings.master_key_given:
        problems.append(
            "no master key for personal data: set SIP_MASTER_KEY (32 random bytes, base64url) "
            "or SIP_MASTER_KEY_FILE (a file holding it, readable by the service's user only), "
            "kept apart from the database and its backups"
        )
    if settings.master_key or settings.master_key_previous:
        try:
            for text in (settings.master_key or "", *settings.master_key_previous):
                if text:
                    MasterKey.from_text(text)
        except MasterKeyProblem as problem:
            problems.append(f"SIP_MASTER_KEY or SIP_MASTER_KEY_PREVIOUS is unusable: {problem}")
    try:
        retention_rules(settings.retention_file)
    except RetentionConfigProblem as problem:
        problems.append(str(problem))
    if settings.database_url and not settings.keys_dir.is_absolute():
        problems.append(
            f"the key directory {settings.keys_dir} is relative, so each replica would make its "
            "own signing keys where it was started: set SIP_KEY_DIR to an absolute directory "
            "all replicas share"
        )
    return problems
