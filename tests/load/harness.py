"""The load test's machinery: the service as in production, wrk, and a stream of writes.

``production_service`` creates a database of its own on the PostgreSQL server of
``DATABASE_URL`` (named after it, ending in ``_loadtest``), fills it (tests/load/prepare.py),
writes the index's checkpoint that every web process maps (``INDEX_CHECKPOINT_PATH``),
starts one or more web processes (``python -m registry.serve``: granian, several workers each,
DEBUG off, on ports of their own), nginx in front of them with the deploy site
(tests/load/nginx.py), and a Celery worker on Redis; on the way out, failure included, it stops
them, drops the database and empties the Redis database it used. A second nginx proxies to the
first web process alone, to compare one process with all of them in the same run; with
``gunicorn=True``, as many gunicorn processes (deploy/gunicorn.conf.py) serve the same
application behind a third nginx, to compare the servers in the same run.

``run_scenario`` drives match calls with wrk (tests/load/match.lua, one thread: the two cores
are shared with the server) while ``WriteStream`` (tests/load/writes.py) registers and
withdraws cases through the public API in parallel. Each withdrawn photo is matched again at
once, and once more after the load: a committed withdrawal must never match.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from tests.load.nginx import start_nginx
from tests.load.writes import WriteStream, match_count

ROOT = Path(__file__).resolve().parents[2]
LUA_SCRIPT = Path(__file__).with_name("match.lua")
# The load test's own server: production settings, with throwaway secrets.
_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "load-test-only-secret-key-load-test-only-secret-key",
    "KEY_PEPPER": "load-test-only-pepper",
    "RECEIPT_SIGNING_KEY": "bG9hZC10ZXN0LW9ubHktcmVjZWlwdC1rZXktMDAwMDA=",
    "SECURE_SSL_REDIRECT": "0",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SITE_ROOT": "http://127.0.0.1",
    # Every write of the stream comes from one address; the per-client limit is not under test.
    "PUBLIC_CASE_RATE": "100000/m",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "registry.settings",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    """A running production-like registry: where it answers, and a partner key for it."""

    # nginx in front of every web process, and nginx in front of the first one only.
    base: str
    base_one_process: str
    key: str
    queries: Path
    workers: int
    servers: int
    hashes: int
    # Each web process's access log: request line, status, size and duration; no address, no
    # hash.
    access_logs: list[Path]
    database_url: str
    # nginx in front of as many gunicorn processes, the same application (``gunicorn=True``).
    base_gunicorn: str | None = None

    def match_calls_recorded(self) -> int:
        """How many MatchCall rows the database holds now."""
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute("SELECT count(*) FROM api_matchcall").fetchone()
        return int(row[0]) if row else 0

    def match_calls_answered(self) -> int:
        """How many match calls the web processes answered with 200, by their access logs."""
        answered = 0
        for access_log in self.access_logs:
            with access_log.open("rb") as log_file:
                answered += sum(
                    1
                    for line in log_file
                    if line.startswith(b'"POST /api/v1/match ') and b'" 200 ' in line
                )
        return answered

    def answers_since(self, offsets: list[int]) -> collections.Counter[str]:
        """The statuses the web processes answered since ``offsets`` bytes of their logs."""
        counted: collections.Counter[str] = collections.Counter()
        for access_log, offset in zip(self.access_logs, offsets, strict=True):
            if not access_log.exists():
                continue
            with access_log.open("rb") as log_file:
                log_file.seek(offset)
                lines = log_file.read().decode(errors="replace").splitlines()
            counted.update(line.split('" ')[-1].split(" ")[0] for line in lines if '" ' in line)
        return counted

    def access_log_sizes(self) -> list[int]:
        return [path.stat().st_size if path.exists() else 0 for path in self.access_logs]


def _database_urls(server_url: str, suffix: str) -> tuple[str, str, str]:
    """The maintenance URL, the load test's database name and its URL, on ``server_url``."""
    parts = urlsplit(server_url)
    name = f"{parts.path.lstrip('/') or 'rempart'}{suffix}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, name, urlunsplit(parts._replace(path=f"/{name}"))


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stop(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in 30 s; killing it")
            process.kill()
            process.wait()


def _wait_ready(base: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if process.poll() is not None:
            raise RuntimeError("a server exited before it was ready; see its log")
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} never became ready")
        time.sleep(0.5)


@contextmanager
def production_service(
    *,
    hashes: int,
    server_url: str,
    redis_url: str,
    data: str = "real",
    workers: int = 2,
    threads: int = 4,
    servers: int = 2,
    port: int | None = None,
    celery: bool = True,
    database_suffix: str = "_loadtest",
    web_env: dict[str, str] | None = None,
    gunicorn: bool = False,
) -> Iterator[Service]:
    """The registry as in production on this machine, with ``hashes`` registered hashes of
    kind ``data`` (tests/load/prepare.py: ``real`` or ``pdq``): ``servers`` web processes of
    ``workers`` workers behind nginx (on ``port``).

    ``gunicorn``: also as many gunicorn processes (deploy/gunicorn.conf.py, its default of 3
    workers, ``threads`` threads each) behind an nginx of their own, on the same database, to
    compare the servers in one run; their access logs are kept apart (``access_logs`` is the
    deployed server's)."""
    admin_url, name, database_url = _database_urls(server_url, database_suffix)
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="rempart-load-"))
    env = {
        **os.environ,
        **_ENV,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": str(threads),
        # nginx appends the client's address to X-Forwarded-For; the registry reads that hop.
        "TRUSTED_PROXIES": "1",
        **(web_env or {}),
    }
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        cleanup.callback(lambda: redis.Redis.from_url(redis_url).flushdb())
        _drop_database(admin_url, name)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        cleanup.callback(_drop_database, admin_url, name)

        started = time.monotonic()
        log(f"registering {hashes:,} hashes ({data}) in {name}")
        queries = workdir / "queries.txt"
        prepared = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.load.prepare",
                "--hashes",
                str(hashes),
                "--queries",
                str(queries),
                "--data",
                data,
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
        )
        details = json.loads(prepared.stdout.decode().strip().splitlines()[-1])
        # Every web process maps one checkpoint of the index (as deploy/ sets it up) and
        # follows the change sequence from it, rather than each reading every hash.
        checkpoint = workdir / "index.checkpoint"
        subprocess.run(
            [sys.executable, "manage.py", "index_checkpoint", "--path", str(checkpoint)],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        env["INDEX_CHECKPOINT_PATH"] = str(checkpoint)
        log(f"registered in {time.monotonic() - started:.0f} s; starting the web processes")

        server_log = (workdir / "web.log").open("wb")
        cleanup.callback(server_log.close)
        web_ports = [free_port() for _ in range(servers)]
        access_logs = [workdir / f"access-{number}.log" for number in range(servers)]
        web: list[subprocess.Popen[bytes]] = []
        for web_port, access_log in zip(web_ports, access_logs, strict=True):
            process = subprocess.Popen(
                [sys.executable, "-m", "registry.serve"],
                cwd=ROOT,
                env={
                    **env,
                    "WEB_BIND": f"127.0.0.1:{web_port}",
                    "WEB_ACCESS_LOG": str(access_log),
                },
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            web.append(process)
            cleanup.callback(_stop, process, f"web process on {web_port}")
        if celery:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "registry",
                    "worker",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
            cleanup.callback(_stop, worker, "celery worker")
        gunicorn_ports = [free_port() for _ in range(servers if gunicorn else 0)]
        for web_port in gunicorn_ports:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                 "registry.wsgi"],
                cwd=ROOT,
                env={
                    **env,
                    "GUNICORN_BIND": f"127.0.0.1:{web_port}",
                    "GUNICORN_ACCESS_LOG": str(workdir / f"access-gunicorn-{web_port}.log"),
                    "WEB_CONCURRENCY": "3",  # deploy/gunicorn.conf.py's default
                },
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            web.append(process)
            cleanup.callback(_stop, process, f"gunicorn on {web_port}")
        try:
            for web_port, process in zip(web_ports + gunicorn_ports, web, strict=True):
                _wait_ready(f"http://127.0.0.1:{web_port}", process, time.monotonic() + 120)
        except RuntimeError:
            server_log.flush()
            sys.stderr.write((workdir / "web.log").read_text(errors="replace")[-4000:])
            raise
        one_port = free_port()
        fronts = [
            (port, start_nginx(port, web_ports, workdir / "nginx")),
            (one_port, start_nginx(one_port, web_ports[:1], workdir / "nginx-one")),
        ]
        gunicorn_front = free_port()
        if gunicorn:
            front = start_nginx(gunicorn_front, gunicorn_ports, workdir / "nginx-gunicorn")
            fronts.append((gunicorn_front, front))
        for front_port, front in fronts:
            cleanup.callback(_stop, front, f"nginx on {front_port}")
        for front_port, front in fronts:
            _wait_ready(f"http://127.0.0.1:{front_port}", front, time.monotonic() + 30)
        base = f"http://127.0.0.1:{port}"
        log(f"ready in {time.monotonic() - started:.0f} s")
        yield Service(
            base=base,
            base_one_process=f"http://127.0.0.1:{one_port}",
            key=details["key"],
            queries=queries,
            workers=workers,
            servers=servers,
            hashes=details["hashes"],
            access_logs=access_logs,
            database_url=database_url,
            base_gunicorn=f"http://127.0.0.1:{gunicorn_front}" if gunicorn else None,
        )


# --- Scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One scenario's figures, as wrk measured them, and the write stream's record."""

    scenario: str
    batch: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    status_errors: int
    socket_errors: int
    registrations: int
    withdrawals: int
    write_errors: list[str]
    matched_after_withdrawal: int
    # Every answer of the server during the scenario, by status (match calls and writes).
    answers: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors + len(self.write_errors)


def run_wrk(
    service: Service, *, batch: int, seconds: int, connections: int, base: str | None = None
) -> dict[str, int]:
    """Drive match calls of ``batch`` hashes (0: the bare endpoint, ``GET /health``) with wrk,
    one thread, at ``base`` (nginx in front of every web process by default); wrk's figures."""
    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA_SCRIPT),
            base or service.base,
        ],
        env={
            **os.environ,
            "LOAD_KEY": service.key,
            "LOAD_QUERIES": str(service.queries),
            "LOAD_BATCH": str(batch),
        },
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("LOAD_RESULT "):
            figures: dict[str, int] = json.loads(line.removeprefix("LOAD_RESULT "))
            return figures
    raise RuntimeError(f"wrk printed no result:\n{completed.stdout}")


def run_scenario(
    service: Service,
    *,
    scenario: str,
    batch: int,
    seconds: int,
    connections: int,
    write_pause: float = 0.5,
    one_process: bool = False,
    base: str | None = None,
) -> Outcome:
    """Match calls with wrk (``batch`` 0: the bare endpoint) and, alongside, registrations and
    withdrawals; then check again that no photo withdrawn during the load matches.
    ``one_process``: through the nginx in front of the first web process only; ``base``:
    through another front (the gunicorn one)."""
    driven = base or (service.base_one_process if one_process else service.base)
    log_offsets = service.access_log_sizes()
    stream = WriteStream(base=service.base, key=service.key, pause=write_pause)
    stream.start()
    try:
        figures = run_wrk(
            service,
            batch=batch,
            seconds=seconds,
            connections=connections,
            base=driven,
        )
    finally:
        stream.stop()
    # Several calls, so that each worker process answers some of them.
    matched = stream.matched_after_withdrawal
    for _ in range(service.workers * service.servers * 4):
        for checked in dict.fromkeys((service.base, driven)):
            matched += match_count(checked, service.key, stream.withdrawn_hashes)
    return Outcome(
        scenario=scenario,
        batch=batch,
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        status_errors=figures["status_errors"],
        socket_errors=figures["socket_errors"],
        registrations=stream.registrations,
        withdrawals=stream.withdrawals,
        write_errors=stream.errors,
        matched_after_withdrawal=matched,
        answers=dict(sorted(service.answers_since(log_offsets).items())),
    )
