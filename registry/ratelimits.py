"""Per-client rate limits, with django-ratelimit on the shared cache.

Clients are counted under a keyed digest of their address that changes every day: the address
itself is never stored, not even in the cache. The people's pages and the partner API's public
case endpoints both count through here, and so do failed case secret checks (per client and per
case reference, see case_check_refusal).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest
from django.utils import timezone
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

from registry.exceptions import RateLimited
from registry.models import Partner

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (RedisError, OSError)


def client_digest(request: HttpRequest) -> str:
    """A keyed digest of the client's address that changes every day: never the address."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.TRUSTED_PROXIES and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        address = hops[-settings.TRUSTED_PROXIES] if len(hops) >= settings.TRUSTED_PROXIES else ""
    else:
        address = request.META.get("REMOTE_ADDR", "")
    day = timezone.now().strftime("%Y-%m-%d")
    key = hmac.new(settings.SECRET_KEY.encode(), f"client-digest:{day}".encode(), hashlib.sha256)
    return hmac.new(key.digest(), address.encode(), hashlib.sha256).hexdigest()[:32]


def _client_key(group: str, request: HttpRequest) -> str:
    return client_digest(request)


def client_usage(
    request: HttpRequest, group: str, rate: str | None = None
) -> dict[str, int] | None:
    """Count one request of this client in ``group`` (default rate: PUBLIC_CASE_RATE).

    Returns django-ratelimit's usage (``should_limit``, ``time_left``...), or None when nothing
    was counted. With the cache unreachable the request goes through (logged): a person's
    registration or withdrawal matters more than a limit.
    """
    try:
        usage: dict[str, int] | None = get_usage(
            request,
            group=group,
            key=_client_key,
            rate=rate or settings.PUBLIC_CASE_RATE,
            increment=True,
        )
    except _CACHE_ERRORS:
        logger.warning("rate-limit cache unreachable; %s not limited", group)
        return None
    return usage


def over_limit(request: HttpRequest, group: str) -> bool:
    """Count one request in ``group``; True past PUBLIC_CASE_RATE for this client."""
    usage = client_usage(request, group)
    return bool(usage is not None and usage["should_limit"])


# --- Case secret guessing -------------------------------------------------------------------
# Only failed checks are counted, in fixed hourly windows on the shared cache. A client is
# refused once it has failed too often overall, or once it has failed on a reference that has
# itself had too many failures. A client that never failed on a limited reference still has its
# secret checked: an attacker hammering a reference cannot lock its owner out, and a network of
# clients gets at most one guess each per window at an 80-bit secret.

CASE_CHECK_WINDOW_SECONDS = 3600


def _case_check_keys(*, reference: str, client: str) -> tuple[str, str, str]:
    window = int(time.time()) // CASE_CHECK_WINDOW_SECONDS
    # The reference too is kept only as a keyed digest, so the cache names no case.
    reference_digest = hmac.new(
        settings.SECRET_KEY.encode(), f"case-check:{reference}".encode(), hashlib.sha256
    ).hexdigest()[:32]
    return (
        f"rl:case-check:client:{client}:{window}",
        f"rl:case-check:reference:{reference_digest}:{window}",
        f"rl:case-check:pair:{reference_digest}:{client}:{window}",
    )


def _retry_after() -> int:
    return CASE_CHECK_WINDOW_SECONDS - int(time.time()) % CASE_CHECK_WINDOW_SECONDS


def case_check_refusal(*, reference: str, client: str) -> int | None:
    """Seconds to wait if ``client`` may not try a secret on ``reference`` now, else None.

    ``reference`` is the canonical reference (or any fixed text for a malformed one), ``client``
    a client digest. With the cache unreachable nothing is refused (logged).
    """
    client_key, reference_key, pair_key = _case_check_keys(reference=reference, client=client)
    try:
        counts = cache.get_many([client_key, reference_key, pair_key])
    except _CACHE_ERRORS:
        logger.warning("rate-limit cache unreachable; case checks not limited")
        return None
    if counts.get(client_key, 0) >= settings.CASE_CHECK_FAILURES_PER_CLIENT:
        return _retry_after()
    if (
        counts.get(reference_key, 0) >= settings.CASE_CHECK_FAILURES_PER_REFERENCE
        and counts.get(pair_key, 0) > 0
    ):
        return _retry_after()
    return None


def case_check_failure_record(*, reference: str, client: str) -> None:
    """Count one failed secret check of ``client`` on ``reference`` (see case_check_refusal)."""
    for key in _case_check_keys(reference=reference, client=client):
        try:
            cache.add(key, 0, CASE_CHECK_WINDOW_SECONDS + 60)
            cache.incr(key)
        except ValueError:  # The entry expired between add and incr.
            cache.set(key, 1, CASE_CHECK_WINDOW_SECONDS + 60)
        except _CACHE_ERRORS:
            logger.warning("rate-limit cache unreachable; failed case check not counted")
            return


_WINDOW_SECONDS = 60


# Add to a window's counter and (re)set its expiry, atomically, in one round trip.
_WINDOW_ADD_SCRIPT = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return used
"""


def _window_add(cache_key: str, count: int) -> int:
    """Add ``count`` to the window's counter (created at 0 if absent); its new value.

    On Redis this is one round trip (a script run on the key the cache API would use), on a
    client kept with the cache's connection; Django's add-then-incr took three round trips and
    built two redis-py clients, on every match call (tests/load/).
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        script = getattr(backend, "_window_add_script", None)
        if script is None:
            # The redis-py client of Django's RedisCache (not in the type stubs), made once.
            client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
            script = client.register_script(_WINDOW_ADD_SCRIPT)
            backend._window_add_script = script  # type: ignore[attr-defined]
        key = backend.make_and_validate_key(cache_key)
        return int(script(keys=[key], args=[count, _WINDOW_SECONDS + 5]))
    try:
        cache.add(cache_key, 0, _WINDOW_SECONDS + 5)
        return cache.incr(cache_key, count)
    except ValueError:  # The window expired between add and incr: start the next one.
        cache.set(cache_key, count, _WINDOW_SECONDS + 5)
        return count


# A process counts its partners' hashes itself and adds them to the shared counter at most this
# often, or at once from the moment the budget is nearly spent (_EXACT_SHARE), so that a match
# call seldom waits for Redis; the first call of a window always reads the shared count.
_SYNC_SECONDS = 0.1
_EXACT_SHARE = 0.9


@dataclass
class _Window:
    """One budget window as this process knows it: the shared count last read, and the hashes
    this process has counted since, as positions in the order it counted them."""

    number: int
    shared: int = 0  # the shared count after the last send answered
    counted: int = 0  # positions counted here, in all
    sent: int = 0  # positions in sends begun (one at a time)
    answered: int = 0  # positions in sends answered
    sending: bool = False
    synced_at: float = float("-inf")


class _LocalBudgets:
    """Per-minute hash budgets counted in the process and reconciled with Redis in batches.

    Exact while a partner is within 90% of its budget: every call then waits for a count that
    includes its hashes and everything this process counted before them, and is judged on its
    own place in that count. Below 90%, what other processes counted in the last 0.1 s is not
    yet seen, so a budget can be overrun by at most what the other processes serve in 0.1 s,
    once, before the calls that pass 90% count exactly. Calls refused count too, as before.

    A process has at most one addition to a window's shared counter in flight: with two, the
    one answered first could be missing the other's hashes (already let through here), and a
    call judged on it would be judged on too low a count.
    """

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)

    def add(self, cache_key: str, window: int, count: int, limit: int) -> int:
        """Count ``count`` hashes; the budget's use up to and with them, as best known now."""
        now = time.monotonic()
        with self._lock:
            state = self._windows.get(cache_key)
            if state is None or state.number != window:
                if len(self._windows) > 10_000:
                    self._windows.clear()
                state = self._windows[cache_key] = _Window(number=window)
            state.counted += count
            mine = state.counted
            estimate = state.shared + state.counted - state.answered
            if estimate <= limit * _EXACT_SHARE and (
                state.sending or now - state.synced_at < _SYNC_SECONDS
            ):
                return estimate
            while state.sending:
                self._answered.wait()
            if state.answered >= mine:
                # A send answered meanwhile carried this call's hashes.
                return state.shared - (state.answered - mine)
            begun, upto = state.sent, state.counted
            state.sent, state.sending = upto, True
        try:
            shared = _window_add(cache_key, upto - begun)
        except _CACHE_ERRORS:
            with self._lock:
                state.sent, state.sending = begun, False  # Kept for the next attempt.
                self._answered.notify_all()
            raise
        with self._lock:
            # Within a window the shared count only grows.
            state.shared = max(state.shared, shared)
            state.answered, state.sending = upto, False
            state.synced_at = now
            self._answered.notify_all()
        # The shared count after this send, less what this process counted after this call.
        return shared - (upto - mine)

    def clear(self) -> None:
        """Forget every window (tests: the shared counters were emptied)."""
        with self._lock:
            self._windows.clear()


budgets = _LocalBudgets()


def limit_partner_hashes(partner: Partner, count: int, *, slowed_key: int | None = None) -> None:
    """Count ``count`` hashes against the partner's per-minute budget; raise RateLimited past it.

    django-ratelimit counts one per call; a batch must count each of its hashes, so this is the same
    fixed-window counter, incremented by the batch size, counted in the process and added to the
    shared cache in batches (``_LocalBudgets``).
    ``slowed_key``: the id of a key under a probing alert (registry.matching.probing), which gets
    the budget divided by PROBING_SLOWDOWN_FACTOR, on a counter of its own."""
    limit = partner.match_hashes_per_minute or settings.MATCH_HASHES_PER_MINUTE
    window = int(time.time()) // _WINDOW_SECONDS
    cache_key = f"rl:match-hashes:{partner.pk}:{window}"
    if slowed_key is not None:
        limit = max(1, limit // settings.PROBING_SLOWDOWN_FACTOR)
        cache_key = f"rl:match-hashes:key:{slowed_key}:{window}"
    try:
        used = budgets.add(cache_key, window, count, limit)
    except _CACHE_ERRORS:
        logger.warning("rate-limit cache unreachable; partner %s not limited", partner.pk)
        return
    if used > limit:
        retry_after = _WINDOW_SECONDS - int(time.time()) % _WINDOW_SECONDS
        raise RateLimited(
            retry_after=retry_after, details={"hashes_per_minute": limit, "window_seconds": 60}
        )
