"""The `sip` command: run the system on the embedded default."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from contracts.actor import ROLES
from services.common.auth.tokens import DEV_KEY_FILE, DevIssuer, default_scopes
from services.common.demo_identities import DEMO_USERS
from services.common.key_files import key_dir_from_env
from services.common.migrations.runner import migrate_service
from services.common.migrations.schema_version import SchemaNotCurrent
from services.common.persistence import DEFAULT_DATA_DIR
from services.common.settings import ServiceSettings
from services.ops.commands import DATABASE_URL_VARIABLES, explained
from services.ops.commands import add_commands as add_audit_commands
from services.ops.offline import NoSystemThere


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sip",
        description="SIP case service: run it, get development tokens, check its logs",
        epilog="start here:\n  sip up --demo        then open http://127.0.0.1:8002\n"
        "  sip COMMAND --help  for what a command does, with an example",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        **explained("start the SIP and consent services and the web client", "sip up --demo"),
    )
    up.add_argument("--data-dir", default=os.environ.get("SIP_DATA_DIR", DEFAULT_DATA_DIR))
    up.add_argument("--host", default=os.environ.get("SIP_HOST", "127.0.0.1"))
    up.add_argument("--demo", action="store_true", help="also load a small demo data set")
    up.add_argument(
        "--workers",
        type=positive_count,
        default=int(os.environ.get("SIP_WORKERS") or 1),
        help="server processes per service (SIP and consent), sharing its port and database "
        "(default: SIP_WORKERS, or 1)",
    )
    token = commands.add_parser(
        "token",
        **explained(
            "print a bearer token from the embedded development issuer",
            "TOKEN=$(sip token --role coordinator --org SE2321000032-DEMO1)",
        ),
    )
    token.add_argument("--org", help="the organisation's HSA-id (claim org)")
    token.add_argument("--unit", help="the unit's HSA-id the user acts from (claim unit)")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--sub", default="dev-user", help="the user or system id")
    token.add_argument("--patient", help="for --role patient: the personnummer")
    token.add_argument("--scope", action="append", help="SMART scopes (default: by role)")
    token.add_argument("--hours", type=float, default=8, help="lifetime in hours")
    token.add_argument("--data-dir", default=os.environ.get("SIP_DATA_DIR", DEFAULT_DATA_DIR))
    add_audit_commands(commands)
    arguments = parser.parse_args(argv)
    if hasattr(arguments, "run"):
        try:
            return arguments.run(arguments)
        except (SchemaNotCurrent, NoSystemThere) as refusal:
            print(refusal, file=sys.stderr)
            return 1
    if arguments.command == "up":
        return run_up(Path(arguments.data_dir), arguments.host, arguments.demo, arguments.workers)
    if arguments.command == "token":
        return print_token(arguments)
    return 2


def print_token(arguments: argparse.Namespace) -> int:
    settings = ServiceSettings.from_env("SIP_DATABASE_URL")
    if not settings.dev_issuer_enabled:
        print(
            "the development issuer is off: the services run on PostgreSQL (production). "
            "Get a token from your identity provider, or set SIP_DEV_ISSUER=enabled.",
            file=sys.stderr,
        )
        return 1
    if arguments.role == "patient" and not arguments.patient:
        print("--role patient needs --patient <personnummer>", file=sys.stderr)
        return 2
    if arguments.role != "patient" and not arguments.org:
        print(f"--role {arguments.role} needs --org <HSA-id>", file=sys.stderr)
        return 2
    key_dir = key_dir_from_env(Path(arguments.data_dir)).resolve()
    if not (key_dir / DEV_KEY_FILE).is_file():
        # A new key here would sign tokens no running service trusts (401 for each).
        print(
            f"no development issuer key in {key_dir}: run `sip token` in the folder `sip up` "
            "was started in, or name its data folder with --data-dir or SIP_DATA_DIR",
            file=sys.stderr,
        )
        return 1
    token = DevIssuer(key_dir).mint(
        subject=arguments.sub,
        role=arguments.role,
        organization=arguments.org,
        unit=arguments.unit,
        patient=arguments.patient,
        scopes=tuple(arguments.scope or default_scopes(arguments.role)),
        lifetime_seconds=int(arguments.hours * 3600),
    )
    print(token)
    return 0


def print_token_lines(data_dir: Path) -> None:
    """Ready-to-paste `sip token` lines for the demo users, for calling the API with curl."""
    sip = Path(sys.executable).with_name("sip")
    command = str(sip) if sip.exists() else "sip"
    print("Tokens for the API (development issuer), e.g. TOKEN=$(<line>):")
    for user in DEMO_USERS:
        who = (
            f"--patient {user.patient}"
            if user.patient
            else f"--org {user.organization} --unit {user.unit}"
        )
        print(
            f"  {command} token --data-dir {data_dir.resolve()} --role {user.role} {who} "
            f"--sub {user.key}   # {user.name}, {user.description}"
        )


def positive_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text}: at least 1")
    return count


def service_command(module: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The server of one service. With several workers uvicorn runs that many processes on
    the one port, each a whole replica of the service (its own aggregate cache, permit cache,
    consent feed follower and subscription worker), on the one database: what keeps replicas
    correct keeps them correct (the event store's unique key refuses a stale write, each
    permit cache follows the consent feed itself, a subscription is claimed by one at a time:
    docs/decisions/0010-several-workers.md)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"{module}:create_served_app",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        # The access log prints query strings, which may hold a personnummer.
        "--no-access-log",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]


def run_up(data_dir: Path, host: str, demo: bool, workers: int = 1) -> int:
    sip_port = int(os.environ.get("SIP_PORT", "8000"))
    consent_port = int(os.environ.get("CONSENT_PORT", "8001"))
    web_port = int(os.environ.get("WEB_PORT", "8002"))
    sip_url, consent_url = f"http://{host}:{sip_port}", f"http://{host}:{consent_port}"
    web_url = f"http://{host}:{web_port}"
    env = {
        **os.environ,
        "SIP_DATA_DIR": str(data_dir.resolve()),
        "CONSENT_SERVICE_URL": consent_url,
        "SIP_SERVICE_URL": sip_url,
        "WEB_PUBLIC_URL": os.environ.get("WEB_PUBLIC_URL", web_url),
    }
    # The embedded default migrates itself: `sip up` is the only process touching its files.
    for service, variable in DATABASE_URL_VARIABLES.items():
        print(migrate_service(service, os.environ.get(variable), data_dir), flush=True)
    services: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        # The consent service first: the SIP service follows its log from the start; the web
        # client last, as it only calls the other two.
        for name, module, port, url in (
            ("consent", "services.consent.api", consent_port, consent_url),
            ("sip", "services.sip.api", sip_port, sip_url),
            ("web", "services.web.app", web_port, web_url),
        ):
            # The web client holds no data; its one process only calls the other two.
            count = 1 if name == "web" else workers
            services[name] = subprocess.Popen(service_command(module, host, port, count), env=env)
            if not wait_ready(url, services[name], "/healthz" if name == "web" else "/readyz"):
                print(f"the {name} service did not start", file=sys.stderr)
                return 1
        storage = (os.environ.get("SIP_DATABASE_URL") and "PostgreSQL") or f"SQLite in {data_dir}"
        print(f"Web client:      {web_url}  (sign in as a demo user there)")
        print(f"SIP service:     {sip_url}/fhir  (CapabilityStatement: {sip_url}/fhir/metadata)")
        print(f"Consent service: {consent_url}/fhir")
        print(f"Storage:         {storage}")
        print(f"Workers:         {workers} per service (SIP, consent)")
        if ServiceSettings.from_env("SIP_DATABASE_URL").dev_issuer_enabled:
            print_token_lines(data_dir)
        if demo:
            from services.demo import load_demo

            for line in load_demo(sip_url, consent_url, DevIssuer(key_dir_from_env(data_dir))):
                print(f"demo: {line}")
        print("Press Ctrl-C to stop.", flush=True)
        while not stopping:
            for name, process in services.items():
                if process.poll() is not None:
                    print(f"the {name} service stopped ({process.returncode})", file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        for process in services.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in services.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        print("stopped", flush=True)


def wait_ready(
    url: str, process: subprocess.Popen[bytes], probe: str = "/readyz", seconds: float = 30
) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}{probe}", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


if __name__ == "__main__":
    sys.exit(main())
