"""Writes concerning partners: creating them, issuing, revoking and checking their keys."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Model
from django.utils import timezone

from api import outbox
from api.keys import digests_equal, key_digest, new_key, parse_key
from api.match_ids import match_id_decode
from api.models import MatchCall, Partner, PartnerKey, WebhookDelivery
from api.probing import slowed_key_id
from api.throttling import limit_partner_hashes
from registry import review
from registry.exceptions import InvalidInput
from registry.models import AuditEvent, Change, ConsentRecord, RegisteredImage, WithdrawalAck
from registry.selectors import (
    ImageMatch,
    change_page,
    hash_holders,
    hash_match,
    image_hashes,
    images_disclosed,
)
from registry.services import audit_event_record, disclosure_record

# Two usable keys at once let a partner rotate: issue the new one, deploy it, revoke the old.
MAX_USABLE_KEYS = 2

logger = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=Model)


@dataclass(frozen=True, slots=True)
class KeyIssued:
    """A new key row and the key text, shown to the partner this once."""

    key: PartnerKey
    raw: str


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in PartnerKey.Scope.values]
    if unknown or not chosen:
        raise InvalidInput(
            "scopes_invalid",
            f"Scopes are one or more of: {', '.join(PartnerKey.Scope.values)}.",
            details={"unknown": unknown},
        )
    return chosen


def partner_create(*, name: str, actor: str = "system") -> Partner:
    """Create a partner (no key yet). Raises InvalidInput for an empty or taken name."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("partner_name_invalid", "A partner name is 1 to 100 characters.")
    with transaction.atomic():
        if Partner.objects.filter(name=name).exists():
            raise InvalidInput("partner_name_taken", "A partner with this name exists.")
        partner = Partner.objects.create(name=name)
        audit_event_record(
            action=AuditEvent.Action.PARTNER_CREATED, actor=actor, subject=f"partner:{partner.pk}"
        )
    return partner


def partner_key_issue(
    *,
    partner: Partner,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
    actor: str = "system",
) -> KeyIssued:
    """Issue a new key for ``partner`` with ``scopes``; return it with its text, shown once.

    Raises InvalidInput for unknown scopes, a past expiry, or when the partner already holds
    MAX_USABLE_KEYS usable keys (revoke one first).
    """
    chosen = _check_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("expiry_in_past", "A key's expiry must be in the future.")
    with transaction.atomic():
        Partner.objects.select_for_update().get(pk=partner.pk)
        if PartnerKey.objects.usable().filter(partner=partner).count() >= MAX_USABLE_KEYS:
            raise InvalidInput(
                "too_many_keys",
                f"A partner holds at most {MAX_USABLE_KEYS} usable keys: revoke one first.",
            )
        parsed = new_key()
        key = PartnerKey.objects.create(
            partner=partner,
            lookup_id=parsed.lookup_id,
            digest=key_digest(parsed.raw, settings.KEY_PEPPER),
            scopes=chosen,
            expires_at=expires_at,
        )
        audit_event_record(
            action=AuditEvent.Action.PARTNER_KEY_ISSUED,
            actor=actor,
            subject=f"key:{key.lookup_id}",
            details={"partner": partner.pk, "scopes": chosen},
        )
    return KeyIssued(key=key, raw=parsed.raw)


def partner_key_revoke(*, key: PartnerKey, actor: str = "system") -> bool:
    """Revoke ``key``: it fails from the very next request. Idempotent; True if it changed."""
    with transaction.atomic():
        updated = PartnerKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_event_record(
                action=AuditEvent.Action.PARTNER_KEY_REVOKED,
                actor=actor,
                subject=f"key:{key.lookup_id}",
                details={"partner": key.partner_id},
            )
    key.refresh_from_db()
    return bool(updated)


@functools.cache
def _key_read_sql() -> str:
    quote = connection.ops.quote_name
    columns = [f"k.{quote(field.column)}" for field in PartnerKey._meta.concrete_fields] + [
        f"p.{quote(field.column)}" for field in Partner._meta.concrete_fields
    ]
    return (
        f"SELECT {', '.join(columns)} FROM {quote(PartnerKey._meta.db_table)} k "  # noqa: S608
        f"JOIN {quote(Partner._meta.db_table)} p ON p.{quote(Partner._meta.pk.column)} = "
        f"k.{quote(PartnerKey._meta.get_field('partner').column)} WHERE k.lookup_id = %s"
    )


@functools.cache
def _row_converters(model: type[Model], vendor: str) -> list[tuple[Any, list[Any]]]:
    """What the ORM applies to each selected column: the backend's converters, then the
    field's (the same for every connection to one kind of database)."""
    found = []
    for field in model._meta.concrete_fields:
        column: Any = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        found.append((column, converters))
    return found


def _from_row(model: type[ModelT], values: Sequence[Any]) -> ModelT:
    converted = []
    for (column, converters), value in zip(
        _row_converters(model, connection.vendor), values, strict=True
    ):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    names = [field.attname for field in model._meta.concrete_fields]
    return model.from_db(connection.alias, names, converted)


def _key_read(lookup_id: str) -> PartnerKey | None:
    """The key with ``lookup_id`` and its partner, in one indexed read.

    The same query as ``select_related("partner").filter(lookup_id=...)``, written out once:
    building it through the ORM cost several times the database's own work, on every partner
    request (tests/load/).
    """
    with connection.cursor() as cursor:
        cursor.execute(_key_read_sql(), [lookup_id])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(PartnerKey._meta.concrete_fields)
    key = _from_row(PartnerKey, row[:split])
    key.partner = _from_row(Partner, row[split:])
    return key


def partner_key_authenticate(raw: str) -> PartnerKey | None:
    """Return the usable key whose text is ``raw``, or None. One indexed read and one HMAC.

    The key is read afresh on every call, so a revocation takes effect on the very next
    request. Usability is checked here rather than in SQL: the plainest query is the cheapest.
    """
    parsed = parse_key(raw)
    if parsed is None:
        return None
    key = _key_read(parsed.lookup_id)
    if key is None:
        return None
    if not digests_equal(key.digest, key_digest(parsed.raw, settings.KEY_PEPPER)):
        return None
    if not key.is_usable(now=timezone.now()):
        return None
    return key


def partner_match(
    *, key: PartnerKey, hashes: Sequence[bytes], purpose: str, max_distance: int
) -> list[list[ImageMatch]]:
    """Match ``hashes`` for the partner holding ``key`` and record the call.

    Counts each hash against the partner's rate limit (raises RateLimited), matches through
    registry.selectors.hash_match, and writes one MatchCall row: partner, time, counts and
    purpose, never the hashes. Counts each image's matches for the review's spike rule.
    A key under a probing alert gets a fraction of the budget (api.probing).
    """
    limit_partner_hashes(key.partner, len(hashes), slowed_key=slowed_key_id(key))
    results = hash_match(hashes, max_distance=max_distance)
    review.image_matches_record(match.image_id for matches in results for match in matches)
    match_call_recorder.record(
        MatchCall(
            partner_id=key.partner_id,
            key_id=key.pk,
            purpose=purpose,
            hashes=len(hashes),
            matched_hashes=sum(1 for matches in results if matches),
            matches=sum(len(matches) for matches in results),
        )
    )
    return results


class MatchCallRecorder:
    """Writes this process's MatchCall rows.

    Until ``start()``, each row is written at once. The web processes start it (post_fork in
    deploy/gunicorn.conf.py): rows then wait in memory and a thread writes them in one INSERT
    every ``interval`` seconds, rather than an INSERT and a commit on every match call (about a
    sixth of a single-hash call's cost, measured with tests/load/). A row is a usage
    count, never a hash: a crash loses at most the last interval's rows, and ``stop()`` (at
    worker exit) writes what is left. Rows that could not be written (the database restarting)
    are kept for the next attempt, up to MAX_PENDING.
    """

    MAX_PENDING = 100_000

    def __init__(self) -> None:
        self._pending: list[MatchCall] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, row: MatchCall) -> None:
        if self._thread is None:
            row.save(force_insert=True)
            return
        with self._lock:
            self._pending.append(row)
            if len(self._pending) > self.MAX_PENDING:
                del self._pending[: len(self._pending) - self.MAX_PENDING]
                logger.warning("match call records dropped: the database is not answering")

    def flush(self) -> int:
        """Write the waiting rows now; return how many were written."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            with transaction.atomic():  # All or none: a failed flush is retried whole.
                MatchCall.objects.bulk_create(rows)
        except Exception:
            with self._lock:
                self._pending[:0] = rows
            raise
        return len(rows)

    def start(self, *, interval: float = 0.5) -> None:
        """Write rows in batches from now on, from a thread of this process."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="match-calls", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Write what is left and go back to writing each row at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        try:
            self.flush()
        except Exception:
            logger.exception("match call records not written at exit")

    def _run(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.flush()
            except Exception:  # The next round retries; a database restart must not stop us.
                logger.exception("match call records not written; retrying")
            finally:
                close_old_connections()


match_call_recorder = MatchCallRecorder()


# --- Webhooks and withdrawal acknowledgements ----------------------------------------------


def webhook_deliveries_dispatch() -> list[int]:
    """Derive webhook deliveries from the changes not yet derived (api.outbox), for every partner
    with a webhook; return the ids of the deliveries written, for the caller to send.

    Idempotent and safe to run in several processes at once: a (partner, change) pair gets one
    delivery, whose ``webhook_id`` never changes.
    """
    return outbox.deliveries_derive()


def webhook_deliveries_sweep() -> list[int]:
    """The periodic catch-up: derive as webhook_deliveries_dispatch does (changes whose enqueue
    failed), then return the ids of every pending delivery now due (first attempts and
    retries), for the caller to send. Sending a due id twice is harmless (see the claim)."""
    outbox.deliveries_derive()
    return outbox.deliveries_due()


def webhook_delivery_send(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt of a due delivery: claim it, POST it signed, record the outcome.

    Returns None when the delivery is not due, already final, or claimed by another worker.
    Never raises for the partner's faults: they become a retry, or ``failed`` after the last.
    """
    return outbox.delivery_attempt(delivery_id)


@dataclass(frozen=True, slots=True)
class WithdrawalAcks:
    """The answer to an acknowledgement: ids recorded (now or before), and ids refused."""

    acknowledged: list[str]
    unknown: list[str]
    not_withdrawn: list[str]


def withdrawal_ack_record(*, partner: Partner, ids: Sequence[str]) -> WithdrawalAcks:
    """Record that ``partner`` applied the withdrawal of the images named by ``ids``.

    ``ids`` are the opaque image ids issued to this partner (match ids, webhook and feed ids).
    An id not issued to it, or naming no image, is reported ``unknown``; an image that is not
    withdrawn is reported ``not_withdrawn``. Idempotent: acknowledging again keeps the first
    time. The WithdrawalAck rows are themselves the record (no audit event).
    """
    decoded: dict[str, int | None] = {
        text: match_id_decode(text, partner_id=partner.pk) for text in dict.fromkeys(ids)
    }
    image_ids = {image_id for image_id in decoded.values() if image_id is not None}
    statuses = dict(RegisteredImage.objects.filter(pk__in=image_ids).values_list("pk", "status"))
    acknowledged: list[str] = []
    unknown: list[str] = []
    not_withdrawn: list[str] = []
    withdrawn: list[int] = []
    for text, image_id in decoded.items():
        if image_id is None or image_id not in statuses:
            unknown.append(text)
        elif statuses[image_id] != RegisteredImage.Status.WITHDRAWN:
            not_withdrawn.append(text)
        else:
            acknowledged.append(text)
            withdrawn.append(image_id)
    now = timezone.now()
    WithdrawalAck.objects.bulk_create(
        [
            WithdrawalAck(partner_id=partner.pk, image_id=image_id, acknowledged_at=now)
            for image_id in sorted(set(withdrawn))
        ],
        ignore_conflicts=True,
    )
    return WithdrawalAcks(acknowledged=acknowledged, unknown=unknown, not_withdrawn=not_withdrawn)


# --- Distribution: the sync feeds -----------------------------------------------------------


def partner_sync_scopes(partner: Partner) -> list[str]:
    """The scopes whose images ``partner`` receives in the feeds (intimate if unset or odd)."""
    chosen = partner.sync_scopes
    if not isinstance(chosen, list):
        return [ConsentRecord.Scope.INTIMATE]
    return [scope for scope in chosen if scope in ConsentRecord.Scope.values]


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One image at its place in the change sequence, as the feeds show it now.

    ``kind`` is the image's present state, not the change's: ``added`` while it matches (with
    its hashes), ``withdrawn`` once it no longer does (a tombstone, no hashes). A partner that
    applies entries in order ends with the present state, and a stopped image never has its
    hashes served again.
    """

    change_id: int
    image_id: int
    kind: str
    status: str
    scope: str
    minor_depicted: bool
    changed_at: dt.datetime
    hashes: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the feed: its entries, and where the next page starts."""

    entries: list[FeedEntry]
    # The last change read, kept or not: the next page starts after it (None: nothing read).
    last_change_id: int | None
    last_changed_at: dt.datetime | None
    has_more: bool


def partner_changes_read(*, partner: Partner, after_id: int, limit: int) -> FeedPage:
    """The next ``limit`` changes after ``after_id`` as ``partner`` sees them; records disclosures.

    Keeps only images in the partner's sync scopes and never an image awaiting review. Every
    image whose hashes are in the page is recorded in the disclosure ledger before returning.
    """
    changes = change_page(after_id=after_id, limit=limit)
    scopes = set(partner_sync_scopes(partner))
    kept = [
        change
        for change in changes
        if change.image.scope in scopes and change.image.status != RegisteredImage.Status.RECEIVED
    ]
    matchable = {
        change.image_id for change in kept if change.image.status in RegisteredImage.MATCHABLE
    }
    hashes = image_hashes(matchable)
    disclosure_record(partner_id=partner.pk, image_ids=matchable)
    entries = [
        FeedEntry(
            change_id=change.pk,
            image_id=change.image_id,
            kind=Change.Kind.ADDED if change.image_id in matchable else Change.Kind.WITHDRAWN,
            status=change.image.status,
            scope=change.image.scope,
            minor_depicted=change.image.minor_depicted,
            changed_at=change.created_at,
            hashes=hashes.get(change.image_id, []),
        )
        for change in kept
    ]
    return FeedPage(
        entries=entries,
        last_change_id=changes[-1].pk if changes else None,
        last_changed_at=changes[-1].created_at if changes else None,
        has_more=len(changes) == limit,
    )


@dataclass(frozen=True, slots=True)
class HashRecord:
    """One hash value as the StopNCII feed shows it: every image holding it that the partner
    may know of, and whether any of them still matches."""

    value: bytes
    changed_at: dt.datetime
    active_image_ids: list[int]
    withdrawn_image_ids: list[int]
    minor_depicted: bool


def partner_hash_records_read(
    *, partner: Partner, after_id: int, limit: int
) -> tuple[list[HashRecord], FeedPage]:
    """The next ``limit`` changes as per-hash records (the StopNCII shape); records disclosures.

    A hash value is keyed alone on the partner's side, so each record aggregates every image in
    the partner's scopes that holds the value: it is active if any of them matches. The hashes
    of an image that stopped matching are sent again (as withdrawn) only to a partner that
    received them before: a withdrawal never discloses a hash to a partner that never had it.
    """
    page = partner_changes_read(partner=partner, after_id=after_id, limit=limit)
    scopes = partner_sync_scopes(partner)
    gone = {entry.image_id for entry in page.entries if entry.kind == Change.Kind.WITHDRAWN}
    gone_known = images_disclosed(partner_id=partner.pk, image_ids=gone)
    gone_hashes = image_hashes(gone_known)
    ordered: dict[bytes, dt.datetime] = {}
    for entry in page.entries:
        for _variant, value in entry.hashes or gone_hashes.get(entry.image_id, []):
            ordered.pop(value, None)
            ordered[value] = entry.changed_at
    holders = hash_holders(ordered, scopes=scopes)
    other_gone = {
        holder.image_id
        for found in holders.values()
        for holder in found
        if holder.status not in RegisteredImage.MATCHABLE
    }
    known = images_disclosed(partner_id=partner.pk, image_ids=other_gone)
    records: list[HashRecord] = []
    served: set[int] = set()
    for value, changed_at in ordered.items():
        found = holders.get(value, [])
        active = [h.image_id for h in found if h.status in RegisteredImage.MATCHABLE]
        withdrawn = [h.image_id for h in found if h.image_id in known]
        if not active and not withdrawn:
            continue
        served.update(active)
        records.append(
            HashRecord(
                value=value,
                changed_at=changed_at,
                active_image_ids=active,
                withdrawn_image_ids=withdrawn,
                minor_depicted=any(
                    h.minor_depicted for h in found if h.status in RegisteredImage.MATCHABLE
                ),
            )
        )
    # Images outside this page that share a served hash value were disclosed too.
    disclosure_record(partner_id=partner.pk, image_ids=served)
    return records, page


# After a rotation the old key keeps working this long, for the partner to deploy the new one.
ROTATION_GRACE = dt.timedelta(days=7)


@transaction.atomic
def partner_key_rotate(*, key: PartnerKey, actor: str) -> tuple[KeyIssued, dt.datetime]:
    """Issue ``key``'s successor (same scopes, same lifetime) and make ``key`` expire after
    ROTATION_GRACE (sooner if it already expires sooner). Returns the new key, shown once, and
    the old key's expiry. Raises InvalidInput if ``key`` is not usable, or if the partner
    already holds the most usable keys allowed (revoke one first)."""
    now = timezone.now()
    old = PartnerKey.objects.select_for_update().select_related("partner").get(pk=key.pk)
    if not old.is_usable(now=now):
        raise InvalidInput("key_not_usable", "Only a usable key can be rotated.")
    lifetime = old.expires_at - old.created_at if old.expires_at else None
    issued = partner_key_issue(
        partner=old.partner,
        scopes=old.scopes,
        expires_at=now + lifetime if lifetime else None,
        actor=actor,
    )
    grace_end = now + ROTATION_GRACE
    if old.expires_at is None or old.expires_at > grace_end:
        old.expires_at = grace_end
        old.save(update_fields=["expires_at"])
    assert old.expires_at is not None
    audit_event_record(
        action=AuditEvent.Action.PARTNER_KEY_ROTATED,
        actor=actor,
        subject=f"key:{old.lookup_id}",
        details={
            "partner": old.partner_id,
            "replaced_by": issued.key.lookup_id,
            "old_key_expires_at": old.expires_at.isoformat(),
        },
    )
    return issued, old.expires_at
