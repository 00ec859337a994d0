"""The registry's JSON API as the partner client calls it: match, register. Django-free."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from registry.client.images import ImageHashes
from registry.client.videos import VideoHashes
from registry.codes import TERMS_VERSION

DEFAULT_URL = "http://127.0.0.1:8000"
# The registry's limit on one match call's hashes, views included.
MAX_HASHES_PER_CALL = 1000
# And on its videos (each of up to 1,801 frames, within the 1 MiB body).
MAX_VIDEOS_PER_CALL = 5


class RegistryError(Exception):
    """The registry refused a call: its stable error code, message and status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Client:
    """A minimal HTTP client of the registry's JSON API."""

    def __init__(self, base_url: str = DEFAULT_URL, key: str | None = None, timeout: float = 10):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("The registry URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def post(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read())["error"]
                raise RegistryError(error.code, detail["code"], detail["message"]) from None
            except (ValueError, KeyError, TypeError):
                raise RegistryError(error.code, "http_error", str(error.reason)) from None

    def match_results(
        self,
        hashes: Sequence[str],
        *,
        purpose: str = "publish",
        max_distance: int = 31,
        views: Sequence[dict[str, str]] | None = None,
    ) -> list[dict[str, Any]]:
        """One result per hash, in order: ``{"matches": [...]}``, plus an ``error`` for a hash
        the registry cannot match (``{"code", "message"}``; its ``matches`` is empty).

        ``views[i]``, when given, are the query views of the upload of ``hashes[i]``. Calls are
        split so that none carries more than MAX_HASHES_PER_CALL hashes, views included.
        """
        results: list[dict[str, Any]] = []
        batch: list[int] = []
        size = 0

        def send() -> None:
            body: dict[str, Any] = {
                "hashes": [hashes[index] for index in batch],
                "purpose": purpose,
                "max_distance": max_distance,
            }
            if views is not None:
                body["views"] = [views[index] or None for index in batch]
            results.extend(self.post("/api/v1/match", body)["results"])

        for index in range(len(hashes)):
            cost = 1 + (len(views[index]) if views is not None else 0)
            if batch and size + cost > MAX_HASHES_PER_CALL:
                send()
                batch, size = [], 0
            batch.append(index)
            size += cost
        if batch:
            send()
        return results

    def match(
        self, hashes: Sequence[str], *, purpose: str = "publish", max_distance: int = 31
    ) -> list[list[dict[str, Any]]]:
        """The matches of each hash, in order (none for a hash the registry cannot match)."""
        results = self.match_results(hashes, purpose=purpose, max_distance=max_distance)
        return [result["matches"] for result in results]

    def match_videos(
        self, videos: Sequence[VideoHashes], *, purpose: str = "publish"
    ) -> list[dict[str, Any]]:
        """One result per video, in order: ``{"matches": [...]}``. A match of ``"kind":
        "video"`` is a registered video, by the vPDQ rule, with ``query_match_percent``,
        ``registered_match_percent`` and the ``timestamp`` of the registered frame behind the
        closest pair; one of ``"kind": "photo"`` a registered photo seen in a frame of the
        upload, at ``timestamp`` (docs/videos.md).

        Calls are split so that none carries more than MAX_VIDEOS_PER_CALL videos."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(videos), MAX_VIDEOS_PER_CALL):
            batch = videos[start : start + MAX_VIDEOS_PER_CALL]
            body = {"videos": [{"frames": video.frame_list} for video in batch], "purpose": purpose}
            results.extend(self.post("/api/v1/match", body)["video_results"])
        return results

    def submit(
        self,
        images: Sequence[ImageHashes],
        *,
        scope: str,
        minor_depicted: bool = False,
        language: str = "en",
        videos: Sequence[VideoHashes] = (),
    ) -> dict[str, str]:
        """Register photos and videos as one new case; the answer holds ``case_reference`` and
        ``case_secret``."""
        body: dict[str, Any] = {
            "scope": scope,
            "attestations": {
                "depicted_or_acting_for": True,
                "rights_to_register": True,
                "minor_depicted": minor_depicted,
            },
            "terms_version": TERMS_VERSION,
            "language": language,
            "images": [
                {"hashes": list(image.hashes), "quality": image.quality, "views": dict(image.views)}
                for image in images
            ],
        }
        if videos:
            body["videos"] = [
                {"frames": video.frame_list, "md5": video.md5, "duration": video.duration}
                for video in videos
            ]
        result: dict[str, str] = self.post("/api/v1/cases", body)
        return result
