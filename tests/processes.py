"""Real processes for the tests that start, stop and kill them: PostgreSQL, Redis, the web
server, Celery.

Each process is started by the test that needs it, on a free port, in its own process group, and
stopped (or killed) by its own id when the test ends, also when it fails. A throwaway PostgreSQL
cluster lives in a temporary directory and is removed with everything in it. Nothing here
touches the PostgreSQL and Redis that the rest of the suite uses.

Waits poll with a deadline (``wait_until``): the deadline bounds a wait on a slow, shared
machine, it is never a timing the tests assert.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Seconds: the bound on one wait. Each normally takes one or two, more on a loaded machine.
DEADLINE = 60.0

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str | Callable[[], str],
    timeout: float = DEADLINE,
    interval: float = 0.1,
) -> T:
    """Call ``probe`` until it returns something true; fail naming ``what`` past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(what() if callable(what) else f"gave up waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Processes:
    """Processes a test starts, each in its own process group, stopped by its id at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Path:
        """Start ``command``, its output appended to ``<logs>/<name>.log``; return that path."""
        log = self.logs / f"{name}.log"
        with log.open("ab") as output:
            self.running.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return log

    @property
    def last(self) -> subprocess.Popen[bytes]:
        return self.running[-1]

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, as systemd stops a service; SIGKILL to its group if it lingers."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._kill_group(process)  # Before it is reaped: its id is still its own.
                process.wait(timeout=10)
        self.running.remove(process)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and every child it started, as when a machine loses power."""
        if process.returncode is None:  # Not reaped yet.
            self._kill_group(process)
        process.wait(timeout=10)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(reversed(self.running)):
            self.stop(process)

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        # Only while the leader is not yet reaped, so that the group id is still the one it got.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def processes_in(logs: Path) -> Iterator[Processes]:
    started = Processes(logs)
    try:
        yield started
    finally:
        started.stop_all()


# --- Redis ----------------------------------------------------------------------------------


def start_redis(processes: Processes, port: int) -> subprocess.Popen[bytes]:
    """A redis-server on ``port`` that keeps nothing on disk; returns once it accepts clients."""
    processes.start(
        f"redis-{port}",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        dict(os.environ),
    )  # fmt: skip
    started = processes.last
    wait_until(lambda: port_open(port), what="redis-server to accept connections", timeout=15)
    return started


# --- PostgreSQL -----------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster: its own directory, port and socket, trust authentication.

    PostgreSQL refuses to run as root: then every command runs as the ``postgres`` user, in a
    directory it owns.
    """

    def __init__(self, port: int) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            pytest.skip("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.binaries = binaries
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="rempart-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, user="postgres", group="postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.binaries / command[0]), *command[1:]],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=50"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session, ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        if self.running():
            with suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway cluster, stopped and removed on the way out."""
    cluster = PostgresCluster(free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def suite_database_url() -> str:
    """The URL of the database this pytest run uses (pytest-django's test database)."""
    from django.db import connection  # Only once Django is set up.

    database = connection.settings_dict
    return (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


def migrate(env: dict[str, str]) -> None:
    """Create the schema in the database ``env`` names, as an operator does at install."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


# --- The service: the web server and Celery -----------------------------------------------------


# The operators' token of the services started here: /ready shows its figures only with it.
READY_TOKEN = "test-only-ready-token"
READY_HEADERS = {"X-Ready-Token": READY_TOKEN}


def service_env(**overrides: str) -> dict[str, str]:
    """The test run's environment (secrets, DEBUG=0) with the service's variables set."""
    return {
        **os.environ,
        "READY_TOKEN": READY_TOKEN,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
        "INDEX_POLL_MS": "100",
        **overrides,
    }


def start_web(
    processes: Processes,
    env: dict[str, str],
    *,
    workers: int = 1,
    name: str = "web",
    server: str = "granian",
) -> str:
    """The web server as in production, ``python -m registry.serve`` (granian), or gunicorn with
    deploy/gunicorn.conf.py (``server="gunicorn"``, which operators may keep); returns its base
    URL once ready."""
    port = free_port()
    if server == "gunicorn":
        # No control socket: its default path is shared by every gunicorn of the user.
        command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind",
                   f"127.0.0.1:{port}", "--no-control-socket", "registry.wsgi"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "registry.serve"]
    log = processes.start(
        name, command, {**env, "WEB_CONCURRENCY": str(workers), "WEB_BIND": f"127.0.0.1:{port}"}
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return request(base, "GET", "/ready").status == 200
        except OSError:
            return False

    wait_until(ready, what=lambda: f"{name} never became ready:\n" + log.read_text())
    return base


def start_worker(
    processes: Processes,
    env: dict[str, str],
    *,
    beat: bool,
    name: str = "worker",
    pool: tuple[str, ...] = ("--concurrency=1",),
) -> Path:
    """A Celery worker (prefork unless ``pool`` says otherwise), with beat embedded if asked;
    returns its log once it is ready to take tasks."""
    command = [
        sys.executable, "-m", "celery", "-A", "registry", "worker", "--loglevel=INFO",
        f"--hostname={name}@%h", "--without-gossip", "--without-mingle", *pool,
    ]  # fmt: skip
    if beat:
        command += ["--beat", f"--schedule={processes.logs / f'{name}-beat-schedule'}"]
    log = processes.start(name, command, env)
    wait_until(
        lambda: b" ready." in log.read_bytes(),
        what=lambda: f"{name} never became ready:\n" + log.read_text(),
    )
    return log


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    form: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request on a new connection, with a JSON ``body`` or a ``form``; OSError
    (refused, reset, timed out) passes up."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    except http.client.HTTPException as error:  # a connection cut mid-answer
        raise ConnectionError(str(error)) from error
    finally:
        connection.close()


# --- A partner's webhook endpoint ---------------------------------------------------------------

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"the end-to-end webhook secret!!!").decode()


class VerifyingReceiver:
    """A partner's endpoint: checks each signature as a partner would, records the events.

    ``hold(n)`` makes it keep the next ``n`` requests waiting, unanswered, until ``release()``,
    as a slow partner does: the sender is then caught in the middle of its attempt.
    """

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._to_hold = 0
        self._released = threading.Event()
        receiver = self
        key = base64.b64decode(secret.removeprefix("whsec_"))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook_id = self.headers["webhook-id"]
                timestamp = self.headers["webhook-timestamp"]
                signed = f"{webhook_id}.{timestamp}.".encode() + body
                expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
                offered = [
                    part.split(",", 1)[1].encode()
                    for part in self.headers["webhook-signature"].split()
                    if part.startswith("v1,")
                ]
                valid = any(hmac.compare_digest(expected, sig) for sig in offered)
                fresh = abs(time.time() - int(timestamp)) < 300
                with receiver.lock:
                    held = receiver._to_hold > 0
                    receiver._to_hold -= int(held)
                    receiver.events.append(
                        {"id": webhook_id, "valid": valid and fresh, "held": held,
                         **json.loads(body)}
                    )  # fmt: skip
                if held:
                    receiver._released.wait(timeout=DEADLINE * 2)
                try:
                    self.send_response(204 if valid else 401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # The sender is gone.
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rempart"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self, count: int) -> None:
        with self.lock:
            self._to_hold = count
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def wait_for(
        self, count: int, describe: Callable[[], str] = lambda: ""
    ) -> list[dict[str, Any]]:
        """The events received, once there are at least ``count``."""

        def arrived() -> list[dict[str, Any]] | None:
            events = self.snapshot()
            return events if len(events) >= count else None

        return wait_until(
            arrived,
            what=lambda: f"only {len(self.snapshot())} of {count} events arrived; {describe()}",
            interval=0.05,
        )

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
