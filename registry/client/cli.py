"""The ``rempart`` command: hash photos and videos locally, match them, register them."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from PIL import Image, UnidentifiedImageError

from registry import derivatives
from registry.client.http import DEFAULT_URL, Client, RegistryError
from registry.client.images import ImageHashes, _sendable, hash_file
from registry.client.progress import hash_with_progress
from registry.client.videos import VideoHashes, VideoUnavailable, hash_video, vpdq_features
from registry.pdq import DIHEDRAL_VARIANTS, MIN_QUALITY

# Files taken for videos by their name alone (Pillow reads an MPEG header as an image);
# any other file is a photo if Pillow can open it, else a video.
VIDEO_SUFFIXES = frozenset(
    {".3gp", ".avi", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".mts",
     ".ogv", ".ts", ".webm", ".wmv"}
)  # fmt: skip


def is_video(path: str | Path) -> bool:
    """Whether the command treats the file as a video (by its suffix, else because Pillow
    cannot read it as an image)."""
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        return True
    try:
        with Image.open(path):
            return False
    except UnidentifiedImageError:
        return True


def hash_video_file(path: str | Path, stream: TextIO | None = None) -> VideoHashes:
    """A video's frame list, with a progress line on ``stream`` (stderr) when it is a
    terminal."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return hash_video(path, hasher=lambda file: hash_with_progress(file, stream))
    return hash_video(path, hasher=vpdq_features)


@dataclass(frozen=True, slots=True)
class Files:
    """The command's files, photos and videos, each hashed, in the order given."""

    paths: list[str]
    images: dict[int, ImageHashes]
    videos: dict[int, VideoHashes]

    @classmethod
    def hash(cls, paths: Sequence[str], *, views: bool = False, query: bool = False) -> Files:
        images: dict[int, ImageHashes] = {}
        videos: dict[int, VideoHashes] = {}
        for index, path in enumerate(paths):
            if is_video(path):
                videos[index] = hash_video_file(path)
            else:
                images[index] = hash_file(path, views=views, query=query)
        return cls(list(paths), images, videos)


def _command_hash(arguments: argparse.Namespace) -> int:
    files = Files.hash(arguments.images, views=True)
    for index, path in enumerate(files.paths):
        if index in files.videos:
            video = files.videos[index]
            print(
                f"{path}\tvideo, {len(video.frames)} frames, {video.duration:.2f} s "
                f"({video.duration_source}), md5 {video.md5}"
            )
            for frame, value in zip(video.frames, video.hexes, strict=True):
                print(f"  {frame.timestamp:8.2f} s  q{frame.quality:<4d}{value}")
            if video.unmatchable_reason:
                print(f"  warning: {video.unmatchable_reason}; the registry will refuse it")
            continue
        image = files.images[index]
        print(f"{image.path}\tquality {image.quality}")
        for variant, value in zip(DIHEDRAL_VARIANTS, image.hashes, strict=True):
            print(f"  {variant:<14}{value}")
        for view, value in image.views:
            print(f"  {view:<14}{value}")
        if image.quality < MIN_QUALITY:
            print(f"  warning: quality below {MIN_QUALITY}; the registry will refuse this image")
    return 0


def _match_line(path: str, match: dict[str, Any]) -> str:
    """``PATH<TAB>MATCH <scope> <status> [minor] <match_id> <kind> ...``, one match."""
    minor = " minor" if match["minor_depicted"] else ""
    kind = str(match.get("kind", derivatives.WHOLE))
    if kind == derivatives.REGIONS and "regions" in match:
        kind += f" {match['regions']['matched']}/{match['regions']['of']}"
    if "query_match_percent" in match:
        kind += (
            f" {match['query_match_percent']:.1f}% of the upload, "
            f"{match['registered_match_percent']:.1f}% of the registered video"
        )
    if match.get("timestamp") is not None:
        separator = "," if "query_match_percent" in match else ""
        kind += f"{separator} at {match['timestamp']:.0f} s"
    return f"{path}\tMATCH {match['scope']} {match['status']}{minor} {match['match_id']} {kind}"


def _lines(path: str, answer: dict[str, Any] | None, reason: str | None) -> list[str]:
    """The lines of one file: a line per match, ``no match``, or why it is not matchable."""
    if answer is None or "matches" not in answer or "error" in answer:
        error = (answer or {}).get("error", {}).get("message")
        return [f"{path}\tnot matchable: {reason or error}"]
    return [_match_line(path, match) for match in answer["matches"]] or [f"{path}\tno match"]


def _command_match(arguments: argparse.Namespace) -> int:
    files = Files.hash(arguments.images, query=True)
    images = [i for i, image in files.images.items() if image.unmatchable_reason is None]
    videos = [i for i, video in files.videos.items() if video.unmatchable_reason is None]
    client = Client(arguments.url, key=arguments.key)
    answers: dict[int, dict[str, Any]] = {}
    if images:
        results = client.match_results(
            [files.images[index].original for index in images],
            purpose=arguments.purpose,
            views=[_sendable(files.images[index].query) for index in images],
        )
        answers.update(zip(images, results, strict=True))
    if videos:
        results = client.match_videos(
            [files.videos[index] for index in videos], purpose=arguments.purpose
        )
        answers.update(zip(videos, results, strict=True))
    lines: list[str] = []
    for index, path in enumerate(files.paths):
        hashed = files.videos.get(index) or files.images[index]
        lines += _lines(path, answers.get(index), hashed.unmatchable_reason)
    print("\n".join(lines))
    return 1 if any("\tMATCH " in line for line in lines) else 0


def _command_submit(arguments: argparse.Namespace) -> int:
    if not arguments.attest:
        print(
            "Refusing to submit: pass --attest to confirm that the person depicted (or someone "
            "acting for them) consents, and that the photos and videos are theirs to register.",
            file=sys.stderr,
        )
        return 2
    files = Files.hash(arguments.images, views=True)
    low = [image.path for image in files.images.values() if image.quality < MIN_QUALITY]
    low += [
        f"{video.path} ({reason})"
        for video in files.videos.values()
        if (reason := video.unmatchable_reason or video.too_long_reason)
    ]
    if low:
        print(f"Cannot be protected: {', '.join(low)}", file=sys.stderr)
        return 2
    client = Client(arguments.url)
    created = client.submit(
        list(files.images.values()),
        videos=list(files.videos.values()),
        scope=arguments.scope,
        minor_depicted=arguments.minor,
        language=arguments.language,
    )
    print(f"case reference: {created['case_reference']}")
    print(f"case secret:    {created['case_secret']}")
    print("Keep both: the secret is shown this once and is needed to check or withdraw.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rempart",
        description="Hash photos and videos locally and check them against the registry.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("REMPART_URL", DEFAULT_URL),
        help="The registry's address (default: $REMPART_URL or %(default)s).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    files_help = "photos and videos (a video is hashed by vPDQ, one frame a second)"

    hash_command = commands.add_parser(
        "hash", help="Print the PDQ hashes of photos and the vPDQ frames of videos."
    )
    hash_command.add_argument("images", nargs="+", metavar="FILE", help=files_help)
    hash_command.set_defaults(run=_command_hash)

    match_command = commands.add_parser(
        "match",
        help=(
            "Match photos and videos (exit status 1 when any matches); flat or blank files "
            "are reported as not matchable and skipped."
        ),
    )
    match_command.add_argument("images", nargs="+", metavar="FILE", help=files_help)
    match_command.add_argument(
        "--key", default=os.environ.get("REMPART_KEY"), help="API key (default: $REMPART_KEY)."
    )
    match_command.add_argument("--purpose", choices=["publish", "ai_edit"], default="publish")
    match_command.set_defaults(run=_command_match)

    submit_command = commands.add_parser(
        "submit",
        help="Register photos and videos as a new case (for helplines working with a person).",
    )
    submit_command.add_argument("images", nargs="+", metavar="FILE", help=files_help)
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
    except VideoUnavailable as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except (OSError, urllib.error.URLError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return status
