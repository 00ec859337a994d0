"""The writes alongside the load: people registering and withdrawing photos, and the match
calls that check a withdrawn photo never matches (tests/load/harness.py runs them)."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


def post(base: str, path: str, body: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
    """POST JSON on loopback; the status and the decoded answer (errors included)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(  # noqa: S310 - loopback only
        f"{base}{path}", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def match_count(base: str, key: str, hashes: list[str]) -> int:
    """How many of ``hashes`` match anything now (raises on an error answer)."""
    matched = 0
    for start in range(0, len(hashes), 1000):
        status, body = post(
            base,
            "/api/v1/match",
            {"hashes": hashes[start : start + 1000], "purpose": "publish"},
            key,
        )
        if status != 200:
            raise RuntimeError(f"match answered {status}")
        matched += sum(1 for result in body["results"] if result["matches"])
    return matched


def _random_pdq_hash(rng: random.Random) -> str:
    value = 0
    for bit in rng.sample(range(256), 128):
        value |= 1 << bit
    return value.to_bytes(32, "big").hex()


@dataclass
class WriteStream:
    """People registering and withdrawing photos through the public API while the load runs.

    Each round opens a case of one photo, waits until its rotated variant matches, withdraws the
    case, and matches the photo again at once: it must match nothing. Every second case is kept,
    so the registry also grows during the load. Once told to stop, the stream still completes
    ``min_withdrawals`` withdrawals (unless something failed), so that a short run has some.
    """

    base: str
    key: str
    pause: float = 0.5
    min_withdrawals: int = 1
    registrations: int = 0
    withdrawals: int = 0
    errors: list[str] = field(default_factory=list)
    matched_after_withdrawal: int = 0
    withdrawn_hashes: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _rng: random.Random = field(default_factory=lambda: random.Random(11))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="write-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        round_number = 0
        while not (
            self._stop.is_set() and (self.withdrawals >= self.min_withdrawals or self.errors)
        ):
            try:
                self._round(keep=round_number % 2 == 1)
            except Exception as error:  # Recorded, reported, and the stream goes on.
                self.errors.append(f"{type(error).__name__}: {error}")
            round_number += 1
            self._stop.wait(self.pause)

    def _round(self, *, keep: bool) -> None:
        photo = [_random_pdq_hash(self._rng) for _ in range(8)]
        status, body = post(
            self.base,
            "/api/v1/cases",
            {
                "scope": "intimate",
                "attestations": {
                    "depicted_or_acting_for": True,
                    "rights_to_register": True,
                    "minor_depicted": False,
                },
                "terms_version": "2026-11",
                "language": "en",
                "images": [{"hashes": photo, "quality": 90}],
            },
        )
        if status != 201:
            self.errors.append(f"registration answered {status}")
            return
        self.registrations += 1
        if keep:
            return
        # Registered hashes become matchable within a second in every process; wait for it, so
        # that the withdrawal below is of a photo the index holds. (Generous: the machine is
        # loaded on purpose; the freshness promise is tested in tests/registry/.)
        deadline = time.monotonic() + 30
        while not match_count(self.base, self.key, [photo[1]]):
            if time.monotonic() > deadline:
                self.errors.append("a registered photo did not match within 30 s")
                break
            time.sleep(0.05)
        credentials = {"case_reference": body["case_reference"], "case_secret": body["case_secret"]}
        status, _ = post(self.base, "/api/v1/cases/withdraw", credentials)
        if status != 200:
            self.errors.append(f"withdrawal answered {status}")
            return
        self.withdrawals += 1
        self.withdrawn_hashes.extend(photo)
        self.matched_after_withdrawal += match_count(self.base, self.key, photo)
