"""Every shell command in README.md and docs/*.md is exercised, so the documentation cannot rot.

A command is a logical line of a ```sh block (continuations joined, comments dropped). Each one
must be either:

* run by a test of this file, as written (``RUN_HERE``; ``rempart_manage`` is then the local
  ``python manage.py`` on the test database, and ``https://registry.example.org`` a live server);
* found verbatim in ``deploy/smoke.sh``, which ``tests/deploy/test_smoke.py`` runs;
* run by another test, named in ``EXERCISED_BY``;
* or, for what only a server's administrator can run (root, systemd, a container engine:
  nothing this machine can run), listed in ``HOST_ONLY`` with the test that checks what the
  command uses (the unit files, the compose file, the nginx site, the lock file).

A new command in the docs fails ``test_every_documented_command_is_exercised`` with its file
and text until it is put in one of these places; an entry whose command left the docs fails too.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from registry.client import Client, hash_file, hash_video
from registry.matching.follower import Matcher
from registry.models import PartnerKey
from tests.conftest import PartnerPersona
from tests.images import write_photo
from tests.videos import make_video, run_ffmpeg

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ROOT = "https://registry.example.org"

# Commands the tests of this file run as written.
RUN_HERE_OPERATORS = [
    "rempart_manage check --deploy",
    "rempart_manage migrate --no-input",
    "rempart_manage collectstatic --no-input",
    'rempart_manage partner_create "Example Social" --scopes match,sync --expires-in-days 365',
    "rempart_manage audit_verify",
    "rempart_manage index_checkpoint",
]
RUN_HERE_PARTNERS = [
    "rempart hash photo.jpg",
    f'rempart --url {EXAMPLE_ROOT} match upload.jpg --key "$REMPART_KEY" --purpose ai_edit',
    f"rempart --url {EXAMPLE_ROOT} submit photo.jpg --scope intimate --attest",
    f'rempart --url {EXAMPLE_ROOT} match upload.mp4 upload.jpg --key "$REMPART_KEY"',
    f"rempart --url {EXAMPLE_ROOT} submit video.mp4 --scope intimate --attest",
    f'curl -H "Authorization: Bearer $REMPART_KEY" '
    f'"{EXAMPLE_ROOT}/api/v1/hashes/changes?limit=500&cursor=$CURSOR"',
    'curl -X POST -H "Authorization: Bearer $REMPART_KEY" -H "Content-Type: application/json" '
    '-d \'{"match_id": "m_...", "verdict": "blocked", "tags": ["ncii"]}\' '
    f"{EXAMPLE_ROOT}/api/v1/feedback",
    'curl -X POST -H "Authorization: Bearer $REMPART_KEY" -H "Content-Type: application/json" '
    f'-d \'{{"ids": ["m_...", "m_..."]}}\' {EXAMPLE_ROOT}/api/v1/withdrawals/ack',
]
RUN_HERE_OTHERS = [
    "make help",
    "make run",
    "make superuser",
    "make demo-key",
    'python manage.py partner_create "Example Social" --scopes match',
]
KEY_ROTATION_SNIPPETS = "rempart_manage shell --no-imports -c"  # the two snippets, run below
RUN_HERE = {*RUN_HERE_OPERATORS, *RUN_HERE_PARTNERS, *RUN_HERE_OTHERS}

_THIS = "tests/deploy/test_docs_commands.py"
_SMOKE = "tests/deploy/test_smoke.py::test_the_smoke_script_runs_every_step_and_exits_zero"
_LIMITS = (
    "tests/deploy/test_pdq_limits.py::test_the_limits_script_prints_one_row_per_transformation"
)
_RESTORE = (
    "tests/deploy/test_backup_restore.py"
    "::test_a_restore_does_not_undo_a_withdrawal_made_after_the_backup"
)
EXERCISED_BY = {
    "make test": f"{_THIS}::test_every_documented_command_is_exercised",  # it runs in make test
    "deploy/smoke.sh": _SMOKE,
    "make limits": _LIMITS,
    "deploy/backup.sh /var/backups/rempart": _RESTORE,
    "deploy/restore.sh /var/backups/rempart/rempart-<time>.dump": _RESTORE,
    "rempart_manage withdrawals_replay /var/lib/rempart/withdrawals.jsonl": _RESTORE,
}
_DEPLOY_FILES = "tests/test_deploy_files.py::"
_UNITS = _DEPLOY_FILES + "test_systemd_knows_every_directive_of_the_unit"
_RELOAD = _DEPLOY_FILES + "test_systemd_web_unit_reloads_with_hup"
_COMPOSE = _DEPLOY_FILES + "test_compose_defines_the_services_with_their_images_and_commands"
_LOCK = _DEPLOY_FILES + "test_dockerfile_installs_from_the_lock_and_collects_static_files"
_NGINX = _DEPLOY_FILES + "test_nginx_accepts_the_site"
_PARSE = _DEPLOY_FILES + "test_the_operators_guide_shell_blocks_parse"
_FILES = _DEPLOY_FILES + "test_the_operators_guide_names_only_real_settings_and_files"
_RUN_AS_SERVICE_USER = (
    "rempart_manage() { sudo -u rempart sh -c 'set -a; . /etc/rempart/env; set +a; "
    'cd /opt/rempart && exec .venv/bin/python manage.py "$@"\' rempart_manage "$@" }'
)
HOST_ONLY = {
    "apt-get install -y build-essential python3-venv python3-dev postgresql redis-server "
    "nginx-light": _PARSE,
    "useradd --system --home-dir /var/lib/rempart --shell /usr/sbin/nologin rempart": _UNITS,
    "install -d -o rempart -g rempart -m 0755 /var/lib/rempart": _UNITS,
    "python3 -m venv /opt/rempart/.venv": _UNITS,
    "/opt/rempart/.venv/bin/pip install -c /opt/rempart/deploy/requirements.lock "
    "-e '/opt/rempart[server]'": _LOCK,
    "sudo -u postgres createuser --pwprompt rempart": _PARSE,
    "sudo -u postgres createdb --owner rempart rempart": _PARSE,
    "install -d -m 0750 -g rempart /etc/rempart": _UNITS,
    "install -m 0640 -g rempart /opt/rempart/deploy/env.example /etc/rempart/env": _FILES,
    _RUN_AS_SERVICE_USER: _PARSE,
    "rempart_manage createsuperuser": _PARSE,  # asks for a password: interactive
    "cp /opt/rempart/deploy/systemd/rempart-*.service /etc/systemd/system/": _UNITS,
    "systemctl daemon-reload": _UNITS,
    "systemctl enable --now rempart-web rempart-worker rempart-beat": _UNITS,
    "cp /opt/rempart/deploy/nginx/rempart.conf /etc/nginx/sites-enabled/rempart.conf": _NGINX,
    "nginx -t && systemctl reload nginx": _NGINX,
    "cp deploy/env.example deploy/.env": _COMPOSE,
    "docker compose -f deploy/compose.yaml up -d --build": _COMPOSE,
    "docker compose -f deploy/compose.yaml ps": _COMPOSE,
    "systemctl reload rempart-web": _RELOAD,
    "systemctl restart rempart-worker rempart-beat": _UNITS,
    "cp /opt/rempart/deploy/systemd/rempart-index-checkpoint.timer /etc/systemd/system/": _UNITS,
    "systemctl enable --now rempart-index-checkpoint.timer": _UNITS,
    "systemctl restart rempart-web": _UNITS,
}


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _normalise(command: str) -> str:
    return " ".join(command.split())


def shell_commands(text: str) -> list[str]:
    """The logical commands of the ```sh blocks of a Markdown text, comments dropped."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending = f"{pending}\n{line}" if pending else line
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            command = _strip_comment(pending)
            try:
                shlex.split(command)  # An open quote: the command goes on.
            except ValueError:
                continue
            if command.count("{") > command.count("}"):
                continue
            commands.append(command)
            pending = ""
        if pending:
            commands.append(_strip_comment(pending))
    return commands


def _strip_comment(command: str) -> str:
    """The command without a trailing ``# comment`` (outside quotes)."""
    quote: str | None = None
    for index, character in enumerate(command):
        if quote:
            if character == quote:
                quote = None
        elif character in "'\"":
            quote = character
        elif character == "#" and (index == 0 or command[index - 1] in " \t"):
            return command[:index].rstrip()
    return command.rstrip()


def _documented() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), command)
        for path in _documents()
        for command in shell_commands(path.read_text())
    ]


def _test_exists(reference: str) -> bool:
    path, _, name = reference.partition("::")
    file = ROOT / path
    return file.is_file() and f"def {name}(" in file.read_text()


def test_every_documented_command_is_exercised() -> None:
    smoke = _normalise((ROOT / "deploy" / "smoke.sh").read_text())
    known = {_normalise(command) for command in [*RUN_HERE, *EXERCISED_BY, *HOST_ONLY]}
    missing = [
        f"{document}: `{_normalise(command)}`"
        for document, command in _documented()
        if _normalise(command) not in known
        and not _normalise(command).startswith(KEY_ROTATION_SNIPPETS)
        and _normalise(command) not in smoke
    ]
    assert not missing, (
        "These documented commands are run by no test: run them in "
        f"{_THIS}, put them in deploy/smoke.sh, or name the test that runs them in EXERCISED_BY:\n"
        + "\n".join(missing)
    )


def test_every_listed_command_is_still_documented_and_its_test_exists() -> None:
    documented = {_normalise(command) for _, command in _documented()}
    listed = [*RUN_HERE, *EXERCISED_BY, *HOST_ONLY]
    stale = [command for command in listed if _normalise(command) not in documented]
    assert not stale, f"listed here but in no document: {stale}"
    absent = [ref for ref in [*EXERCISED_BY.values(), *HOST_ONLY.values()] if not _test_exists(ref)]
    assert not absent, f"no such test: {absent}"


def test_comments_and_continuations_are_read_as_one_command() -> None:
    text = "```sh\n# a comment\nmake run   # serve\ncurl -X POST \\\n  -d '{\"a\": 1}' url\n```\n"
    commands = [_normalise(command) for command in shell_commands(text)]
    assert commands == ["make run", "curl -X POST -d '{\"a\": 1}' url"]


def _database_url() -> str:
    database = connection.settings_dict
    server = f"{database['USER'] or 'postgres'}@{database['HOST']}:{database['PORT']}"
    return f"postgres://{server}/{database['NAME']}"


def _bash(command: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a documented command in bash, rempart_manage being this checkout's manage.py."""
    prelude = f'rempart_manage() {{ "{sys.executable}" "{ROOT}/manage.py" "$@"; }}\n'
    return subprocess.run(
        ["bash", "-c", prelude + command],
        cwd=cwd,
        env={
            # As an operator's shell would be: without the browser tests' async-unsafe switch.
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DATABASE_URL": _database_url(),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            # The `rempart` command of this checkout, whichever checkout the venv installed.
            "PYTHONPATH": str(ROOT),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _commands_of(document: str) -> list[str]:
    return [_normalise(command) for command in shell_commands((ROOT / document).read_text())]


@pytest.mark.django_db(transaction=True)
def test_the_operators_commands_run_as_written(tmp_path: Path) -> None:
    documented = _commands_of("docs/operators.md")
    checkpoint = tmp_path / "index.checkpoint"
    env = {"STATIC_ROOT": str(tmp_path / "static"), "INDEX_CHECKPOINT_PATH": str(checkpoint)}
    for command in RUN_HERE_OPERATORS:
        assert _normalise(command) in documented, command
        result = _bash(command, cwd=ROOT, env=env)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    assert (tmp_path / "static" / "admin").is_dir()
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600
    old_key = PartnerKey.objects.get(partner__name="Example Social")

    raw = shell_commands((ROOT / "docs" / "operators.md").read_text())  # Python keeps its lines.
    issue, revoke = [c for c in raw if c.startswith(KEY_ROTATION_SNIPPETS)]
    result = _bash(issue, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("rmp_")
    assert PartnerKey.objects.filter(partner__name="Example Social").count() == 2

    revoke = revoke.replace("<lookup id of the old key>", old_key.lookup_id)
    result = _bash(revoke, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    old_key.refresh_from_db()
    assert old_key.revoked_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_partner_guide_commands_run_against_a_live_server(
    live_server: object, tmp_path: Path, partner_a: PartnerPersona, match_index: Matcher
) -> None:
    documented = _commands_of("docs/partners.md")
    url = str(live_server)
    photo = write_photo(tmp_path / "photo.jpg", seed=21)
    write_photo(tmp_path / "upload.jpg", seed=21)
    created = Client(url).submit([hash_file(photo)], scope="no_sexual_edit")
    # A registered video, and the upload a platform receives: the same video, shrunk.
    video = make_video(tmp_path / "video.mp4", "mandelbrot=size={size}:rate={rate}", seconds=8)
    run_ffmpeg("-i", str(video), "-vf", "scale=160:-2", "-crf", "30", str(tmp_path / "upload.mp4"))
    Client(url).submit([], videos=[hash_video(video)], scope="intimate")
    match_index.catch_up()
    (match,) = Client(url, key=partner_a.raw_key).match([hash_file(photo).original])[0]
    env = {"REMPART_KEY": partner_a.raw_key, "CURSOR": ""}
    expected_status = {  # 1: the upload matches
        "rempart hash": 0,
        f"rempart --url {EXAMPLE_ROOT} match": 1,
        f"rempart --url {EXAMPLE_ROOT} submit": 0,
    }
    for command in RUN_HERE_PARTNERS:
        assert _normalise(command) in documented, command
        if "/withdrawals/ack" in command:  # The person withdraws; the partner confirms.
            Client(url).post(
                "/api/v1/cases/withdraw",
                {
                    "case_reference": created["case_reference"],
                    "case_secret": created["case_secret"],
                },
            )
        runnable = command.replace(EXAMPLE_ROOT, url.rstrip("/")).replace(
            "m_...", match["match_id"]
        )
        result = _bash(runnable, cwd=tmp_path, env=env)
        prefix = next((p for p in expected_status if command.startswith(p)), "curl")
        assert result.returncode == expected_status.get(prefix, 0), (
            f"{command}\n{result.stdout}{result.stderr}"
        )
        if prefix == "curl":
            assert '"error"' not in result.stdout, f"{command}\n{result.stdout}"
        if prefix == "rempart hash":
            assert hash_file(photo).original in result.stdout


@pytest.mark.django_db(transaction=True)
def test_the_manage_commands_of_the_guides_run() -> None:
    documented = {_normalise(command) for _, command in _documented()}
    for command in ['python manage.py partner_create "Example Social" --scopes match']:
        assert _normalise(command) in documented, command
        result = _bash(command, cwd=ROOT, env={})
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].startswith("rmp_")


def test_make_help_lists_the_documented_targets() -> None:
    result = _bash("make help", cwd=ROOT, env={})
    assert result.returncode == 0, result.stderr
    targets = set(re.findall(r"^  make (\S+)", result.stdout, flags=re.MULTILINE))
    documented = {
        word
        for _, command in _documented()
        if command.startswith("make ")
        for word in command.split()[1:2]
    }
    assert documented <= targets, documented - targets


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _newcomer_shell(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: none of make test's settings; local data and .env under tmp_path."""
    env = {
        key: value
        for key, value in os.environ.items()
        # make test's own variables reach a make started here through MAKEFLAGS: drop them too.
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG", "DOTENV_PATH"}
        and key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
        and not key.startswith(("SECRET_KEY", "KEY_PEPPER", "RECEIPT_SIGNING_KEY"))
    }
    # The checkout's own .env is left alone: make writes this one instead.
    return env | {"DATA_DIR": str(tmp_path), "DOTENV_PATH": str(tmp_path / ".env")}


@pytest.mark.slow
def test_make_superuser_and_make_demo_key_reach_the_local_site(tmp_path: Path) -> None:
    documented = _commands_of("README.md")
    env = _newcomer_shell(tmp_path) | {
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_PASSWORD": "a-long-local-password",
    }
    keys = []
    for command in ["make superuser", "make demo-key", "make demo-key"]:
        assert command in documented, command
        result = subprocess.run(
            command.split(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        if command == "make demo-key":
            keys.append(result.stdout.splitlines()[-1])
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    assert all(key.startswith("rmp_") for key in keys), keys
    assert keys[0] != keys[1]
    with sqlite3.connect(tmp_path / "rempart.sqlite3") as database:
        superusers = database.execute(
            "SELECT username FROM auth_user WHERE is_superuser AND is_staff"
        ).fetchall()
        demo_keys = database.execute(
            "SELECT COUNT(*) FROM api_partnerkey JOIN api_partner"
            " ON api_partner.id = api_partnerkey.partner_id WHERE api_partner.name = 'demo'"
        ).fetchone()
    assert superusers == [("admin",)]
    assert demo_keys == (2,)


@pytest.mark.slow
def test_make_run_serves_the_site(tmp_path: Path) -> None:
    """``make run`` as a newcomer runs it: SQLite, inline tasks, the site on its port."""
    port = _free_port()
    env = _newcomer_shell(tmp_path) | {"PORT": str(port), "SECURE_SSL_REDIRECT": "0"}
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90  # a bound, not a timing
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert "Its key follows; it is shown this once:" in log.read_text()
        assert (tmp_path / "db.sqlite3").exists() or list(tmp_path.glob("*.sqlite3"))
        assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
        assert "DEBUG=1\n" in (tmp_path / ".env").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
