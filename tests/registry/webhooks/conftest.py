"""What the webhook tests share: a local receiving endpoint, and partner A pointed at it."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.models import Partner
from tests.conftest import PartnerPersona


class Receiver:
    """A local endpoint that records what it receives and answers with a chosen status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings: SettingsWrapper) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


SECRET = "whsec_" + base64.b64encode(b"partner a's webhook secret 32by").decode()


@pytest.fixture
def hooked(partner_a: PartnerPersona, receiver: Receiver) -> PartnerPersona:
    """Partner A with a webhook to the local receiver."""
    Partner.objects.filter(pk=partner_a.partner.pk).update(
        webhook_url=receiver.url, webhook_secret=SECRET
    )
    partner_a.partner.refresh_from_db()
    return partner_a
