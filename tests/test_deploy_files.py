"""The deployment files describe one topology and a configuration that starts: compose.yaml
parses and its replicas' environment passes the services' and the web client's own checks;
the services' systemd units keep keys in a state directory and migrate before start, the web
client's keeps nothing; every unit and container runs an app factory that exists; nginx
passes Host and X-Forwarded-*, and the services then build their FHIR links from them, not
from the upstream's name; the installed package holds the web client's templates."""

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from services.common.settings import ServiceSettings
from tests.fhir_data import FHIR_JSON, care_plan, new_personnummer
from tests.servers import free_port, wait_until

DEPLOY = Path(__file__).parent.parent / "deploy"
REPLICAS = ["sip-1", "sip-2", "consent-1", "consent-2"]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_postgresql_two_replicas_of_each_service_and_nginx(compose):
    services = compose["services"]
    assert {"postgres", "migrate", "nginx", *REPLICAS} <= set(services)
    for name in REPLICAS:
        replica = services[name]
        assert "keys:/var/lib/sip/keys" in replica["volumes"]  # one key directory for all
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(replica["healthcheck"]["test"])
    assert "consent.api" in " ".join(services["consent-1"]["command"])
    assert "sip migrate --service sip" in " ".join(services["migrate"]["command"])
    assert services["nginx"]["volumes"] == [
        "./nginx-compose.conf:/etc/nginx/conf.d/default.conf:ro"
    ]


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_the_compose_replicas_configuration_passes_the_services_check(
    compose, monkeypatch, service
):
    import os

    for variable in list(os.environ):
        if variable.startswith(("SIP_", "CONSENT_")):
            monkeypatch.delenv(variable)
    for key, value in compose["services"][f"{service}-1"]["environment"].items():
        monkeypatch.setenv(key, re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", value))
    settings = ServiceSettings.from_env(f"{service.upper()}_DATABASE_URL").checked(service)
    assert str(settings.keys_dir) == "/var/lib/sip/keys"


WEB_REPLICAS = ["web-1", "web-2"]


def test_compose_runs_two_web_client_replicas_of_the_same_image_behind_nginx(compose):
    services = compose["services"]
    for name in WEB_REPLICAS:
        web = services[name]
        assert web["image"] == services["sip-1"]["image"]
        command = " ".join(web["command"])
        assert command.startswith("uvicorn services.web.app:create_served_app --factory")
        assert "--proxy-headers" in command
        assert "/healthz" in " ".join(web["healthcheck"]["test"])
        assert "migrate" not in web.get("depends_on", {})  # it has no database
        assert web["environment"]["SIP_SERVICE_URL"] == "http://nginx:8000"
        assert web["environment"]["CONSENT_SERVICE_URL"] == "http://nginx:8001"
        assert services["nginx"]["depends_on"][name] == {"condition": "service_started"}
    # Plain HTTP to the web client on the host's loopback only, as in nginx.conf.
    assert "127.0.0.1:8002:8002" in services["nginx"]["ports"]


def test_the_compose_web_clients_configuration_passes_its_check(compose, monkeypatch):
    from services.web.settings import WebSettings

    for variable in list(os.environ):
        if variable.startswith(("SIP_", "CONSENT_", "WEB_")):
            monkeypatch.delenv(variable)
    for key, value in compose["services"]["web-1"]["environment"].items():
        monkeypatch.setenv(key, re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", value))
    settings = WebSettings.from_env().checked()
    # The development sign-in mints with the key in the one keys volume the web replicas mount.
    assert settings.dev_issuer and str(settings.key_dir) == "/var/lib/sip/keys"
    assert "keys:/var/lib/sip/keys" in compose["services"]["web-1"]["volumes"]


def test_the_pool_sizes_fit_the_compose_databases_max_connections(compose):
    environment = compose["services"]["sip-1"]["environment"]
    per_replica = 2 * (
        int(environment["SIP_DB_POOL_SIZE"]) + int(environment["SIP_DB_MAX_OVERFLOW"])
    )
    command = " ".join(compose["services"]["postgres"]["command"])
    max_connections = int(re.search(r"max_connections=(\d+)", command).group(1))
    assert len(REPLICAS) * per_replica + 10 <= max_connections


@pytest.mark.parametrize("service", ["sip-plans", "sip-consent"])
def test_the_systemd_units_keep_keys_in_the_state_directory_and_migrate_first(service):
    unit = (DEPLOY / "systemd" / f"{service}@.service").read_text()
    short = "sip" if service == "sip-plans" else "consent"
    assert "StateDirectory=sip sip/keys" in unit and "StateDirectoryMode=0700" in unit
    assert "DynamicUser=yes" in unit and "User=sip" in unit  # one user owns the shared keys
    assert "SIP_KEY_DIR=/var/lib/sip/keys" in unit
    assert f"ExecStartPre=/opt/sip/venv/bin/sip migrate --service {short}\n" in unit
    assert "--proxy-headers --forwarded-allow-ips 127.0.0.1" in unit


@pytest.mark.parametrize("service", ["sip-plans", "sip-consent"])
def test_the_service_units_and_compose_run_sip_workers_processes_defaulting_to_one(
    service, compose
):
    unit = (DEPLOY / "systemd" / f"{service}@.service").read_text()
    assert " --workers ${SIP_WORKERS}\n" in unit
    # EnvironmentFile= overrides Environment=, so sip.env may raise it; unset, it is 1.
    assert "\nEnvironment=SIP_WORKERS=1\n" in unit
    assert env_example("sip.env.example")["SIP_WORKERS"] == "1"
    name = "sip-1" if service == "sip-plans" else "consent-1"
    assert compose["services"][name]["command"][-2:] == ["--workers", "${SIP_WORKERS:-1}"]


UNITS = ["sip-plans", "sip-consent", "sip-web"]
HARDENING = ["DynamicUser=yes", "UMask=0077", "NoNewPrivileges=yes", "PrivateTmp=yes",
             "ProtectHome=yes", "Restart=on-failure"]  # fmt: skip


def unit(name):
    return (DEPLOY / "systemd" / f"{name}@.service").read_text()


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_is_one_hardened_replica_on_its_instances_port_behind_local_nginx(name):
    text = unit(name)
    for line in HARDENING:
        assert f"\n{line}\n" in text, line
    assert "EnvironmentFile=/etc/sip/sip.env" in text
    assert "--host 127.0.0.1 --port %i --no-access-log" in text
    assert "--proxy-headers --forwarded-allow-ips 127.0.0.1" in text


def test_the_web_client_unit_keeps_no_state_and_cannot_read_the_services_keys():
    text = unit("sip-web")
    assert "StateDirectory" not in text and "ExecStartPre" not in text  # no data, no schema
    assert "User=sip-web\n" in text  # not the services' user, who owns /var/lib/sip
    # The development issuer's trial gives it their user and keys, in a drop-in of its own.
    trial = (DEPLOY / "systemd" / "sip-web@.service.d" / "development-issuer.conf").read_text()
    assert "User=sip\n" in trial and "StateDirectory=sip sip/keys" in trial
    assert "SIP_KEY_DIR=/var/lib/sip/keys" in trial


def env_example(name):
    """The variables an example environment file sets, over this process's environment
    without any of ours (as systemd's EnvironmentFile gives a unit)."""
    ours = ("SIP_", "CONSENT_", "WEB_")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            environment[key.strip()] = value.strip()
    return environment


def web_unit_command(port):
    """The web unit's ExecStart, with this virtualenv's uvicorn for /opt/sip/venv's."""
    command = re.search(r"^ExecStart=(.*)$", unit("sip-web"), re.MULTILINE).group(1)
    arguments = shlex.split(command.replace("%i", str(port)))
    assert arguments[0] == "/opt/sip/venv/bin/uvicorn"
    return [sys.executable, "-m", "uvicorn", *arguments[1:]]


def test_the_web_unit_starts_on_the_production_example_and_refuses_in_one_line_without_it():
    environment = env_example("sip.env.example")
    port = free_port()
    process = subprocess.Popen(
        web_unit_command(port), env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        assert wait_until(lambda: httpx.get(url).status_code == 200, seconds=20), (
            process.poll() is not None and process.stdout.read().decode()
        )
        answer = httpx.get(url)
        assert answer.headers["cache-control"] == "no-store"
        assert "Strict-Transport-Security" in answer.headers  # WEB_PUBLIC_URL is https
    finally:
        process.terminate()
        process.wait(timeout=10)
    del environment["WEB_SESSION_SECRET"]
    refused = subprocess.run(
        web_unit_command(free_port()), env=environment, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("not started: ")
    assert "WEB_SESSION_SECRET" in refused.stderr


def web_settings_of(example, monkeypatch):
    from services.web.settings import WebSettings

    for variable in list(os.environ):
        if variable.startswith(("SIP_", "CONSENT_", "WEB_")):
            monkeypatch.delenv(variable)
    for key, value in env_example(example).items():
        monkeypatch.setenv(key, value)
    return WebSettings.from_env().checked()


def test_the_production_example_signs_users_in_at_the_name_nginx_serves_the_web_client_on(
    monkeypatch,
):
    settings = web_settings_of("sip.env.example", monkeypatch)
    assert not settings.dev_issuer and settings.oidc_enabled and settings.secure_cookies
    web_names = {
        re.search(r"server_name ([^;]+);", block).group(1)
        for block in server_blocks((DEPLOY / "nginx-tls.conf").read_text())
        if "proxy_pass http://sip_web;" in block
    }
    assert web_names == {urlsplit(settings.public_url).hostname}
    # Both services through nginx.conf's plain ports, as the SIP service reaches the other.
    assert settings.sip_url == "http://127.0.0.1:8000"
    assert settings.consent_url == "http://127.0.0.1:8001"


def test_the_development_example_serves_the_web_client_on_nginxs_loopback_port(monkeypatch):
    settings = web_settings_of("sip-dev.env.example", monkeypatch)
    assert settings.dev_issuer and not settings.secure_cookies
    assert settings.public_url == "http://127.0.0.1:8002"
    assert "listen 127.0.0.1:8002;" in (DEPLOY / "nginx.conf").read_text()
    assert str(settings.key_dir) == "/var/lib/sip/keys"  # the drop-in's state directory


def factories():
    """Every `module:factory` a unit, the image or the compose file runs."""
    texts = [unit(name) for name in UNITS]
    texts.append((DEPLOY.parent / "Dockerfile").read_text())
    texts.append((DEPLOY / "compose.yaml").read_text())
    return sorted(set(re.findall(r"(services\.[\w.]+):(\w+)\W+--factory", "\n".join(texts))))


def test_every_app_factory_the_deployment_runs_exists_and_is_create_served_app():
    found = factories()
    assert {module for module, _ in found} == {
        "services.sip.api",
        "services.consent.api",
        "services.web.app",
    }, found
    for module, name in found:
        # create_served_app: a configuration that cannot work ends as one line, exit 1.
        assert name == "create_served_app", (module, name)
        assert callable(getattr(importlib.import_module(module), name))


def upstream_ports(conf):
    return re.findall(r"server 127\.0\.0\.1:(\d+)", conf)


def server_blocks(conf):
    """Each top-level `server { ... }` block's text, in order."""
    return re.findall(r"^server \{\n.*?^\}", conf, re.MULTILINE | re.DOTALL)


def test_nginx_balances_the_units_ports_and_passes_the_forwarded_headers():
    conf = (DEPLOY / "nginx.conf").read_text()
    assert upstream_ports(conf) == ["8100", "8101", "8200", "8201", "8300", "8301"]
    for header in ("Host $http_host", "X-Forwarded-For", "X-Forwarded-Proto $scheme"):
        assert conf.count(f"proxy_set_header {header}") == 3, header
    assert conf.count("max_fails=3 fail_timeout=10s") == 6
    tls = (DEPLOY / "nginx-tls.conf").read_text()
    assert tls.count("ssl_certificate ") == 3 and tls.count("proxy_set_header Host $http_host") == 3


def test_nginx_serves_the_web_client_on_its_own_port_and_name_the_services_where_they_were():
    listens = {
        re.search(r"listen (\S+);", block).group(1): re.search(r"proxy_pass (\S+);", block).group(1)
        for block in server_blocks((DEPLOY / "nginx.conf").read_text())
    }
    # Plain HTTP to the web client on loopback only: it refuses http elsewhere.
    assert listens == {
        "8000": "http://sip_plans",
        "8001": "http://sip_consent",
        "127.0.0.1:8002": "http://sip_web",
    }
    tls = server_blocks((DEPLOY / "nginx-tls.conf").read_text())
    names = {
        re.search(r"server_name ([^;]+);", block).group(1): re.search(
            r"(proxy_pass [^;]+|return 301)", block
        ).group(1)
        for block in tls
    }
    assert names == {
        "sip.region.example": "proxy_pass http://sip_plans",
        "consent.region.example": "proxy_pass http://sip_consent",
        "sip-web.region.example": "proxy_pass http://sip_web",
        "sip.region.example consent.region.example sip-web.region.example": "return 301",
    }
    web = next(block for block in tls if "sip_web" in block)
    assert "X-Forwarded-Proto $scheme" in web and "Strict-Transport-Security" in web
    # The client's own HSTS header is replaced by nginx's, not doubled.
    assert "proxy_hide_header Strict-Transport-Security" in web


def test_the_compose_nginx_differs_from_the_units_only_in_its_upstreams():
    def servers(conf):
        body = conf[conf.index("\nupstream ") :]
        # In a container nginx listens on every interface; compose publishes the web
        # client's port on the host's loopback only.
        body = body.replace("listen 127.0.0.1:", "listen ")
        return re.sub(r"server [\w.-]+:\d+", "server ADDRESS", body)

    units = (DEPLOY / "nginx.conf").read_text()
    containers = (DEPLOY / "nginx-compose.conf").read_text()
    assert servers(units) == servers(containers)


def test_fhir_links_follow_the_forwarded_host_and_scheme(system):
    """What nginx sends (deploy/nginx.conf) to a replica served as the units serve it
    (uvicorn believes X-Forwarded-Proto from 127.0.0.1)."""
    personnummer = new_personnummer()
    system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    proxied = {
        "Host": "sip.region.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "192.0.2.7",
    }
    found = system.sip.get(
        "/fhir/CarePlan", params={"subject:identifier": personnummer}, headers=proxied
    ).json()
    assert found["link"][0]["url"].startswith("https://sip.region.example/fhir/CarePlan")
    assert found["entry"][0]["fullUrl"].startswith("https://sip.region.example/fhir/CarePlan/")
    metadata = system.sip.get("/fhir/metadata", headers=proxied).json()
    assert "https://sip.region.example/fhir" in str(metadata)
    # Without the headers (nginx's default Host is the upstream's name) the links are wrong:
    upstream = system.sip.get("/fhir/metadata", headers={"Host": "sip_plans"}).json()
    assert "http://sip_plans/fhir" in str(upstream)


def test_every_file_the_services_ship_besides_code_is_package_data():
    """`pip install .` (the image, the units' virtualenv) copies only what pyproject names:
    the web client's templates and styles left out, it would not start."""
    import tomllib

    root = DEPLOY.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_data = setuptools.get("package-data", {})
    # Globbed as setuptools globs them: `*` never crosses a folder.
    shipped = {
        path
        for package, patterns in package_data.items()
        for pattern in patterns
        for path in (root / package.replace(".", "/")).glob(pattern)
    }
    for path in (root / "services").rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        assert path in shipped, f"{path.relative_to(root)} is not package data in pyproject.toml"


def test_sip_up_runs_workers_processes_of_each_service_and_refuses_none(capsys):
    from services.cli import main, service_command

    assert service_command("services.sip.api", "127.0.0.1", 8000, 2)[-2:] == ["--workers", "2"]
    assert "--workers" not in service_command("services.sip.api", "127.0.0.1", 8000)
    with pytest.raises(SystemExit):
        main(["up", "--workers", "0"])
    assert "--workers: 0: at least 1" in capsys.readouterr().err
