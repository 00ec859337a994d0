"""A full scenario, then a scan of the database dump, the logs and the cache for what must not be.

Registered through the API from one address, matched by a partner, withdrawn (no webhooks),
and failed admin logins from the same address until the account locks: the address appears
nowhere, nor the case secret (the idempotency record holds the answer only sealed), and the
hashes' hex appears in no table but registry_imagehash.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client

from registry.matching.follower import Matcher
from tests.conftest import PartnerPersona
from tests.factories import case_creation_body, dihedral_payload, random_dihedral

ADDRESS = "203.0.113.77"
HASH_TABLES = {"public.registry_imagehash", "public.registry_allowlistedhash"}


def _post(path: str, body: dict[str, Any], **headers: str) -> Any:
    return Client(REMOTE_ADDR=ADDRESS).post(
        path, json.dumps(body), content_type="application/json", headers=headers
    )


def _dump_tables() -> dict[str, str]:
    """The test database as plain SQL (pg_dump), its COPY data split by table."""
    database = connection.settings_dict
    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "--no-owner",
            "-h", str(database["HOST"] or "127.0.0.1"),
            "-p", str(database["PORT"] or 5432),
            "-U", str(database["USER"]),
            str(database["NAME"]),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PGPASSWORD": str(database["PASSWORD"] or ""), "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    tables = dict(re.findall(r"^COPY (\S+) .*? FROM stdin;\n(.*?)^\\\.$", dump, re.M | re.S))
    assert "public.registry_case" in tables
    return tables


def _cache_text() -> str:
    client = cache._cache.get_client(write=False)  # type: ignore[attr-defined]
    parts = []
    for key in client.scan_iter("*"):
        parts.append(key.decode(errors="replace"))
        if client.type(key) == b"string":
            parts.append((client.get(key) or b"").decode(errors="replace"))
    return "\n".join(parts)


@pytest.mark.django_db(transaction=True)
def test_a_full_scenario_leaves_no_address_secret_or_stray_hash(
    partner_a: PartnerPersona, match_index: Matcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    images = [random_dihedral(), random_dihedral()]
    created = _post(
        "/api/v1/cases",
        case_creation_body([dihedral_payload(image) for image in images]),
        **{"Idempotency-Key": "scan-1"},
    )
    assert created.status_code == 201
    credentials = created.json()
    wrong = {**credentials, "case_secret": "AAAA-BBBB-CCCC-DDDD"}
    assert _post("/api/v1/cases/status", wrong).status_code == 403  # counted in the cache
    match_index.catch_up()
    matched = Client().post(
        "/api/v1/match",
        json.dumps({"hashes": [images[0].hashes[0].hex()], "purpose": "publish"}),
        content_type="application/json",
        headers=partner_a.auth,
    )
    assert len(matched.json()["results"][0]["matches"]) == 1
    assert _post("/api/v1/cases/withdraw", credentials).status_code == 200
    User.objects.create_user("operator", password="a long operator password", is_staff=True)
    staff = Client(REMOTE_ADDR=ADDRESS)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        staff.post("/admin/login/", {"username": "operator", "password": "not the password"})
    locked = staff.post(
        "/admin/login/", {"username": "operator", "password": "a long operator password"}
    )
    assert locked.status_code == 429

    tables = _dump_tables()
    logs = "\n".join(record.getMessage() for record in caplog.records)
    cached = _cache_text()
    assert "rl:case-check" in cached  # the scan did see the counters
    assert "operator" in tables["public.axes_accessattempt"]  # and the failed logins
    secret = credentials["case_secret"]
    for where, text in [*tables.items(), ("logs", logs), ("cache", cached)]:
        assert ADDRESS not in text, where
        assert secret not in text, where
        assert secret.replace("-", "") not in text, where
    hexes = [value.hex() for image in images for value in image.hashes]
    assert any(hexes[0] in text for text in tables.values())  # the dump does hold the hashes
    for where, text in [*tables.items(), ("logs", logs), ("cache", cached)]:
        if where in HASH_TABLES:
            continue
        for value in hexes:
            assert value not in text.lower(), where
