"""`sip up` as a user runs it, in processes of its own on free ports: the SIP and consent
services and the web client, on a backend's storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx

from services.common.auth.tokens import default_scopes
from tests.fhir_data import REGION
from tests.servers import free_port, http_client, wait_until


class SipUp:
    def __init__(self, backend, *arguments, organization=REGION):
        self.backend = backend  # its issuer mints tokens for other users
        self.sip_port, self.consent_port = free_port(), free_port()
        self.web_port = free_port()
        env = {
            **os.environ,
            "SIP_PORT": str(self.sip_port),
            "CONSENT_PORT": str(self.consent_port),
            "WEB_PORT": str(self.web_port),
        }
        env["SIP_DEV_ISSUER"] = "enabled"  # tests mint tokens on PostgreSQL too
        for service, variable in (("sip", "SIP_DATABASE_URL"), ("consent", "CONSENT_DATABASE_URL")):
            env.pop(variable, None)
            if backend.database_urls[service]:
                env[variable] = backend.database_urls[service]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli",
                "up",
                "--data-dir",
                str(backend.data_dir),
                *arguments,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, to kill it with its services
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        token = backend.issuer.mint(
            subject="coordinator-1",
            role="coordinator",
            organization=organization,
            scopes=default_scopes("coordinator"),
        )
        headers = {"Authorization": f"Bearer {token}"}
        self.sip = http_client(f"http://127.0.0.1:{self.sip_port}", headers=headers)
        self.consent = http_client(f"http://127.0.0.1:{self.consent_port}", headers=headers)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_printed(self, text: str, seconds: float = 90) -> bool:
        """Waits until `sip up` has printed `text` (the demo loads after the services are
        ready)."""
        return wait_until(lambda: self.printed(text), seconds=seconds, interval=0.1)

    def wait_ready(self) -> None:
        # Generous: under load (a busy CI machine) three interpreters take long to start, and
        # waiting costs nothing once they are up.
        ready = wait_until(
            lambda: (
                self.sip.get("/readyz").status_code == 200
                and self.consent.get("/readyz").status_code == 200
                and httpx.get(f"{self.web_url}/healthz", timeout=2).status_code == 200
            ),
            seconds=90,
        )
        assert ready, self.stop()

    def crash(self) -> None:
        """SIGKILL to `sip up` and both its services at once: no shutdown of any kind."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.sip.close()
        self.consent.close()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        self.sip.close()
        self.consent.close()
        return "".join(self.lines)
