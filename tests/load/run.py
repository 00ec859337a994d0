"""The load test (``make loadtest``): the registry as in production, 1,000,000 hashes, wrk.

Run: ``.venv/bin/python -m tests.load.run [--hashes 1000000] [--data real,pdq] [--seconds 25]``.
It sets up the service as tests/load/harness.py describes (its own database on the server of
``DATABASE_URL``, Redis at ``REDIS_URL``, two web processes of ``python -m registry.serve``
(granian, as deployed) behind nginx with the deploy site, and a Celery worker), then runs, each
alongside registrations and withdrawals: the bare endpoint (``GET /health``, a fixed answer, no
database: what the server, its workers and nginx cost), single-hash match calls, batches of 100,
single-hash calls through one web process only, and then the bare endpoint and single-hash
calls again with gunicorn (deploy/gunicorn.conf.py, the server deployed before) serving the same
application (behind nginx too; ``--no-gunicorn`` leaves them out), to compare the servers in one
run. That is on real PDQ hashes (tests/load/prepare.py: the benchmark's pool of hashes of real
photographs and video frames, what the registry stores); then the whole service is set up
again on as many synthetic PDQ-shaped hashes, the harsh case for the index, for the single-hash
and batch scenarios. It prints a Markdown table against the goals, each row marked, with the
match route's rate as a share of the bare endpoint's behind the same server. Everything it
started is stopped and everything it created is dropped, on failure too. Exits 1 if a goal is
missed on either set.

The figures are printed, not asserted by the test suite: the short variant in make test
(tests/load/test_load_short.py) checks only that nothing fails and that withdrawals hold.
"""

from __future__ import annotations

import argparse
import os
import sys

from tests.load.harness import Outcome, log, production_service, run_scenario

# The goals on 2 cores (issue 15), by scenario: requests/s at least, p99 below (ms), and the
# share of the bare endpoint's rate at least. Scenarios without a goal are printed for reading.
SINGLE, BATCH, BARE, ONE_PROCESS, BARE_GUNICORN, SINGLE_GUNICORN = (
    "single-hash match",
    "batch match, 100 hashes",
    "bare endpoint (GET /health)",
    "single-hash match, 1 web process",
    "gunicorn: bare endpoint",
    "gunicorn: single-hash match",
)
# The hashes registered (tests/load/prepare.py): real ones first, with every scenario; then the
# harsh synthetic ones, for the match scenarios only.
DATA_NAMES = {"real": "real", "pdq": "PDQ-shaped"}
FULL = (BARE, SINGLE, BATCH, ONE_PROCESS, BARE_GUNICORN, SINGLE_GUNICORN)
MATCH_ONLY = (SINGLE, BATCH)
GOALS: dict[str, tuple[float, float | None, float | None]] = {
    SINGLE: (2000.0, 20.0, 0.40),
    BATCH: (150.0, None, None),
}


def goal_text(scenario: str) -> str:
    if scenario not in GOALS:
        return "(for comparison)"
    rate, p99, share = GOALS[scenario]
    text = f">= {rate:,.0f} req/s"
    if p99 is not None:
        text += f", p99 < {p99:.0f} ms"
    if share is not None:
        text += f", >= {share:.0%} of bare"
    return text + ", no error"


def share_of_bare(outcome: Outcome, outcomes: list[Outcome]) -> float | None:
    """The rate as a share of the bare endpoint's behind the same server."""
    if outcome.scenario in (BARE, BARE_GUNICORN):
        return None
    reference = BARE_GUNICORN if outcome.scenario == SINGLE_GUNICORN else BARE
    bare = next((other for other in outcomes if other.scenario == reference), None)
    if bare is None or not bare.rate:
        return None
    return outcome.rate / bare.rate


def goal_met(outcome: Outcome, outcomes: list[Outcome]) -> bool | None:
    """Whether the scenario met its goal; None for a scenario without one (it must still have
    no error and no withdrawn photo matching: see failures())."""
    if outcome.scenario not in GOALS:
        return None
    rate, p99, share = GOALS[outcome.scenario]
    measured_share = share_of_bare(outcome, outcomes)
    return (
        outcome.rate >= rate
        and (p99 is None or outcome.p99_ms < p99)
        and (share is None or (measured_share is not None and measured_share >= share))
        and outcome.errors == 0
        and outcome.matched_after_withdrawal == 0
    )


def table(rows: list[tuple[str, Outcome]]) -> str:
    """The Markdown table of (data set, outcome) rows; shares against the run's bare endpoint."""
    outcomes = [outcome for _, outcome in rows]
    lines = [
        "| hashes | scenario | requests/s | share of bare | p50 ms | p99 ms | errors "
        "| writes alongside | goal | met |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for data, outcome in rows:
        writes = (
            f"{outcome.registrations} registrations, {outcome.withdrawals} withdrawals, "
            f"{outcome.matched_after_withdrawal} withdrawn matched"
        )
        share = share_of_bare(outcome, outcomes)
        met = goal_met(outcome, outcomes)
        lines.append(
            f"| {DATA_NAMES[data]} | {outcome.scenario} | {outcome.rate:,.0f} | "
            f"{'' if share is None else f'{share:.0%}'} | {outcome.p50_ms:.1f} | "
            f"{outcome.p99_ms:.1f} | {outcome.errors} | {writes} | {goal_text(outcome.scenario)} | "
            f"{'' if met is None else ('yes' if met else 'no')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument(
        "--data",
        default="real,pdq",
        help="hashes to register, one service each: real, pdq (the first runs every scenario)",
    )
    parser.add_argument("--seconds", type=int, default=25)
    # Workers of each deployed web process: one, so that the two processes run one worker a core
    # between them, registry/serve.py's default for the machine (six served no more). The
    # gunicorn rows run deploy/gunicorn.conf.py's own default, 3 workers a process.
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 1)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", 2)))
    parser.add_argument("--servers", type=int, default=2, help="web processes behind nginx")
    parser.add_argument("--port", type=int, default=None, help="nginx's port")
    parser.add_argument("--single-connections", type=int, default=16)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument(
        "--no-gunicorn", action="store_true", help="leave out the gunicorn comparison"
    )
    arguments = parser.parse_args()
    if not 20 <= arguments.seconds <= 30:
        parser.error("each scenario runs 20 to 30 seconds")
    datas = [data.strip() for data in arguments.data.split(",") if data.strip()]
    if not datas or any(data not in DATA_NAMES for data in datas) or len(set(datas)) < len(datas):
        parser.error(f"--data: a list of {', '.join(DATA_NAMES)}, each once")

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rempart")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/4")
    rows: list[tuple[str, Outcome]] = []
    registered: dict[str, int] = {}
    for number, data in enumerate(datas):
        scenarios = FULL if number == 0 else MATCH_ONLY
        with production_service(
            hashes=arguments.hashes,
            data=data,
            server_url=server,
            redis_url=redis_url,
            workers=arguments.workers,
            threads=arguments.threads,
            servers=arguments.servers,
            port=arguments.port,
            gunicorn=not arguments.no_gunicorn and BARE_GUNICORN in scenarios,
        ) as service:
            registered[data] = service.hashes
            for scenario in scenarios:
                if scenario == ONE_PROCESS and arguments.servers == 1:
                    continue
                compared = scenario in (BARE_GUNICORN, SINGLE_GUNICORN)
                if compared and service.base_gunicorn is None:
                    continue
                connections = (
                    arguments.batch_connections
                    if scenario == BATCH
                    else arguments.single_connections
                )
                log(
                    f"{DATA_NAMES[data]} hashes, {scenario}: {arguments.seconds} s, "
                    f"{connections} connections, 1 wrk thread"
                )
                outcome = run_scenario(
                    service,
                    scenario=scenario,
                    batch={BARE: 0, BARE_GUNICORN: 0, BATCH: 100}.get(scenario, 1),
                    seconds=arguments.seconds,
                    connections=connections,
                    write_pause=1.0,
                    one_process=scenario == ONE_PROCESS,
                    base=service.base_gunicorn if compared else None,
                )
                rows.append((data, outcome))
            log("stopping everything started and dropping the load database")
    cores = os.cpu_count()
    counts = ", ".join(f"{count:,} {DATA_NAMES[data]}" for data, count in registered.items())
    print(
        f"\nHashes registered: {counts} (one service each, in turn); nginx in front of "
        f"{arguments.servers} web processes (registry.serve: granian, {arguments.workers} "
        f"workers x {arguments.threads} threads each; gunicorn 3 workers a process for its "
        f"rows), PostgreSQL, Redis, a Celery worker and wrk (1 thread) on {cores} cores\n"
    )
    print(table(rows))
    print()
    outcomes = [outcome for _, outcome in rows]
    for data, outcome in rows:
        answers = ", ".join(f"{status}: {count:,}" for status, count in outcome.answers.items())
        if outcome.scenario in (BARE_GUNICORN, SINGLE_GUNICORN):
            answers = f"the deployed server's, for the writes alongside ({answers})"
        print(
            f"{DATA_NAMES[data]} hashes, {outcome.scenario}: {outcome.requests:,} match calls in "
            f"{outcome.seconds:.1f} s; errors: {outcome.status_errors} non-2xx, "
            f"{outcome.socket_errors} socket, {len(outcome.write_errors)} in the writes; the "
            f"server's answers by status: {answers}"
        )
        for error in sorted(set(outcome.write_errors)):
            print(f"  {error}")
    failed = [
        outcome
        for outcome in outcomes
        if goal_met(outcome, outcomes) is False
        or outcome.errors
        or outcome.matched_after_withdrawal
    ]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
