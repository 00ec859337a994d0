"""The development ``.env`` and start-up errors, as a newcomer and an operator meet them.

The subprocess tests run a copy of the project (manage.py, registry/, api/, deploy/) in a
temporary directory, so that its ``.env`` is the copy's own, with an environment stripped of
every setting the test suite passes: as on a fresh machine after ``make run``, or on a
production machine where a variable was forgotten.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from registry.dotenv import dotenv_load, dotenv_parse, dotenv_write_development
from tests.environment import TEST_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
SECRETS = ["SECRET_KEY", "KEY_PEPPER", "RECEIPT_SIGNING_KEY"]
# What make test (or this suite) sets, and a shell on a fresh machine does not.
_STRIPPED = {
    *TEST_ENVIRONMENT,
    "CELERY_BROKER_URL",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DJANGO_SETTINGS_MODULE",
    "HOST",
    "PORT",
    "SITE_ROOT",
    "ALLOWED_HOSTS",
}


def test_parse_reads_names_and_values_and_skips_comments() -> None:
    text = "# a comment\n\nDEBUG=1\nexport PORT = 8100\nSITE_ROOT='http://a b'\nX=a=b\nEMPTY=\n"
    assert dotenv_parse(text) == {
        "DEBUG": "1",
        "PORT": "8100",
        "SITE_ROOT": "http://a b",
        "X": "a=b",
        "EMPTY": "",
    }


@pytest.mark.parametrize("line", ["just words", "=value", "2X=1", "A-B=1"])
def test_parse_names_the_file_and_line_of_a_malformed_line(line: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^dev\.env, line 2: expected NAME=value\.$"):
        dotenv_parse(f"DEBUG=1\n{line}\n", source="dev.env")


def test_the_real_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("DEBUG=1\nSECRET_KEY=from-file\nKEY_PEPPER=from-file\nPORT=8100\n")
    environ = {"DEBUG": "0", "KEY_PEPPER_FILE": "/run/credentials/pepper"}
    dotenv_load(path, environ=environ)
    assert environ == {
        "DEBUG": "0",
        "KEY_PEPPER_FILE": "/run/credentials/pepper",  # and no KEY_PEPPER beside it
        "SECRET_KEY": "from-file",
        "PORT": "8100",
    }


def test_a_missing_file_adds_nothing(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    dotenv_load(tmp_path / ".env", environ=environ)
    assert environ == {}


def test_the_development_file_is_private_random_and_written_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    assert dotenv_write_development(first)
    assert dotenv_write_development(second)
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    values, others = dotenv_parse(first.read_text()), dotenv_parse(second.read_text())
    assert values["DEBUG"] == "1"
    assert set(SECRETS) <= values.keys()
    for name in SECRETS:
        assert values[name] != others[name], name
        assert values[name] != TEST_ENVIRONMENT[name], name
    assert len(values["SECRET_KEY"]) >= 50
    assert len(base64.b64decode(values["RECEIPT_SIGNING_KEY"], validate=True)) == 32
    before = first.read_text()
    assert not dotenv_write_development(first)
    assert first.read_text() == before


def test_git_ignores_the_development_file() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", ".env"], cwd=ROOT, check=False, timeout=30
    )
    assert result.returncode == 0


def test_a_bare_pytest_runs_with_make_tests_values() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test_env = makefile[makefile.index("TEST_ENV :=") :].split("\n\n", 1)[0]
    for name, value in TEST_ENVIRONMENT.items():
        if name not in {"DATABASE_URL", "REDIS_URL"}:  # make test's own defaults, checked below
            assert f"{name}={value}" in test_env.split(), name
    assert "TEST_DATABASE_URL ?= $(or $(DATABASE_URL)," + TEST_ENVIRONMENT[
        "DATABASE_URL"
    ] + ")" in (makefile)
    assert "TEST_REDIS_URL ?= $(or $(REDIS_URL)," + TEST_ENVIRONMENT["REDIS_URL"] + ")" in makefile
    # Keeps this run's database and Redis: only what make test adds is taken away.
    kept = {"DATABASE_URL", "REDIS_URL"}
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED - kept}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "pytest"),
            "tests/test_settings.py",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


# --- A copy of the project, run as a newcomer or an operator runs it --------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what manage.py, the web servers and Celery need, without this checkout's .env."""
    copy = tmp_path / "project"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("registry", "api", "deploy"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    shutil.copy2(ROOT / "manage.py", copy / "manage.py")
    return copy


def _fresh_shell(project: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell on a fresh machine: none of the suite's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _STRIPPED and not key.startswith(tuple(f"{name}_" for name in SECRETS))
    }
    venv_bin = str(Path(sys.executable).parent)
    env |= {"PATH": f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"}
    env |= {"DATA_DIR": str(project / ".data"), **extra}
    return env


def _run(
    command: list[str], project: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.mark.slow
def test_after_make_run_manage_py_starts_with_the_development_settings(project: Path) -> None:
    env = _fresh_shell(project, KEY_PEPPER="from-the-environment")
    written = _run([sys.executable, "-m", "registry.dotenv", ".env"], project, env)  # as make run
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    values = dotenv_parse((project / ".env").read_text())

    shown = _run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            "import datetime as dt\n"
            "from django.conf import settings as s\n"
            "from registry.receipts import ReceiptEvent, receipt_sign\n"
            "receipt = receipt_sign(reference='R', event=ReceiptEvent.REGISTERED,\n"
            "    issued_at=dt.datetime.now(dt.UTC), scope='intimate', hashes=[bytes(32)])\n"
            "print(s.BASE_DIR, s.DEBUG, s.SECRET_KEY, s.KEY_PEPPER, s.RECEIPT_SIGNING_KEY)\n"
            "print(receipt.service)\n",
        ],
        project,
        env | {"PORT": "8100"},  # as `PORT=8100 make run`
    )
    assert shown.returncode == 0, shown.stderr
    *_, settings_line, service = shown.stdout.strip().splitlines()
    base_dir, debug, secret_key, pepper, receipt_key = settings_line.split()
    assert Path(base_dir) == project
    assert debug == "True"
    assert secret_key == values["SECRET_KEY"]
    assert pepper == "from-the-environment"  # the environment wins
    assert receipt_key == values["RECEIPT_SIGNING_KEY"]
    assert service == "http://127.0.0.1:8100"  # receipts name the address served

    # The commands of docs/partners.md and of the README's `make superuser`, as written.
    for command in (
        ["manage.py", "migrate", "--no-input", "--verbosity", "0"],
        ["manage.py", "partner_create", "Example Social", "--scopes", "match"],
        ["manage.py", "createsuperuser", "--no-input", "--username", "admin", "--email", ""],
    ):
        result = _run(
            [sys.executable, *command],
            project,
            env | {"DJANGO_SUPERUSER_PASSWORD": "a-long-local-password"},
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
    assert result.stdout.strip() == "Superuser created successfully."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _production(project: Path) -> dict[str, str]:
    """Production-like: DEBUG off, no .env, every secret set."""
    return _fresh_shell(
        project,
        DEBUG="0",
        SECRET_KEY="a-production-like-secret-key-of-fifty-characters-or-more-0123456789",
        KEY_PEPPER="a-production-like-pepper",
        RECEIPT_SIGNING_KEY=base64.b64encode(b"r" * 32).decode(),
        ALLOWED_HOSTS="registry.example.org",
        WEB_BIND=f"127.0.0.1:{_free_port()}",
        GUNICORN_BIND=f"127.0.0.1:{_free_port()}",
    )


def _assert_one_line_naming(result: subprocess.CompletedProcess[str], name: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert name in lines[0]
    assert "configuration error" in lines[0]


@pytest.mark.parametrize("name", SECRETS)
def test_in_production_a_missing_secret_stops_manage_py_with_one_line(
    project: Path, name: str
) -> None:
    env = _production(project)
    del env[name]
    result = _run([sys.executable, "manage.py", "check", "--deploy"], project, env)
    _assert_one_line_naming(result, name)


def test_in_production_a_malformed_setting_stops_manage_py_with_one_line(project: Path) -> None:
    env = _production(project) | {"PORT": "eighty"}
    result = _run([sys.executable, "manage.py", "check"], project, env)
    _assert_one_line_naming(result, "PORT")


@pytest.mark.parametrize(
    "command",
    [
        ["python", "-m", "registry.serve"],
        ["gunicorn", "-c", "deploy/gunicorn.conf.py", "registry.wsgi"],
        ["celery", "-A", "registry", "worker", "--loglevel", "INFO"],
        ["celery", "-A", "registry", "beat", "--loglevel", "INFO"],
    ],
    ids=["web", "gunicorn", "celery-worker", "celery-beat"],
)
def test_in_production_a_missing_secret_stops_the_services_with_one_line(
    project: Path, command: list[str]
) -> None:
    env = _production(project)
    del env["SECRET_KEY"]
    executable = str(Path(sys.executable).parent / command[0])
    result = _run([executable, *command[1:]], project, env)
    _assert_one_line_naming(result, "SECRET_KEY")
