"""Videos on the partner's side: the vPDQ frame list of a file, as a device sends it.

A video is hashed by Meta's reference vPDQ hasher (PyPI's ``vpdq``, the ``video`` extra:
``pip install 'rempart[video]'``), one PDQ hash a second of video. Its features are read as the
registry reads a frame list (``registry.videos.parse_frame``: a flat frame's degenerate hash is
kept and never compared), then pruned by ``registry.videos.prune_frames`` (a frame within 2 bits
of the last one kept is left out), so the client sends the list the browser's hashing worker
sends for the same video (docs/videos.md). Nothing of the file leaves the machine but that list,
its MD5 and its length.

The length: the container's duration as ``ffprobe`` reads it (what a browser's ``<video>``
reports as its duration), else OpenCV's frame count over its frame rate when ``cv2`` is
installed, else the last frame's timestamp plus one second (a frame a second: the last hash
stands for the last second). The last timestamp alone is not the length: a 9.9-second video's
last hash is at 9 s.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from registry.videos import (
    FRAME_QUALITY_MIN,
    MAX_FRAMES_PER_VIDEO,
    MAX_VIDEO_SECONDS,
    SECONDS_PER_FRAME,
    Frame,
    matchable_frames,
    parse_frame,
    prune_frames,
)

INSTALL_HINT = "pip install 'rempart[video]'"
FFPROBE_TIMEOUT = 60  # seconds

# What vpdq gives for a frame: its hash in hex, its quality and its time in seconds.
Feature = tuple[str, int, float]


class VideoUnavailable(Exception):  # noqa: N818 - reads as what the caller is told
    """The video hasher is not installed, or the file is not a video it can read."""


def load_vpdq() -> ModuleType:
    """The reference hasher, imported only when a video is hashed: the base install (photos)
    does without it, and it needs FFmpeg's libraries."""
    try:
        return importlib.import_module("vpdq")
    except ImportError as error:
        raise VideoUnavailable(
            f"hashing a video needs Meta's vPDQ hasher ({error}): {INSTALL_HINT}"
        ) from None


def vpdq_features(path: str | Path) -> list[Feature]:
    """vPDQ's features of the file, one a second (``seconds_per_hash=1``), in its order."""
    vpdq = load_vpdq()
    try:
        features: Sequence[Any] = vpdq.computeHash(str(path), seconds_per_hash=SECONDS_PER_FRAME)
    except Exception as error:  # the binding raises a bare Exception ("Fail to create VPDQ hash")
        raise VideoUnavailable(f"{path}: not a video vPDQ can read ({error})") from None
    return [(str(item.hex), int(item.quality), float(item.timestamp)) for item in features]


def file_md5(path: str | Path) -> str:
    """The MD5 of the file's bytes, in hex: the one video signal StopNCII's partners know."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _ffprobe_duration(path: str | Path) -> float | None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program, the path as one argument
            [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
            capture_output=True,
            text=True,
            timeout=FFPROBE_TIMEOUT,
            check=False,
        )
        value = float(json.loads(done.stdout)["format"]["duration"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _opencv_duration(path: str | Path) -> float | None:
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError:
        return None
    capture = cv2.VideoCapture(str(path))
    try:
        frames = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        rate = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    if not (math.isfinite(frames) and math.isfinite(rate)) or frames <= 0 or rate <= 0:
        return None
    return frames / rate


def video_duration(path: str | Path, frames: Sequence[Frame]) -> tuple[float, str]:
    """The video's length in seconds and where it was read (see the module's docstring)."""
    for source, read in (("ffprobe", _ffprobe_duration), ("opencv", _opencv_duration)):
        value = read(path)
        if value is not None:
            return value, source
    last = max((frame.timestamp for frame in frames), default=0.0)
    return last + SECONDS_PER_FRAME, "last frame + 1 s"


@dataclass(frozen=True, slots=True)
class VideoHashes:
    """One video file as the client sends it: its pruned frame list (the hashes in hex as vPDQ
    gave them), the MD5 of the file and its length in seconds."""

    path: str
    frames: tuple[Frame, ...]
    hexes: tuple[str, ...]
    md5: str
    duration: float
    duration_source: str

    @property
    def frame_list(self) -> list[dict[str, object]]:
        """The frames as the API takes them, ``[{"hash", "quality", "timestamp"}, ...]``."""
        return [
            {"hash": value, "quality": frame.quality, "timestamp": frame.timestamp}
            for value, frame in zip(self.hexes, self.frames, strict=True)
        ]

    @property
    def unmatchable_reason(self) -> str | None:
        """Why the registry could not use this video, or None if it can."""
        if not matchable_frames(self.frames):
            return f"no frame of quality {FRAME_QUALITY_MIN} or more (a flat or blank video)"
        if len(self.frames) > MAX_FRAMES_PER_VIDEO:
            return (
                f"{len(self.frames)} frames, more than the {MAX_FRAMES_PER_VIDEO} of a "
                f"{MAX_VIDEO_SECONDS // 60}-minute video the registry takes"
            )
        return None

    @property
    def too_long_reason(self) -> str | None:
        """Why the registry would refuse to register this video for its length, or None."""
        if self.duration > MAX_VIDEO_SECONDS:
            return (
                f"{self.duration:.0f} s long, over the {MAX_VIDEO_SECONDS // 60} minutes the "
                "registry takes"
            )
        return None


Hasher = Callable[[str | Path], list[Feature]]


def hash_video(path: str | Path, *, hasher: Hasher = vpdq_features) -> VideoHashes:
    """The frame list, MD5 and length of a video file. ``hasher`` computes vPDQ's features
    (by default in this process; the command line passes one that shows its progress).

    Raises VideoUnavailable when vpdq is missing or cannot read the file, OSError when the file
    cannot be read."""
    features = hasher(path)
    if not features:
        raise VideoUnavailable(f"{path}: vPDQ found no frame in it (not a video?)")
    if max(timestamp for _, _, timestamp in features) > MAX_VIDEO_SECONDS + SECONDS_PER_FRAME:
        raise VideoUnavailable(
            f"{path}: longer than {MAX_VIDEO_SECONDS // 60} minutes, the longest video the "
            "registry takes"
        )
    parsed = [
        parse_frame({"hash": value, "quality": quality, "timestamp": timestamp}, frame=index)
        for index, (value, quality, timestamp) in enumerate(features)
    ]
    # prune_frames keeps some of the frames it is given, the same objects: each keeps its text.
    text_of = {id(frame): value for frame, (value, _, _) in zip(parsed, features, strict=True)}
    kept = prune_frames(parsed)
    duration, source = video_duration(path, parsed)
    return VideoHashes(
        path=str(path),
        frames=tuple(kept),
        hexes=tuple(text_of[id(frame)] for frame in kept),
        md5=file_md5(path),
        duration=duration,
        duration_source=source,
    )
