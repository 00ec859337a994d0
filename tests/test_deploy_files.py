"""The files an operator runs in deploy/ are well-formed, without a container engine or systemd.

compose.yaml is parsed as YAML, the Dockerfile line by line, the systemd units with configparser,
and the nginx site by nginx itself (`nginx -t`; `make test` installs nginx first).
"""

from __future__ import annotations

import configparser
import datetime as dt
import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
APP_SERVICES = {"migrate", "web", "worker", "beat"}


def _compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: comments dropped, continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = pending + stripped
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # Keys are case-sensitive.
    assert parser.read(DEPLOY / "systemd" / name) == [str(DEPLOY / "systemd" / name)]
    return parser


def test_compose_defines_the_services_with_their_images_and_commands() -> None:
    services = _compose()["services"]
    assert set(services) == APP_SERVICES | {"db", "redis"}
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == "rempart:latest"
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["env_file"] == ".env"
        assert service["environment"]["DATABASE_URL"].endswith("@db:5432/rempart")
        assert service["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["web"]["command"] == ["python", "-m", "registry.serve"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "registry", "worker"]
    beat = services["beat"]["command"]
    assert beat[:4] == ["celery", "-A", "registry", "beat"]
    schedule = beat[beat.index("--schedule") + 1]
    assert any(
        schedule.startswith(volume.split(":")[1] + "/") for volume in services["beat"]["volumes"]
    ), "beat's schedule file must live on its volume"


def test_compose_starts_services_only_once_their_dependencies_are_ready() -> None:
    services = _compose()["services"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    for name in ("db", "redis", "web"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_compose_web_healthcheck_probes_health_in_valid_python() -> None:
    test = _compose()["services"]["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    probe = test[3]
    compile(probe, "healthcheck", "exec")
    assert "http://127.0.0.1:8000/health" in probe
    assert "'X-Forwarded-Proto': 'https'" in probe  # Or SECURE_SSL_REDIRECT answers 301.


def test_dockerfile_builds_from_python_311_slim_and_runs_as_a_user() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim AS build")
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert stages[-1] == "python:3.11-slim"
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1] not in {"root", "0", "root:root", "0:0"}
    assert not any(
        keyword == "ADD" and re.search(r"\b(https?|ftp)://", arguments)
        for keyword, arguments in instructions
    ), "no ADD of a remote URL: fetch and verify in a RUN instead"
    assert instructions[-1] == ("CMD", '["python", "-m", "registry.serve"]')


def test_dockerfile_installs_from_the_lock_and_collects_static_files() -> None:
    instructions = _dockerfile_instructions()
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any("pip install -c deploy/requirements.lock" in run for run in runs)
    # The base install is the partner client: the image needs the server's extra.
    assert any("-e '.[server]'" in run for run in runs)
    collect = [run for run in runs if "manage.py collectstatic --no-input" in run]
    assert len(collect) == 1
    assert "SECRET_KEY=build-only" in collect[0]
    environment = " ".join(arguments for keyword, arguments in instructions if keyword == "ENV")
    assert "SECRET_KEY" not in environment
    assert "KEY_PEPPER" not in environment
    for keyword, arguments in instructions:
        if keyword == "COPY" and not arguments.startswith("--from="):
            *sources, _destination = shlex.split(arguments)
            for source in sources:
                assert (ROOT / source).exists(), source


@pytest.mark.parametrize(
    ("unit", "executable", "arguments", "files"),
    [
        (
            "rempart-web.service",
            "python",
            ["-m", "registry.serve"],
            ["registry/serve.py", "registry/wsgi.py"],
        ),
        (
            "rempart-worker.service",
            "celery",
            ["-A", "registry", "worker"],
            ["registry/celery.py"],
        ),
        (
            "rempart-beat.service",
            "celery",
            ["-A", "registry", "beat"],
            ["registry/celery.py"],
        ),
        (
            "rempart-index-checkpoint.service",
            "python",
            ["manage.py", "index_checkpoint"],
            ["manage.py", "registry/management/commands/index_checkpoint.py"],
        ),
    ],
)
def test_systemd_unit_runs_the_registry_hardened(
    unit: str, executable: str, arguments: list[str], files: list[str]
) -> None:
    service = _unit(unit)["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"/opt/rempart/.venv/bin/{executable}"
    assert command[1 : 1 + len(arguments)] == arguments
    assert service["WorkingDirectory"] == "/opt/rempart"
    for path in files:
        assert (ROOT / path).is_file(), path
    assert service["EnvironmentFile"] == "/etc/rempart/env"
    assert service["User"] not in {"root", "0"}
    assert service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "true"
    assert service["ReadWritePaths"] == "/var/lib/rempart"
    if "--schedule" in command:
        assert command[command.index("--schedule") + 1].startswith("/var/lib/rempart/")


def test_systemd_timer_rewrites_the_index_checkpoint_hourly_and_privately() -> None:
    timer = _unit("rempart-index-checkpoint.timer")["Timer"]
    assert timer["OnCalendar"] == "hourly"
    assert timer["Persistent"] == "true"
    service = _unit("rempart-index-checkpoint.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["UMask"] == "0077"


def test_systemd_web_unit_reloads_with_hup() -> None:
    # registry/serve.py reloads the match index in its main process on SIGHUP, then granian
    # replaces the workers (tests/deploy/test_serve.py); gunicorn.conf.py does the same.
    assert _unit("rempart-web.service")["Service"]["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert "server.on_reload(before_fork)" in (ROOT / "registry" / "serve.py").read_text()
    assert "def on_reload(" in (DEPLOY / "gunicorn.conf.py").read_text()


def test_nginx_site_logs_no_client_address_and_limits_requests() -> None:
    site = (DEPLOY / "nginx" / "rempart.conf").read_text()
    formats = re.findall(r"log_format\s+(\S+)\s+(.*?);", site, flags=re.DOTALL)
    assert [name for name, _ in formats] == ["rempart_noaddr"]
    # Neither an address nor the query string (where a misplaced key would be) is logged.
    forbidden = re.findall(
        r"\$(?:[a-z_]*remote_addr|[a-z_]*forwarded_for|request|request_uri|args|query_string)\b",
        formats[0][1],
    )
    assert forbidden == []
    # The path only through the map that redacts long tokens; the site's name, not the Host header.
    assert re.findall(r"\$[a-z_]+", formats[0][1]).count("$rempart_logged_uri") == 1
    assert not re.search(r"\$(?:uri|host|http_[a-z_]+)\b", formats[0][1])
    uri_map = re.search(r"map \$uri \$rempart_logged_uri \{(.*?)\n\}", site, flags=re.DOTALL)
    assert uri_map is not None
    assert '"~[A-Za-z0-9_=+%-]{16,}"      "[redacted]";' in uri_map.group(1)
    access_logs = re.findall(r"^\s*access_log\s+([^;]*);", site, flags=re.MULTILINE)
    assert access_logs
    assert all(log == "off" or log.endswith(" rempart_noaddr") for log in access_logs)
    assert re.search(r"^\s*client_max_body_size 1m;", site, flags=re.MULTILINE)
    api = re.search(r"location ~ \^/\(api\|v1\)/ \{(.*?)\}", site, flags=re.DOTALL)
    assert api is not None
    assert "limit_req zone=rempart_api" in api.group(1)
    assert "limit_conn rempart_api_conn" in api.group(1)
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "Strict-Transport-Security" not in site.replace("# Strict-Transport-Security", "")


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.example.org")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None:
        pytest.fail("nginx is not installed: make system-deps installs it (or prints how)")
    certificate, key = _self_signed_certificate(tmp_path)
    site = (DEPLOY / "nginx" / "rempart.conf").read_text()
    live = "/etc/letsencrypt/live/registry.example.org/"
    assert f"ssl_certificate {live}fullchain.pem;" in site
    assert f"ssl_certificate_key {live}privkey.pem;" in site
    site = site.replace(f"{live}fullchain.pem", str(certificate))
    site = site.replace(f"{live}privkey.pem", str(key))
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "rempart.conf").write_text(site)
    temporary = "\n".join(
        f"    {kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"{temporary}\n"
        f"    include {tmp_path}/rempart.conf;\n"
        "}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(wrapper)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def test_the_operators_guide_names_only_real_settings_and_files() -> None:
    guide = (ROOT / "docs" / "operators.md").read_text()
    example = (DEPLOY / "env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    named = set(re.findall(r"`([A-Z][A-Z0-9_]*_[A-Z0-9_]+|DEBUG)(?:=[^`]*)?`", guide))
    named = {name.removesuffix("_FILE") for name in named} - {"POSTGRES_PASSWORD"}
    assert named, "the guide names no setting"
    assert named <= documented, sorted(named - documented)
    # deploy/.env is the operator's own copy of env.example, never in the repository.
    for pattern in set(re.findall(r"(?<!tests/)\b(deploy/[\w./*-]+\w)", guide)) - {"deploy/.env"}:
        assert list(ROOT.glob(pattern)), pattern


def test_the_operators_guide_shell_snippets_are_python() -> None:
    guide = (ROOT / "docs" / "operators.md").read_text()
    snippets = re.findall(r"shell --no-imports -c '\n(.*?)\n'", guide, flags=re.DOTALL)
    assert len(snippets) == 2
    for snippet in snippets:
        compile(snippet, "operators.md", "exec")
        imports = re.findall(r"^from ([\w.]+) import (\w+)$", snippet, flags=re.MULTILINE)
        assert imports
        for module, name in imports:
            assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


@pytest.mark.parametrize(
    "unit",
    [
        "rempart-web.service",
        "rempart-worker.service",
        "rempart-beat.service",
        "rempart-index-checkpoint.service",
        "rempart-index-checkpoint.timer",
    ],
)
def test_systemd_knows_every_directive_of_the_unit(unit: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "verify", str(DEPLOY / "systemd" / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The executables live in /opt/rempart on a server, not here: only that may be reported.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "is not executable: No such file or directory" not in line
    ]
    assert problems == []


def test_the_operators_guide_shell_blocks_parse(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "operators.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", guide, flags=re.DOTALL)
    assert len(blocks) >= 6
    for number, block in enumerate(blocks):
        script = tmp_path / f"block{number}.sh"
        script.write_text(block)
        result = subprocess.run(
            ["bash", "-n", str(script)], capture_output=True, text=True, timeout=10, check=False
        )
        assert result.returncode == 0, block + result.stderr
