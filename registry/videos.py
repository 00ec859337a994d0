"""Videos as the registry accepts them: vPDQ frame lists, their parsing and the match rule.

A video is known only by its vPDQ hash, computed on the person's or the partner's device: one
PDQ hash a second of video, each with the frame's PDQ quality and its timestamp in seconds, plus
the MD5 of the file (the only video signal StopNCII's partners know). Pure Python with no Django
import, like registry.pdq, so that the client, the benchmarks and the service share the rule.

The rule is the vPDQ convention as Meta's threatexchange applies it (threatexchange 1.2.17,
``threatexchange/extensions/vpdq/vpdq_util.py`` and ``vpdq_index.py``): frames of quality
below 50 are left out on both sides, exact duplicate hashes count once, a frame matches within
31 bits, and a query video matches a registered one when at least 80% of the query's frames
match some registered frame and at least 0% of the registered frames are matched (the
registered share is reported, not required, so that a clip cut from a registered video still
matches).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from registry.exceptions import RequestRefused, TooManyImages
from registry.pdq import MATCH_DISTANCE, HashError, InvalidHash, parse_hash
from registry.pdq import distance as pdq_distance

# threatexchange's VPDQ_QUALITY_THRESHOLD, VPDQ_DISTANCE_THRESHOLD,
# VPDQ_QUERY_MATCH_THRESHOLD_PERCENT and VPDQ_INDEX_MATCH_THRESHOLD_PERCENT.
FRAME_QUALITY_MIN = 50
FRAME_MATCH_DISTANCE = MATCH_DISTANCE
QUERY_MATCH_PERCENT = 80.0
REGISTERED_MATCH_PERCENT = 0.0
# One frame a second, as vPDQ's reference hasher takes them by default.
SECONDS_PER_FRAME = 1.0
# A device leaves out a frame within this many bits of the last frame it kept (vPDQ's optional
# pruning, with its README's example distance): a still section costs one frame, not one a second.
PRUNE_DISTANCE = 2
# The longest video accepted, in seconds, and so the most frames one video may carry.
MAX_VIDEO_SECONDS = 30 * 60
MAX_FRAMES_PER_VIDEO = int(MAX_VIDEO_SECONDS / SECONDS_PER_FRAME) + 1

_MD5 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One vPDQ feature: a frame's 32-byte PDQ hash, its quality and its time in seconds."""

    value: bytes
    quality: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class VideoHashes:
    """A video as registered: its frames worth matching (quality 50 or more, each hash once, in
    time order), the MD5 of the file, and its length in seconds."""

    frames: tuple[Frame, ...]
    md5: bytes | None
    duration: float


# The partner API's messages (the people's pages have their own, in their language).
MESSAGES: dict[str, str] = {
    "videos_invalid": "videos is a list of videos, each an object of frames, md5 and duration.",
    "video_invalid": (
        "A video is an object of frames, md5 (32 hexadecimal digits) and duration (seconds)."
    ),
    "video_too_long": f"A video lasts at most {MAX_VIDEO_SECONDS // 60} minutes.",
    "video_frames_required": "A video needs its frame list (vPDQ: one frame a second).",
    "video_too_many_frames": f"A video has at most {MAX_FRAMES_PER_VIDEO} frames.",
    "video_frame_invalid": (
        "A frame is an object of hash (64 hexadecimal digits), quality (0 to 100) and "
        "timestamp (seconds)."
    ),
    "video_quality_too_low": (
        f"No frame of this video reaches quality {FRAME_QUALITY_MIN}: nothing in it could be "
        "matched."
    ),
    "too_many_frames": "The videos of one case hold too many frames together.",
}


def refused(status: int, code: str, **details: object) -> RequestRefused:
    """The refusal of a video, with its code, message and location."""
    return RequestRefused(status, code, MESSAGES[code], details=dict(details) or None)


def _refused(code: str, **details: object) -> RequestRefused:
    return refused(400, code, **details)


def parse_frame(item: object, *, video: int | None = None, frame: int) -> Frame:
    """One frame, ``{"hash": 64 hex digits, "quality": 0..100, "timestamp": seconds}``.

    Raises RequestRefused (``video_frame_invalid``), located at the video and the frame.
    """
    where: dict[str, object] = {"frame": frame}
    if video is not None:
        where["video"] = video
    if not isinstance(item, Mapping):
        raise _refused("video_frame_invalid", **where)
    quality = item.get("quality")
    timestamp = item.get("timestamp")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise _refused("video_frame_invalid", **where)
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
        or not 0 <= timestamp <= MAX_VIDEO_SECONDS + SECONDS_PER_FRAME
    ):
        raise _refused("video_frame_invalid", **where)
    try:
        value = parse_hash(item.get("hash"))
    except InvalidHash as error:
        if error.code == HashError.MALFORMED:
            raise _refused("video_frame_invalid", **where) from None
        # A flat frame (a fade to black, a title card) has a degenerate hash: it stays in the
        # list, as vPDQ keeps it, and is never compared (matchable_frames).
        return Frame(value=b"", quality=quality, timestamp=float(timestamp))
    return Frame(value=value, quality=quality, timestamp=float(timestamp))


def parse_frames(items: object, *, video: int | None = None, limit: int) -> list[Frame]:
    """A frame list of at most ``limit`` frames (refused with ``video_too_many_frames``). Each
    frame is checked first: a malformed one is a 400 whatever the length."""
    where = {} if video is None else {"video": video}
    if not isinstance(items, list) or not items:
        raise _refused("video_frames_required", **where)
    frames = [parse_frame(item, video=video, frame=index) for index, item in enumerate(items)]
    if len(frames) > limit:
        raise refused(413, "video_too_many_frames", **where, max_frames=limit)
    return frames


def matchable_frames(frames: Iterable[Frame]) -> list[Frame]:
    """The frames vPDQ compares: quality 50 or more, each hash once (its first time)."""
    seen: set[bytes] = set()
    kept: list[Frame] = []
    for frame in frames:
        if frame.quality >= FRAME_QUALITY_MIN and frame.value and frame.value not in seen:
            seen.add(frame.value)
            kept.append(frame)
    return kept


def prune_frames(frames: Iterable[Frame]) -> list[Frame]:
    """The frames a device sends: each frame unless its hash is within PRUNE_DISTANCE bits of the
    last frame kept (the browser's hashing worker does the same, registry/static/registry/)."""
    kept: list[Frame] = []
    for frame in frames:
        if (
            kept
            and frame.value
            and kept[-1].value
            and pdq_distance(frame.value, kept[-1].value) <= PRUNE_DISTANCE
        ):
            continue
        kept.append(frame)
    return kept


def parse_video(item: object, *, position: int) -> VideoHashes:
    """One video to register, ``{"frames": [...], "md5": 32 hex digits, "duration": seconds}``.

    Raises RequestRefused: ``video_invalid`` (not an object, a bad MD5 or duration),
    ``video_too_long`` (past MAX_VIDEO_SECONDS), ``video_too_many_frames``,
    ``video_frame_invalid`` (a frame that is not an object of a 64-digit hash, a quality from
    0 to 100 and a timestamp), ``video_quality_too_low`` (no frame of quality 50 or more:
    nothing in it could be matched).
    """
    if not isinstance(item, Mapping):
        raise _refused("video_invalid", video=position)
    duration = item.get("duration")
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise _refused("video_invalid", video=position)
    md5_text = item.get("md5")
    if not isinstance(md5_text, str) or not _MD5.fullmatch(md5_text):
        raise _refused("video_invalid", video=position)
    parsed = parse_frames(item.get("frames"), video=position, limit=MAX_FRAMES_PER_VIDEO)
    # Refused for its length only once everything in it is well formed (a 400 comes first).
    if duration > MAX_VIDEO_SECONDS:
        raise refused(413, "video_too_long", video=position, max_seconds=MAX_VIDEO_SECONDS)
    frames = matchable_frames(parsed)
    if not frames:
        raise _refused("video_quality_too_low", video=position, min_quality=FRAME_QUALITY_MIN)
    frames.sort(key=lambda frame: frame.timestamp)
    return VideoHashes(frames=tuple(frames), md5=bytes.fromhex(md5_text), duration=float(duration))


def parse_videos(items: object, *, limit: int) -> list[VideoHashes]:
    """The videos of one registration or addition (``videos``, absent or a list of at most
    ``limit``; see parse_video). Raises TooManyImages past ``limit``."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise _refused("videos_invalid")
    videos = [parse_video(item, position=position) for position, item in enumerate(items)]
    if len(videos) > limit:
        raise TooManyImages(details={"max_images_per_request": limit})
    return videos


@dataclass(frozen=True, slots=True)
class VideoDecision:
    """How much of a query video and of a registered one matched, in percent, and whether that
    is a match under the vPDQ convention."""

    query_match_percent: float
    registered_match_percent: float
    # The registered frame behind the closest pair, and that distance.
    timestamp: float
    distance: int

    @property
    def is_match(self) -> bool:
        return (
            self.query_match_percent >= QUERY_MATCH_PERCENT
            and self.registered_match_percent >= REGISTERED_MATCH_PERCENT
        )


def video_decide_pairs(
    pairs: Iterable[tuple[int, int, int]],
    *,
    query_frames: int,
    registered_frames: int,
    registered_timestamps: Sequence[float],
) -> VideoDecision | None:
    """The decision from (query frame, registered frame, distance) pairs within 31 bits, over
    ``query_frames`` and ``registered_frames`` matchable frames. None when no pair is given."""
    query_matched: set[int] = set()
    registered_matched: set[int] = set()
    best: tuple[int, int] | None = None
    for query_index, registered_index, distance in pairs:
        if distance > FRAME_MATCH_DISTANCE:
            continue
        query_matched.add(query_index)
        registered_matched.add(registered_index)
        if best is None or distance < best[0]:
            best = (distance, registered_index)
    if best is None or not query_frames or not registered_frames:
        return None
    return VideoDecision(
        query_match_percent=100.0 * len(query_matched) / query_frames,
        registered_match_percent=100.0 * len(registered_matched) / registered_frames,
        timestamp=registered_timestamps[best[1]],
        distance=best[0],
    )


def video_decide(query: Sequence[Frame], registered: Sequence[Frame]) -> VideoDecision | None:
    """The vPDQ decision between two videos by brute force (the reference the index's answer
    is checked against, and what the limits script measures). Both sides are reduced to their
    matchable frames first."""
    query_kept = matchable_frames(query)
    registered_kept = matchable_frames(registered)
    pairs = (
        (q, r, bits)
        for q, query_frame in enumerate(query_kept)
        for r, registered_frame in enumerate(registered_kept)
        if (bits := pdq_distance(query_frame.value, registered_frame.value)) <= FRAME_MATCH_DISTANCE
    )
    return video_decide_pairs(
        pairs,
        query_frames=len(query_kept),
        registered_frames=len(registered_kept),
        registered_timestamps=[frame.timestamp for frame in registered_kept],
    )
