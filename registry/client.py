"""The partner client: hash images locally with pdqhash, call the registry. Django-free.

Installed as the ``rempart`` command::

    rempart hash photo.jpg
    rempart match photo.jpg other.png --key rmp_... [--purpose ai_edit]
    rempart submit photo.jpg --scope intimate --attest [--minor] [--language fr]

Nothing but hashes leaves the machine: images are decoded and hashed here, by the same rules as
the registry's pages (registry.pixels: EXIF orientation, transparency over white, 16-bit to its
high byte), and only their PDQ hashes and quality are sent.

A registration carries, beside the 8 dihedral hashes, the photo's derived views (crops, cuts and
masked views: registry.derivatives.registered_views), the same bits as the registry's pages
compute. A match sends each upload's own hash with its query views (borders and caption bands
trimmed, a mirror, small rotations undone, edge cuts, masked regions:
registry.derivatives.query_views). A partner matching locally from the sync feed decides with
registry.derivatives.decide, the registry's own rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
from PIL import Image

from registry import derivatives
from registry.codes import TERMS_VERSION
from registry.pdq import DIHEDRAL_VARIANTS, MIN_QUALITY, InvalidHash, check_bits
from registry.pixels import pdq_pixels

DEFAULT_URL = "http://127.0.0.1:8000"
# The registry's limit on one match call's hashes, views included.
MAX_HASHES_PER_CALL = 1000


def _sendable(views: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The query views a registry accepts: those whose hash a real image can have."""
    sendable = {}
    for name, value in views:
        try:
            check_bits(bytes.fromhex(value))
        except InvalidHash:
            continue
        sendable[name] = value
    return sendable


@dataclass(frozen=True, slots=True)
class ImageHashes:
    """The PDQ hashes of one image file: its 8 dihedral variants, original first."""

    path: str
    hashes: tuple[str, ...]
    quality: int
    # The derived views registered with the photo (name, hex), when computed.
    views: tuple[tuple[str, str], ...] = ()
    # The views a match call sends beside the original (name, hex), when computed.
    query: tuple[tuple[str, str], ...] = ()

    @property
    def original(self) -> str:
        return self.hashes[0]

    @property
    def unmatchable_reason(self) -> str | None:
        """Why this image cannot be matched (a flat, blank or tiny image), or None if it can.

        The registry refuses such a hash (registry.pdq), and a flat image's hash (quality 0) is
        rounding noise. An image of low but non-zero quality is still matched: a blurred copy of
        a registered photo can be.
        """
        if self.quality == 0:
            return "a flat or tiny image has no PDQ hash worth matching (quality 0)"
        try:
            check_bits(bytes.fromhex(self.original))
        except InvalidHash as error:
            return error.message
        return None


def _hex(vector: np.ndarray[Any, Any]) -> str:
    return np.packbits(vector.astype(np.uint8)).tobytes().hex()


def hash_file(path: str | Path, *, views: bool = False, query: bool = False) -> ImageHashes:
    """Decode an image as the registry's pages do (registry.pixels) and compute its dihedral
    PDQ hashes; with ``views``, the derived views a registration carries; with ``query``, the
    views a match call sends."""
    with Image.open(path) as image:
        pixels = pdq_pixels(image)
    vectors, quality = pdqhash.compute_dihedral(pixels)
    registered = (
        tuple((item.view, item.value.hex()) for item in derivatives.registered_views(pixels))
        if views
        else ()
    )
    asked = (
        tuple(
            (item.view, item.value.hex())
            for item in derivatives.query_views(pixels)
            if item.view != derivatives.WHOLE
        )
        if query
        else ()
    )
    return ImageHashes(
        path=str(path),
        hashes=tuple(_hex(vector) for vector in vectors),
        quality=int(quality),
        views=registered,
        query=asked,
    )


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

    def submit(
        self,
        images: Sequence[ImageHashes],
        *,
        scope: str,
        minor_depicted: bool = False,
        language: str = "en",
    ) -> dict[str, str]:
        body = {
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
        result: dict[str, str] = self.post("/api/v1/cases", body)
        return result


def _hash_all(
    paths: Sequence[str], *, views: bool = False, query: bool = False
) -> list[ImageHashes]:
    return [hash_file(path, views=views, query=query) for path in paths]


def _command_hash(arguments: argparse.Namespace) -> int:
    for image in _hash_all(arguments.images, views=True):
        print(f"{image.path}\tquality {image.quality}")
        for variant, value in zip(DIHEDRAL_VARIANTS, image.hashes, strict=True):
            print(f"  {variant:<14}{value}")
        for view, value in image.views:
            print(f"  {view:<14}{value}")
        if image.quality < MIN_QUALITY:
            print(f"  warning: quality below {MIN_QUALITY}; the registry will refuse this image")
    return 0


def _command_match(arguments: argparse.Namespace) -> int:
    images = _hash_all(arguments.images, query=True)
    matchable = [index for index, image in enumerate(images) if image.unmatchable_reason is None]
    answers: dict[int, dict[str, Any]] = {}
    if matchable:
        client = Client(arguments.url, key=arguments.key)
        results = client.match_results(
            [images[index].original for index in matchable],
            purpose=arguments.purpose,
            views=[_sendable(images[index].query) for index in matchable],
        )
        answers = dict(zip(matchable, results, strict=True))
    matched = False
    for index, image in enumerate(images):
        answer = answers.get(index, {})
        if "matches" not in answer or "error" in answer:
            reason = image.unmatchable_reason or answer.get("error", {}).get("message")
            print(f"{image.path}\tnot matchable: {reason}")
            continue
        matches = answer["matches"]
        if not matches:
            print(f"{image.path}\tno match")
            continue
        matched = True
        for match in matches:
            minor = " minor" if match["minor_depicted"] else ""
            kind = match.get("kind", derivatives.WHOLE)
            if kind == derivatives.REGIONS and "regions" in match:
                kind += f" {match['regions']['matched']}/{match['regions']['of']}"
            print(
                f"{image.path}\tMATCH {match['scope']} {match['status']}{minor} "
                f"{match['match_id']} {kind}"
            )
    return 1 if matched else 0


def _command_submit(arguments: argparse.Namespace) -> int:
    if not arguments.attest:
        print(
            "Refusing to submit: pass --attest to confirm that the person depicted (or someone "
            "acting for them) consents, and that the photos are theirs to register.",
            file=sys.stderr,
        )
        return 2
    images = _hash_all(arguments.images, views=True)
    low = [image.path for image in images if image.quality < MIN_QUALITY]
    if low:
        print(f"Too plain or too small to protect: {', '.join(low)}", file=sys.stderr)
        return 2
    client = Client(arguments.url)
    created = client.submit(
        images, scope=arguments.scope, minor_depicted=arguments.minor, language=arguments.language
    )
    print(f"case reference: {created['case_reference']}")
    print(f"case secret:    {created['case_secret']}")
    print("Keep both: the secret is shown this once and is needed to check or withdraw.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rempart", description="Hash images locally and check them against the registry."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("REMPART_URL", DEFAULT_URL),
        help="The registry's address (default: $REMPART_URL or %(default)s).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    hash_command = commands.add_parser("hash", help="Print the PDQ hashes of images.")
    hash_command.add_argument("images", nargs="+")
    hash_command.set_defaults(run=_command_hash)

    match_command = commands.add_parser(
        "match",
        help=(
            "Match images (exit status 1 when any matches); flat or blank images are reported "
            "as not matchable and skipped."
        ),
    )
    match_command.add_argument("images", nargs="+")
    match_command.add_argument(
        "--key", default=os.environ.get("REMPART_KEY"), help="API key (default: $REMPART_KEY)."
    )
    match_command.add_argument("--purpose", choices=["publish", "ai_edit"], default="publish")
    match_command.set_defaults(run=_command_match)

    submit_command = commands.add_parser(
        "submit", help="Register images as a new case (for helplines working with a person)."
    )
    submit_command.add_argument("images", nargs="+")
    submit_command.add_argument("--scope", choices=["intimate", "no_sexual_edit"], required=True)
    submit_command.add_argument("--minor", action="store_true", help="The person was under 18.")
    submit_command.add_argument("--language", choices=["en", "fr"], default="en")
    submit_command.add_argument(
        "--attest", action="store_true", help="Confirm consent and the right to register."
    )
    submit_command.set_defaults(run=_command_submit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "match" and not arguments.key:
        print("match needs an API key: --key or $REMPART_KEY", file=sys.stderr)
        return 2
    try:
        status: int = arguments.run(arguments)
    except RegistryError as error:
        print(f"The registry refused: {error}", file=sys.stderr)
        return 2
    except (OSError, urllib.error.URLError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
