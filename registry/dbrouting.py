"""Which database a query goes to: the primary, or a read replica inside ``replica_reads()``.

With ``DATABASE_REPLICA_URL`` set, the registry has a second database alias, ``replica``, a
streaming replica of the primary (docs/scaling.md). Django routes by model, but whether a read
may be served from a replica depends on what the read is *for*: the index follower may read the
change sequence a second late, ``hash_match``'s confirmation of the same rows may not. So no
read goes to the replica unless its caller asks, by running it inside ``replica_reads()``: the
index's load and follow, the sync feeds and the statistics do. Everything else reads the
primary, as does every write, every transaction and every migration.

Even inside the scope, a read stays on the primary when

- it is of a model whose rows decide a promise on every read (``PRIMARY_ONLY``: partner keys,
  the disclosure ledger, idempotency records, the webhook outbox, the audit chain, staff
  accounts and their sessions), or
- this thread has a transaction open on the primary: a read inside it must see its writes.

A query is routed by its own model: one that joins such a table from another model (a filter
through ``image__disclosures``, say) follows the other model, so keep those out of the scope.

``primary_reads()`` undoes the scope for the reads a promise rests on, ``hash_match``'s
confirmation of candidates among them, whoever calls them.

Without a replica configured, ``replica_reads()`` changes nothing: every query goes to the
primary, as before the router existed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

PRIMARY = DEFAULT_DB_ALIAS
REPLICA = "replica"

# Models never read from a replica: (app label, model name in lower case).
PRIMARY_ONLY: frozenset[tuple[str, str]] = frozenset(
    {
        # A revoked key fails from the very next request.
        ("registry", "partnerkey"),
        # The feeds read it to decide which withdrawals a partner is sent: it must hold every
        # disclosure made, including the one the previous page recorded a moment ago.
        ("registry", "disclosure"),
        # Written and read under locks.
        ("registry", "idempotencyrecord"),
        ("registry", "webhookdelivery"),
        ("registry", "auditevent"),
    }
)
# Apps whose every model stays on the primary: staff accounts, sessions, second factors and
# lockouts are checked on each request and written by it.
PRIMARY_ONLY_APPS = frozenset({"auth", "sessions", "otp_totp", "django_otp", "axes"})

_replica_scope: ContextVar[bool] = ContextVar("replica_scope", default=False)


@contextmanager
def replica_reads() -> Iterator[None]:
    """Let the reads inside this block go to the replica, if one is configured.

    Only for reads that tolerate a replica's lag (docs/scaling.md lists them). Writes inside
    the block still go to the primary. Usable as a decorator. The scope is this thread's (and
    this asyncio task's): a thread started inside it reads the primary.
    """
    token = _replica_scope.set(True)
    try:
        yield
    finally:
        _replica_scope.reset(token)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Keep the reads inside this block on the primary, even within ``replica_reads()``.

    For the reads a promise rests on, so that no caller can move them to a replica by mistake:
    ``hash_match``'s confirmation of candidates. Usable as a decorator.
    """
    token = _replica_scope.set(False)
    try:
        yield
    finally:
        _replica_scope.reset(token)


class PrimaryReplicaRouter:
    """Django's database router for the registry (``DATABASE_ROUTERS``): see the module."""

    def __init__(self, *, replica: str | None = REPLICA) -> None:
        # The replica's alias; None: none, whatever the settings say.
        self.replica = replica

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        replica = self.replica
        if replica is None or not _replica_scope.get() or replica not in connections.settings:
            return PRIMARY
        meta = model._meta
        if meta.app_label in PRIMARY_ONLY_APPS or (meta.app_label, meta.model_name) in PRIMARY_ONLY:
            return PRIMARY
        # Read-your-writes: inside a transaction on the primary, reads see its writes. Asking
        # does not open a connection.
        if connections[PRIMARY].in_atomic_block:
            return PRIMARY
        return replica

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, first: Model, second: Model, **hints: Any) -> bool:
        # The replica holds the primary's rows: an object read from one may point to the other's.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        # A replica receives the schema by replication, and refuses writes.
        return db == PRIMARY
