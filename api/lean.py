"""The lean routes: a plain ``POST /api/v1/match``, and ``GET /health``, answered outside Django.

Partners call the match route in their upload path, thousands of times a second; Django's
middleware (sessions, CSRF, locale, authentication, OTP, messages, axes, CSP) and DRF's request,
negotiation, parsing and rendering cost several times the match itself. This WSGI layer, in
front of Django's application (registry/wsgi.py), answers a *plainly well-formed* match call
itself and hands everything else to Django unchanged:

* what it answers: ``POST /api/v1/match`` with no query string, an allowed host, no redirect to
  HTTPS due, a JSON body within the size limit holding only ``hashes`` (1 to 1,000 texts of 64
  hexadecimal digits, all real photos' hashes), ``purpose`` and optionally ``max_distance``,
  from a usable key with the ``match`` scope (and ``sync`` to lower the distance), and a plain
  ``Accept``. It parses with orjson, authenticates through the same key check as every route
  (registry.selectors.partners, with its cache), then calls the same services as the view
  (registry.services.matches.partner_match, the probing watch) and renders the same answer;
* what it hands to Django (the body restored): anything else, derived views included, so every
  refusal (401, 403, 400, 413, 415, 406) comes from api/views/match.py word for word;
* ``GET /health`` (liveness: the process answers) is answered here too, with the same fixed
  JSON and headers as registry/web/health.py: it is the load test's bare endpoint, what the
  server, its workers and nginx cost without the registry's work (tests/load/);
* errors raised once the call has been counted (429 over budget or on a probing alert, 503
  with PostgreSQL unreachable) are rendered through the API's own exception handler
  (api.errors), as DRF would render them.

Every answer carries the headers Django's middleware gives the same answer (``_headers``); the
tests compare both routes on the same requests, header by header and byte by byte
(tests/api/test_lean.py). ``MATCH_LEAN_ROUTE=0`` sends every request through Django.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.db import connections
from django.dispatch import receiver
from django.utils import translation

from api.errors import exception_handler
from api.views.match import MAX_HASHES_PER_MATCH, _match_answer, _match_input_plain
from registry.exceptions import RateLimited
from registry.matching import probing
from registry.middleware import PERMISSIONS_POLICY
from registry.pdq import MATCH_DISTANCE, InvalidHash, parse_hash
from registry.selectors.partners import partner_key_authenticate
from registry.services.matches import partner_match

logger = logging.getLogger(__name__)

PATH = "/api/v1/match"
HEALTH_PATH = "/health"
# JsonResponse's rendering (json.dumps's separators), byte for byte.
_HEALTH_BODY = b'{"status": "ok"}'
_FIELDS = frozenset({"hashes", "purpose", "max_distance"})
_ACCEPTS = frozenset({"", "*/*", "application/json"})
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)")
# What the exception handler may add to an error answer.
_ERROR_HEADERS = ("Retry-After", "WWW-Authenticate")
_REASONS = {200: "200 OK", 429: "429 Too Many Requests", 503: "503 Service Unavailable"}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LeanRoutes:
    """WSGI middleware: plain match calls and liveness answered here, the rest by ``app``."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if environ.get("QUERY_STRING") or not settings.MATCH_LEAN_ROUTE:
            return self.app(environ, start_response)
        if path == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET":
            return self._health(environ, start_response)
        if path != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        body = _body(environ)
        if body is None:
            return self.app(environ, start_response)
        environ["wsgi.input"] = io.BytesIO(body)
        answer = None
        try:
            answer = _answer(environ, body)
        finally:
            _connections_release(answered=answer is not None)
        if answer is None:
            return self.app(environ, start_response)
        status, headers, content = answer
        start_response(_REASONS.get(status, f"{status} Error"), headers)
        return [content]

    def _health(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = _plain_request(environ)
        if request is None:
            return self.app(environ, start_response)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(_HEALTH_BODY))),
            *_headers(request.is_secure(), _language(request)),
        ]
        start_response("200 OK", headers)
        return [_HEALTH_BODY]


def _connections_release(*, answered: bool) -> None:
    """What Django does at the end of a request (``close_old_connections``): close a connection
    that failed or outlived CONN_MAX_AGE, so the next request opens a sound one. Never one in a
    transaction (a test's).

    After a call this route ``answered``, the connections kept are not checked again before the
    next one. Django checks a kept connection with a query of its own (``SELECT 1``,
    CONN_HEALTH_CHECKS) before its first use in each request: a second round trip for every
    call that confirms a candidate. This route's reads need no such check: the key's and the
    confirmation's are tried once more on a new connection when the kept one was dropped
    (registry.dbreads). A call handed to Django gets Django's check, at its request's start.
    """
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            continue
        connection.close_if_unusable_or_obsolete()
        if answered and connection.connection is not None:
            # Django's own flag (BaseDatabaseWrapper.close_if_health_check_failed); the type
            # stubs leave it out.
            connection.health_check_done = True  # type: ignore[attr-defined]


def _plain_request(environ: dict[str, Any]) -> WSGIRequest | None:
    """The request, if Django would serve it as is: an allowed host, no HTTPS redirect due."""
    request = WSGIRequest(environ)
    try:
        request.get_host()
    except DisallowedHost:
        return None
    if settings.SECURE_SSL_REDIRECT and not request.is_secure():
        return None
    return request


def _body(environ: dict[str, Any]) -> bytes | None:
    """The request body, if it has a length within the limit (else Django answers)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length <= 0 or (limit is not None and length > limit):
        return None
    stream = environ["wsgi.input"]
    body: bytes = stream.read(length)
    return body


Answer = tuple[int, list[tuple[str, str]], bytes]


def _answer(environ: dict[str, Any], body: bytes) -> Answer | None:
    """The status, headers and body of a plain match call; None to let Django answer."""
    media_type, _, parameters = environ.get("CONTENT_TYPE", "").partition(";")
    if media_type.strip().lower() != "application/json" or parameters.strip().lower() not in (
        "",
        "charset=utf-8",
    ):
        return None
    if environ.get("HTTP_ACCEPT", "").strip() not in _ACCEPTS:
        return None
    request = _plain_request(environ)
    if request is None:
        return None
    secure = request.is_secure()
    found = _BEARER.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
    if found is None:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or not data.keys() <= _FIELDS:
        return None
    plain = _match_input_plain(data)
    if plain is None or len(plain["hashes"]) > MAX_HASHES_PER_MATCH:
        return None
    try:
        hashes = [parse_hash(text) for text in plain["hashes"]]
    except InvalidHash:
        return None  # A flat image's hash is answered by the view, beside the others.
    try:
        key = partner_key_authenticate(found.group(1))
    except Exception:  # The view answers it (503 for the database), as it would anyway.
        return None
    if key is None or "match" not in key.scopes:
        return None
    if plain["max_distance"] != MATCH_DISTANCE and "sync" not in key.scopes:
        return None
    language = _language(request)
    try:
        results = partner_match(
            key=key,
            hashes=hashes,
            purpose=plain["purpose"],
            max_distance=plain["max_distance"],
        )
        if probing.match_observe(key=key, hashes=hashes, results=results):
            # The call that opens an alert is not answered: what it asked stays unknown.
            raise RateLimited(retry_after=60, details={"reason": "probing_alert"})
    except Exception as error:
        response = exception_handler(error, {})
        if response is None:
            raise
        extra = [
            (name, str(response.headers[name]))
            for name in _ERROR_HEADERS
            if name in response.headers
        ]
        return _render(response.status_code, response.data, secure, language, extra)
    partner_id = key.partner_id
    answers = [
        {"matches": [_match_answer(match, partner_id) for match in matches]} for matches in results
    ]
    return _render(200, {"results": answers}, secure, language, [])


def _language(request: WSGIRequest) -> str:
    """The language LocaleMiddleware would activate (it names the answer's Content-Language)."""
    if "HTTP_ACCEPT_LANGUAGE" not in request.META and not request.COOKIES:
        return settings.LANGUAGE_CODE
    return translation.get_language_from_request(request)


def _render(
    status: int, data: Any, secure: bool, language: str, extra: list[tuple[str, str]]
) -> Answer:
    content = orjson.dumps(data)
    headers = [
        ("Content-Type", "application/json"),
        ("Allow", "POST, OPTIONS"),
        ("Content-Length", str(len(content))),
        *extra,
        *_headers(secure, language),
    ]
    return status, headers, content


# The headers of each (secure, language), built once for the settings in force: about ten
# settings read through Django's lazy settings object on every call cost a few percent of a
# single-hash call (sampled with py-spy).
_header_cache: dict[tuple[bool, str], list[tuple[str, str]]] = {}


@receiver(setting_changed)
def _settings_changed(**_: Any) -> None:
    """A setting changed (override_settings, tests): build the headers anew."""
    _header_cache.clear()


def _headers(secure: bool, language: str) -> list[tuple[str, str]]:
    """What Django's middleware adds to an API answer (registry/settings.py's MIDDLEWARE)."""
    headers = _header_cache.get((secure, language))
    if headers is None:
        headers = _headers_built(secure, language)
        if len(_header_cache) > 64:  # Languages are few; a bound all the same.
            _header_cache.clear()
        _header_cache[(secure, language)] = headers
    return headers


def _headers_built(secure: bool, language: str) -> list[tuple[str, str]]:
    headers = [("Vary", "Accept-Language"), ("Content-Language", language)]
    headers.extend(_csp())
    if settings.X_FRAME_OPTIONS:
        headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))
    headers.append(("Permissions-Policy", PERMISSIONS_POLICY))
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append(("Referrer-Policy", policy))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers


def _csp() -> list[tuple[str, str]]:
    """The Content-Security-Policy headers for the settings in force (built with the rest of
    the headers, once: ``_headers``)."""
    from csp.constants import HEADER, HEADER_REPORT_ONLY
    from csp.utils import build_policy

    headers = []
    policy = build_policy()
    if policy:
        headers.append((HEADER, policy))
    policy = build_policy(report_only=True)
    if policy:
        headers.append((HEADER_REPORT_ONLY, policy))
    return headers
