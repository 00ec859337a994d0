"""The partner API's JSON parser: DRF's, reading through registry.jsonsafe's bounded loader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from api.errors import ApiError
from registry.jsonsafe import JsonMalformed, JsonTooDeep, json_loads_bounded


class BoundedJSONParser(JSONParser):
    """JSON bodies nested deeper than registry.jsonsafe.MAX_DEPTH answer 400 ``json_too_deep``.

    Anything else that is not JSON answers 400 ``malformed_json``, as with DRF's parser.
    """

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return json_loads_bounded(stream.read())
        except JsonTooDeep as error:
            raise ApiError(
                400,
                "json_too_deep",
                f"The JSON body nests deeper than {error.max_depth} levels.",
                {"max_depth": error.max_depth},
            ) from None
        except JsonMalformed as error:
            raise ParseError(f"JSON parse error - {error}") from None
