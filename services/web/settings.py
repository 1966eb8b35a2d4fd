"""Where the web client finds the services, how users sign in, and how its session is kept:
from the environment (`sip up` sets the embedded default's), or from the caller (tests)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from services.common.configuration_check import ConfigurationError
from services.common.data_dir import data_dir_from_env
from services.common.key_files import key_dir_from_env

SESSION_KEY_FILE = "web-session-secret"


@dataclass(frozen=True)
class WebSettings:
    sip_url: str = "http://127.0.0.1:8000"
    consent_url: str = "http://127.0.0.1:8001"
    # The development sign-in (demo users, tokens from the embedded issuer): only where the
    # services themselves trust the development issuer (the embedded default).
    dev_issuer: bool = True
    key_dir: Path = field(default_factory=lambda: key_dir_from_env(data_dir_from_env()))
    # Signs the session cookie; unset on the embedded default, a random one kept in the key
    # directory (so a restart keeps users signed in); production must set WEB_SESSION_SECRET.
    session_secret: str | None = None
    # Production: OpenID Connect (authorization code with PKCE) against this issuer.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scope: str = "openid"
    # Where users reach the client (https in production): the cookie is Secure then.
    public_url: str = "http://127.0.0.1:8002"
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> WebSettings:
        database_url = os.environ.get("SIP_DATABASE_URL")
        dev = os.environ.get("SIP_DEV_ISSUER")
        port = os.environ.get("WEB_PORT", "8002")
        return cls(
            sip_url=os.environ.get("SIP_SERVICE_URL")
            or f"http://127.0.0.1:{os.environ.get('SIP_PORT', '8000')}",
            consent_url=os.environ.get("CONSENT_SERVICE_URL")
            or f"http://127.0.0.1:{os.environ.get('CONSENT_PORT', '8001')}",
            dev_issuer=(dev == "enabled") if dev is not None else database_url is None,
            key_dir=key_dir_from_env(data_dir_from_env()),
            session_secret=os.environ.get("WEB_SESSION_SECRET") or None,
            oidc_issuer=os.environ.get("WEB_OIDC_ISSUER") or None,
            oidc_client_id=os.environ.get("WEB_OIDC_CLIENT_ID") or None,
            oidc_client_secret=os.environ.get("WEB_OIDC_CLIENT_SECRET") or None,
            oidc_scope=os.environ.get("WEB_OIDC_SCOPE", "openid"),
            public_url=os.environ.get("WEB_PUBLIC_URL", f"http://127.0.0.1:{port}"),
        )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def on_loopback(self) -> bool:
        host = urlsplit(self.public_url).hostname or ""
        return host in ("localhost", "::1") or host.startswith("127.")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def checked(self) -> WebSettings:
        """These settings, or ConfigurationError naming what a working client still needs."""
        problems = []
        if not self.dev_issuer and not self.oidc_enabled:
            problems.append(
                "nobody could sign in: set WEB_OIDC_ISSUER and WEB_OIDC_CLIENT_ID "
                "(or SIP_DEV_ISSUER=enabled for a trial)"
            )
        if not self.dev_issuer and not self.session_secret:
            problems.append("set WEB_SESSION_SECRET (shared by every replica of the client)")
        if not self.dev_issuer and not self.secure_cookies and not self.on_loopback:
            problems.append("WEB_PUBLIC_URL must be https:// in production")
        if problems:
            raise ConfigurationError("the web client cannot start: " + "; ".join(problems))
        return self

    def session_signing_secret(self) -> str:
        if self.session_secret:
            return self.session_secret
        path = self.key_dir / SESSION_KEY_FILE
        if not path.exists():
            self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
            temporary.touch(mode=0o600)
            temporary.write_text(secrets.token_urlsafe(48))
            try:
                os.link(temporary, path)  # the first of several starting processes wins
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return path.read_text().strip()
