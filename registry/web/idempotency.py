"""Idempotency-Key on the people's pages' JSON calls (registry.services.idempotency).

The register and add-photos pages send one and reuse it on a retry, so a lost answer never
creates a second case.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse

from registry.ratelimits import client_digest
from registry.services.idempotency import HEADER, idempotency_key_valid, idempotent_run
from registry.web.errors import json_error

PageView = TypeVar("PageView", bound=Callable[..., HttpResponse])


def idempotent_page_call(view: PageView) -> PageView:
    """The same for a people's page's JSON call (a plain Django view answering JsonResponse).

    The key is scoped to the client's daily digest (``web:<digest>``) and the request to its
    path and body; the stored answer, the receipt with the case secret of a registration, is
    sealed as above. A malformed key or another body under the same key is answered with the
    pages' translated error body (registry.web.errors).
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get(HEADER)
        if key is None:
            return view(request, *args, **kwargs)
        if not idempotency_key_valid(key):
            return json_error(400, "idempotency_key_invalid")

        def run() -> tuple[HttpResponse, int, Any]:
            response = view(request, *args, **kwargs)
            if not 200 <= response.status_code < 300:
                return response, response.status_code, None
            return response, response.status_code, json.loads(response.content)

        def replay(status_code: int, data: Any) -> HttpResponse:
            response = JsonResponse(data, status=status_code)
            response["Idempotent-Replayed"] = "true"
            return response

        request_digest = hashlib.sha256(request.path.encode() + b"\n" + request.body).hexdigest()
        return idempotent_run(
            scope=f"web:{client_digest(request)}",
            key=key,
            request_digest=request_digest,
            run=run,
            replay=replay,
            reused=lambda: json_error(422, "idempotency_key_reused"),
        )

    return wrapper  # type: ignore[return-value]
