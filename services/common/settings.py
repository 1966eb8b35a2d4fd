"""How a service finds its storage, its peers and the issuers it trusts: from the
environment, or from the caller (tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from joserfc.jwk import KeySet

from contracts.identifiers import SERVICE_HSA_ID
from services.common.auth.service_tokens import (
    ClientCredentialsTokens,
    DevServiceTokens,
    ServiceTokenSource,
)
from services.common.auth.tokens import (
    DEFAULT_AUDIENCE,
    DEV_ISSUER,
    DevIssuer,
    JwksCache,
    TokenVerifier,
)
from services.common.configuration_check import refuse_unworkable
from services.common.persistence import data_dir_from_env
from services.common.personal_data.master_key import (
    MASTER_KEY_FILE,
    MasterKey,
    MasterKeys,
    load_or_create_master_key,
)
from services.common.personal_data.retention import retention_file_from_env
from services.common.subscriptions.endpoints import parse_allowances

# The subject of the SIP service's own development tokens.
SERVICE_SUBJECT = "sip-service"


@dataclass(frozen=True)
class ServiceSettings:
    data_dir: Path = field(default_factory=data_dir_from_env)
    # The signing keys' directory (SIP_KEY_DIR); None: the data folder.
    key_dir: Path | None = None
    database_url: str | None = None
    consent_service_url: str = "http://127.0.0.1:8001"
    consent_timeout_seconds: float = 2.0
    # issuer -> JWKS URL of each identity provider whose tokens are accepted
    trusted_issuers: dict[str, str] = field(default_factory=dict)
    audience: str = DEFAULT_AUDIENCE
    # None: on for the embedded default, off on PostgreSQL (production) unless enabled
    dev_issuer: bool | None = None
    # client credentials the SIP service presents to the consent service in production
    client_token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    # What SMART discovery names (services/common/auth/smart.py): the trusted issuer's token
    # endpoint (default: client_token_url) and, for user-facing apps, its authorization one.
    token_endpoint: str | None = None
    authorization_endpoint: str | None = None
    # How many guardians must consent for a child (1 where local policy allows one).
    guardians_required: int = 2
    # The largest request body read (413 beyond it); a plan's or a consent's JSON is a few KB.
    max_body_bytes: int = 1024 * 1024
    # Issue 12, the event feed: the token subjects (client ids) that read this service's whole
    # log unfiltered (`/events`). None: the embedded default's own, the SIP service's
    # development subject, which follows the consent service's log; nobody otherwise.
    # Production names them in <SERVICE>_WHOLE_LOG_READERS (deploy/README.md).
    whole_log_readers: tuple[str, ...] | None = None

    # Consent service: the token subjects of peer services that may ask `$check` on behalf
    # of another organisation (`actor`). None: as for the whole log, the SIP service's
    # development subject on the embedded default, nobody otherwise (CONSENT_TRUSTED_PEERS).
    consent_trusted_peers: tuple[str, ...] | None = None
    # The longest a block override may last.
    block_override_max_hours: float = 24.0
    # Subscriptions: where else than https to public addresses notifications may go
    # (SIP_SUBSCRIPTION_ENDPOINTS: `loopback`, `private`; see subscriptions/endpoints.py)
    subscription_endpoints: tuple[str, ...] = ()
    # How often the worker looks for follow-ups that became overdue.
    subscription_check_seconds: float = 60.0
    # Issue 16, personal data encrypted per person (docs/decisions/0007): the master key that
    # wraps every data key, never kept in the database. SIP_MASTER_KEY (base64url) or the file
    # SIP_MASTER_KEY_FILE holding it; neither: `personal-data-master-key` in the key directory,
    # made 0600 the first time (the embedded default; production refuses to start without
    # one, configuration_check.py). The previous keys open rows not yet re-wrapped by a
    # rotation (SIP_MASTER_KEY_PREVIOUS, space-separated).
    master_key: str | None = field(default=None, repr=False)
    master_key_file: Path | None = None
    master_key_previous: tuple[str, ...] = field(default=(), repr=False)
    # The retention rules' file (SIP_RETENTION_FILE, personal_data/retention.py), checked at
    # start; None: the Swedish defaults.
    retention_file: Path | None = None

    @property
    def whole_log_reader_subjects(self) -> frozenset[str]:
        return self._granted(self.whole_log_readers)

    @property
    def trusted_peer_subjects(self) -> frozenset[str]:
        return self._granted(self.consent_trusted_peers)

    def _granted(self, configured: tuple[str, ...] | None) -> frozenset[str]:
        """A grant to subjects: as configured; unconfigured, only the SIP service's own
        development subject, and only where the development issuer mints it."""
        if configured is not None:
            return frozenset(configured)
        return frozenset({SERVICE_SUBJECT}) if self.dev_issuer_enabled else frozenset()

    @classmethod
    def from_env(cls, database_url_variable: str) -> ServiceSettings:
        consent_port = os.environ.get("CONSENT_PORT", "8001")
        dev_issuer = os.environ.get("SIP_DEV_ISSUER")
        return cls(
            data_dir=data_dir_from_env(),
            key_dir=Path(os.environ["SIP_KEY_DIR"]) if os.environ.get("SIP_KEY_DIR") else None,
            database_url=os.environ.get(database_url_variable) or None,
            consent_service_url=os.environ.get(
                "CONSENT_SERVICE_URL", f"http://127.0.0.1:{consent_port}"
            ),
            trusted_issuers=parse_trusted_issuers(os.environ.get("SIP_TRUSTED_ISSUERS", "")),
            audience=os.environ.get("SIP_TOKEN_AUDIENCE", DEFAULT_AUDIENCE),
            dev_issuer=None if dev_issuer is None else dev_issuer == "enabled",
            client_token_url=os.environ.get("SIP_CLIENT_TOKEN_URL"),
            client_id=os.environ.get("SIP_CLIENT_ID"),
            client_secret=os.environ.get("SIP_CLIENT_SECRET"),
            token_endpoint=os.environ.get("SIP_TOKEN_ENDPOINT") or None,
            authorization_endpoint=os.environ.get("SIP_AUTHORIZATION_ENDPOINT") or None,
            guardians_required=int(os.environ.get("CONSENT_GUARDIANS_REQUIRED", "2")),
            max_body_bytes=int(os.environ.get("SIP_MAX_BODY_BYTES", str(1024 * 1024))),
            whole_log_readers=whole_log_readers_from_env(database_url_variable),
            subscription_endpoints=tuple(
                parse_allowances(os.environ.get("SIP_SUBSCRIPTION_ENDPOINTS"))
            ),
            master_key=os.environ.get("SIP_MASTER_KEY") or None,
            master_key_file=Path(os.environ["SIP_MASTER_KEY_FILE"])
            if os.environ.get("SIP_MASTER_KEY_FILE")
            else None,
            master_key_previous=tuple(os.environ.get("SIP_MASTER_KEY_PREVIOUS", "").split()),
            retention_file=retention_file_from_env(),
            **_consent_settings_from_env(),
        )

    def checked(self, service: str) -> ServiceSettings:
        """These settings, or ConfigurationError naming what a working service still needs."""
        refuse_unworkable(self, service)
        return self

    @property
    def keys_dir(self) -> Path:
        return self.key_dir or self.data_dir

    @property
    def master_key_given(self) -> bool:
        return bool(self.master_key or self.master_key_file)

    def master_keys(self) -> MasterKeys:
        """The master keys as configured; none given, the key directory's own file, made the
        first time (as the development signing keys are)."""
        previous = tuple(MasterKey.from_text(text) for text in self.master_key_previous)
        if self.master_key:
            return MasterKeys(MasterKey.from_text(self.master_key), previous)
        path = self.master_key_file or self.keys_dir / MASTER_KEY_FILE
        return MasterKeys(load_or_create_master_key(path), previous)

    @property
    def dev_issuer_enabled(self) -> bool:
        return self.dev_issuer if self.dev_issuer is not None else self.database_url is None

    def token_verifier(self) -> TokenVerifier:
        issuers: dict[str, JwksCache | KeySet] = {
            issuer: JwksCache(url) for issuer, url in self.trusted_issuers.items()
        }
        if self.dev_issuer_enabled:
            issuers[DEV_ISSUER] = DevIssuer(self.keys_dir).public_keys()
        return TokenVerifier(issuers, audience=self.audience)

    def service_tokens(self) -> ServiceTokenSource:
        if self.client_token_url and self.client_id and self.client_secret:
            return ClientCredentialsTokens(
                self.client_token_url,
                self.client_id,
                self.client_secret,
                "system/Consent.rs system/Event.rs",
            )
        if self.dev_issuer_enabled:
            return DevServiceTokens(
                DevIssuer(self.keys_dir), subject=SERVICE_SUBJECT, organization=SERVICE_HSA_ID
            )
        raise ValueError(
            "the SIP service needs client credentials for the consent service: set "
            "SIP_CLIENT_TOKEN_URL, SIP_CLIENT_ID and SIP_CLIENT_SECRET"
        )


def whole_log_readers_from_env(database_url_variable: str) -> tuple[str, ...] | None:
    """`SIP_WHOLE_LOG_READERS` or `CONSENT_WHOLE_LOG_READERS`: subjects separated by spaces
    or commas; set (even empty) it replaces the default."""
    service = database_url_variable.removesuffix("_DATABASE_URL")
    value = os.environ.get(f"{service}_WHOLE_LOG_READERS")
    return None if value is None else tuple(value.replace(",", " ").split())


def parse_trusted_issuers(value: str) -> dict[str, str]:
    """`issuer|jwks-url` pairs separated by spaces."""
    issuers = {}
    for pair in value.split():
        issuer, separator, jwks_url = pair.partition("|")
        if not separator or not jwks_url:
            raise ValueError("SIP_TRUSTED_ISSUERS holds issuer|jwks-url pairs, space-separated")
        issuers[issuer] = jwks_url
    return issuers


def _consent_settings_from_env() -> dict[str, object]:
    """CONSENT_TRUSTED_PEERS (token subjects, space-separated) and
    CONSENT_BLOCK_OVERRIDE_MAX_HOURS; unset, the defaults."""
    settings: dict[str, object] = {}
    if (peers := os.environ.get("CONSENT_TRUSTED_PEERS")) is not None:
        settings["consent_trusted_peers"] = tuple(peers.split())
    if hours := os.environ.get("CONSENT_BLOCK_OVERRIDE_MAX_HOURS"):
        settings["block_override_max_hours"] = float(hours)
    return settings
