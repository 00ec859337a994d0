"""A primary and its streaming replica, each a throwaway PostgreSQL cluster (tests/processes.py).

The primary is made by ``initdb``, whose pg_hba.conf already lets local users replicate from the
loopback; the replica is a ``pg_basebackup -R`` of it, started as a hot standby on its own port.
Both live in temporary directories and are stopped and removed when the test ends, also when it
fails: nothing of the machine's own PostgreSQL is used or configured.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from tests.processes import PostgresCluster, wait_until


def free_port_between(low: int, high: int) -> int:
    """A loopback port in ``low..high`` that nothing listens on now (clusters keep to a range)."""
    for port in random.sample(range(low, high + 1), high - low + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port between {low} and {high}")


class StreamingReplica(PostgresCluster):
    """A hot standby of ``primary``: a ``pg_basebackup -R`` of it (``standby.signal`` and
    ``primary_conninfo`` written by the backup), started on its own port and streaming.

    The primary's cluster was made by ``initdb``, whose pg_hba.conf lets local users replicate
    from the loopback: nothing outside the two temporary directories is configured.
    """

    def __init__(self, primary: PostgresCluster, port: int) -> None:
        super().__init__(port)
        self.primary = primary

    def init(self) -> None:
        self._run("pg_basebackup", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
                  "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                  "--no-sync")  # fmt: skip

    def _execute(self, statement: str) -> Any:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            return connection.execute(statement).fetchone()

    def pause(self) -> None:
        """Stop replaying the primary's WAL (it still arrives); queries are served as of now."""
        self._execute("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: self._execute("SELECT pg_get_wal_replay_pause_state()")[0] == "paused",
            what="the standby's replay to pause",
        )

    def resume(self) -> None:
        self._execute("SELECT pg_wal_replay_resume()")

    def replayed(self) -> bool:
        """True once the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.url("postgres"), autocommit=True) as connection:
            row = connection.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        return bool(self._execute(f"SELECT pg_last_wal_replay_lsn() >= '{row[0]}'::pg_lsn")[0])


@contextmanager
def primary_and_replica(low: int, high: int) -> Iterator[tuple[PostgresCluster, StreamingReplica]]:
    """A throwaway primary and its streaming hot standby, on ports in ``low..high``; both stopped
    and removed on the way out, also when the test fails."""
    primary = PostgresCluster(free_port_between(low, high))
    replica: StreamingReplica | None = None
    try:
        primary.init()
        primary.start()
        replica = StreamingReplica(primary, free_port_between(low, high))
        replica.init()
        replica.start()
        wait_until(replica.replayed, what="the standby to replay the primary's WAL")
        yield primary, replica
    finally:
        if replica is not None:
            replica.destroy()
        primary.destroy()
