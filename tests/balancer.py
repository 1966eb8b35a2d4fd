"""Debian's nginx running the shipped `deploy/nginx.conf`, moved to the test's ports and
folders by plain string replacement: the file tested is the file an operator installs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"
# The ports in the shipped file: the balancer's, then each upstream's replicas.
SIP_LISTEN, CONSENT_LISTEN, WEB_LISTEN = 8000, 8001, 8002
SIP_REPLICAS, CONSENT_REPLICAS, WEB_REPLICAS = (8100, 8101), (8200, 8201), (8300, 8301)


def nginx_binary() -> str | None:
    """nginx on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def _replace(text: str, old: str, new: str) -> str:
    # A shipped file that no longer says what is replaced must fail the test, not quietly
    # leave the balancer pointing at production ports.
    assert old in text, f"deploy/nginx.conf no longer contains {old!r}"
    return text.replace(old, new)


def moved_config(directory: Path, listen: dict[str, int], replicas: dict[str, list[int]]) -> Path:
    """A main configuration around the shipped file (which is read inside `http`), with
    pid, logs and temporary files in `directory`. The web client's server moves too, to a
    free port when the test runs no web client (a developer's `sip up` may hold 8002)."""
    site = SHIPPED.read_text()
    site = _replace(site, f"listen {SIP_LISTEN};", f"listen 127.0.0.1:{listen['sip']};")
    site = _replace(site, f"listen {CONSENT_LISTEN};", f"listen 127.0.0.1:{listen['consent']};")
    web = listen.get("web") or free_port()
    site = _replace(site, f"listen 127.0.0.1:{WEB_LISTEN};", f"listen 127.0.0.1:{web};")
    upstreams = (("sip", SIP_REPLICAS), ("consent", CONSENT_REPLICAS), ("web", WEB_REPLICAS))
    for service, shipped in upstreams:
        if service == "web" and service not in replicas:
            continue  # nothing is sent to the web client's upstream
        for port, moved in zip(shipped, replicas[service], strict=True):
            site = _replace(site, f"127.0.0.1:{port} ", f"127.0.0.1:{moved} ")
    site = _replace(site, "/var/log/nginx/", f"{directory}/")
    (directory / "site.conf").write_text(site)
    temporary = "\n".join(
        f"    {kind}_temp_path {directory}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Started as root, nginx's workers would run as `nobody`, who cannot enter the test's
    # private temporary folder (for responses buffered to disk).
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = directory / "nginx.conf"
    main.write_text(
        f"{user}pid {directory}/nginx.pid;\nerror_log {directory}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n{temporary}\n    access_log {directory}/access.log;\n"
        f"    include {directory}/site.conf;\n}}\n"
    )
    return main


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def running_nginx(
    directory: Path, listen: dict[str, int], replicas: dict[str, list[int]]
) -> Iterator[dict[str, str]]:
    """nginx in the foreground as a child process; yields each service's balanced URL."""
    directory.mkdir(parents=True, exist_ok=True)
    config = moved_config(directory, listen, replicas)
    command = [nginx_binary(), "-p", str(directory), "-e", f"{directory}/error.log", "-c"]
    tested = subprocess.run([*command, str(config), "-t"], capture_output=True, text=True)
    assert tested.returncode == 0, f"nginx -t refused the configuration: {tested.stderr}"
    process = subprocess.Popen(
        [*command, str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not all(_listening(port) for port in listen.values()):
            assert process.poll() is None, (directory / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)
        yield {service: f"http://127.0.0.1:{port}" for service, port in listen.items()}
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown, workers included
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
