"""The web process's cache of partner keys, emptied on every process within a second of a change.

Every partner request authenticates its key (registry.selectors.partners). Reading the key from
PostgreSQL on every call cost more than the rest of a single-hash match; this cache keeps the
keys already checked, by lookup id, and is trusted only while the process hears of every change
to a key or a partner as it commits:

* a trigger on the partner key and partner tables (migration registry 0013) sends
  ``NOTIFY registry_partner_keys`` with the key's lookup id (``*`` for a partner's change) in the
  transaction that changes them, so the notice is delivered on commit, never before;
* a listener thread in each process holds its own connection, ``LISTEN``s, and drops the key
  named (or every key) as each notice arrives, within milliseconds;
* while the listener is not connected (starting, PostgreSQL restarting, SQLite in development)
  the cache is off: every request reads the database, as if there were no cache, and the cache
  is emptied when the listener reconnects, since notices sent meanwhile are lost.

So a revocation, an expiry date set, a scope changed, a key slowed down by a probing alert or a
partner deactivated reaches every process before its next request in practice, and within the
listener's wake-up (well under a second) at worst. An expiry date reached is checked on every
request from the cached key (``PartnerKey.is_usable``), and the secret is checked on every
request against the cached digest: the cache holds no key text, and a wrong secret never gets
in. Unknown keys are not cached.

A key read inside a transaction is neither taken from the cache nor kept in it: the
transaction's own changes could roll back without a notice. A key read while a notice arrives
is not stored (a generation counter, raised by every notice,
is compared before and after the read), so a key revoked during its first check is not kept.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

from registry.models import PartnerKey

logger = logging.getLogger(__name__)

CHANNEL = "registry_partner_keys"
EVERY_KEY = "*"
# A bound on memory: past it the cache starts afresh (keys are few; this is only a guard).
MAX_KEYS = 10_000
# How long the listener waits for a notice before it checks that it should go on.
_WAKE_SECONDS = 0.5
_RETRY_SECONDS = 1.0


class KeyCache:
    """Partner keys by lookup id, each with its partner, while the listener is connected."""

    def __init__(self, alias: str = "default") -> None:
        self._alias = alias
        self._keys: dict[str, PartnerKey] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._live = False
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- reading ----------------------------------------------------------------------------

    def get(self, lookup_id: str, read: Callable[[str], PartnerKey | None]) -> PartnerKey | None:
        """The key with ``lookup_id``: cached, or read with ``read`` (and cached if found)."""
        self._ensure_listening()
        if not self._live or connections[self._alias].in_atomic_block:
            # Inside a transaction a read may see this transaction's own changes, which could
            # still roll back without any notice: such a read is neither served nor kept.
            return read(lookup_id)
        key = self._keys.get(lookup_id)
        if key is not None:
            return key
        generation = self._generation
        key = read(lookup_id)
        if key is not None:
            with self._lock:
                if self._live and generation == self._generation:
                    if len(self._keys) >= MAX_KEYS:
                        self._keys.clear()
                    self._keys[lookup_id] = key
        return key

    @property
    def live(self) -> bool:
        """Whether keys are cached now (the listener is connected and listening)."""
        return self._live

    def __len__(self) -> int:
        return len(self._keys)

    # --- changes ----------------------------------------------------------------------------

    def forget(self, lookup_id: str) -> None:
        """Drop one key (``EVERY_KEY``: all of them); what a notice does."""
        with self._lock:
            self._generation += 1
            if lookup_id == EVERY_KEY:
                self._keys.clear()
            else:
                self._keys.pop(lookup_id, None)

    def _set_live(self, live: bool) -> None:
        with self._lock:
            self._generation += 1
            self._keys.clear()
            self._live = live

    # --- the listener -----------------------------------------------------------------------

    def _ensure_listening(self) -> None:
        """Start the listener in this process (again after a fork: threads do not survive it)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._live = False
            self._keys.clear()
            if connections[self._alias].vendor != "postgresql":
                return  # No LISTEN: the cache stays off and every request reads the database.
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._listen, name="partner-key-listener", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the listener (tests); the cache is off until the next read starts it again."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._set_live(False)
        self._pid = 0

    def _listen(self) -> None:
        import psycopg

        stop = self._stop
        while not stop.is_set():
            try:
                with psycopg.connect(**self._conninfo(), autocommit=True) as listener:
                    listener.execute(f"LISTEN {CHANNEL}")
                    self._set_live(True)
                    while not stop.is_set():
                        for notice in listener.notifies(timeout=_WAKE_SECONDS):
                            self.forget(notice.payload or EVERY_KEY)
            except Exception as error:  # Any failure: off, then try again.
                if self._live:
                    logger.warning(
                        "partner key listener lost (%s); keys read from the database until it "
                        "reconnects",
                        type(error).__name__,
                    )
                self._set_live(False)
                stop.wait(_RETRY_SECONDS)
        self._set_live(False)

    def _conninfo(self) -> dict[str, Any]:
        params = dict(connections[self._alias].get_connection_params())
        for name in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
            params.pop(name, None)
        params["application_name"] = "rempart-key-listener"
        return params


key_cache = KeyCache()
