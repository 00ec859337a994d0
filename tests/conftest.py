"""Shared fixtures: the named personas every test speaks of.

- ``partner_a`` and ``partner_b``: two platforms; B must never learn anything about A's use.
- ``revoked_partner``: a platform whose only key was revoked.
- ``reviewer``: a staff member in the reviewers group, who decides on disputed hashes.
- ``superuser``: an administrator who manages partners, keys and settings.
- ``staff_client``: logs a staff member into the admin, second factor included.
- ``verifying_receiver`` and ``webhooked``: a local webhook endpoint that checks signatures, and
  partner A pointed at it; ``web_side_broker`` points this process's Celery at a real broker.
- ``person``: someone who registered two photos, with the secret they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.celery import app as celery_app
from registry.keycache import key_cache
from registry.matching import follower as matcher_module
from registry.matching.follower import Matcher
from registry.models import Partner, PartnerKey
from registry.ratelimits import budgets
from registry.roles import REVIEWERS
from registry.services.partners import partner_key_issue, partner_key_revoke
from tests.factories import RegisteredCase, register_case
from tests.processes import WEBHOOK_SECRET, VerifyingReceiver

ALL_SCOPES = [scope.value for scope in PartnerKey.Scope]


@dataclass(frozen=True)
class PartnerPersona:
    partner: Partner
    key: PartnerKey
    raw_key: str

    @property
    def auth(self) -> dict[str, str]:
        """Request headers carrying this partner's key."""
        return {"Authorization": f"Bearer {self.raw_key}"}


def _partner(name: str, scopes: list[str]) -> PartnerPersona:
    partner = Partner.objects.create(name=name)
    issued = partner_key_issue(partner=partner, scopes=scopes)
    return PartnerPersona(partner=partner, key=issued.key, raw_key=issued.raw)


@pytest.fixture
def partner_a(db: None) -> PartnerPersona:
    return _partner("Platform A", ALL_SCOPES)


@pytest.fixture
def partner_b(db: None) -> PartnerPersona:
    return _partner("Platform B", ALL_SCOPES)


@pytest.fixture
def revoked_partner(db: None) -> PartnerPersona:
    persona = _partner("Revoked Platform", ALL_SCOPES)
    partner_key_revoke(key=persona.key)
    return persona


@pytest.fixture
def reviewer(db: None) -> User:
    user = User.objects.create_user("reviewer", password="a long reviewer password", is_staff=True)
    group, _ = Group.objects.get_or_create(name=REVIEWERS)
    user.groups.add(group)
    return user


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("admin", password="a long admin password")


def staff_login(client: Client, user: User) -> Client:
    """Log ``user`` into ``client`` with a confirmed TOTP device, as after both factors."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test device", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def staff_client(client: Client) -> Callable[[User], Client]:
    """Returns a function that logs a staff member into the admin, second factor included,
    and gives the client."""

    def login(user: User) -> Client:
        return staff_login(client, user)

    return login


@pytest.fixture
def person(db: None) -> RegisteredCase:
    return register_case(images=2)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's test databases; the partner key listener's connection is closed before
    they are dropped (registry.keycache: it holds one to the test database)."""
    yield
    key_cache.stop()


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Each test starts with no rate-limit counters (shared, or counted in this process)."""
    cache.clear()
    budgets.clear()
    yield
    cache.clear()
    budgets.clear()


@pytest.fixture
def match_index(db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Matcher]:
    """This process's matcher, loaded from the test database; call catch_up() after writes."""
    fresh = Matcher()
    monkeypatch.setattr(matcher_module, "_matcher", fresh)
    fresh.load()
    yield fresh
    fresh.stop()


@pytest.fixture
def verifying_receiver() -> Iterator[VerifyingReceiver]:
    endpoint = VerifyingReceiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def webhooked(partner_a: PartnerPersona, verifying_receiver: VerifyingReceiver) -> Partner:
    """Partner A, with its webhooks sent to ``verifying_receiver``."""
    Partner.objects.filter(pk=partner_a.partner.pk).update(
        webhook_url=verifying_receiver.url, webhook_secret=WEBHOOK_SECRET
    )
    return Partner.objects.get(pk=partner_a.partner.pk)


@pytest.fixture
def web_side_broker() -> Iterator[Callable[[str], None]]:
    """Point this process's Celery at a broker, as a web process with CELERY_BROKER_URL is."""
    saved = {name: celery_app.conf[name] for name in ("task_always_eager", "broker_url")}

    def point_at(url: str) -> None:
        celery_app.conf.update(task_always_eager=False, broker_url=url)

    yield point_at
    celery_app.conf.update(saved)
