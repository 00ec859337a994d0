"""The writes of a case's videos: their rows and frame hashes, inside the case services.

A video is a RegisteredImage of kind ``video``; its frames are ImageHash rows of variant
``frame`` (registry.models.cases), in the same match index as the photos' hashes. These helpers
run inside registry.services.cases' transactions, which append the changes and the audit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from registry.models import Case, ConsentRecord, ImageHash, RegisteredImage
from registry.services import allowlist
from registry.videos import FRAME_QUALITY_MIN, VideoHashes, refused


def videos_check(videos: Sequence[VideoHashes]) -> list[VideoHashes]:
    """The videos without their frames near an allow-listed hash (a blank card, a common meme):
    such a frame would match what everyone posts. A video left with no frame is refused
    (``video_quality_too_low``, nothing stored)."""
    flat = [frame.value for video in videos for frame in video.frames]
    listed = set(allowlist.allow_listed_positions(flat))
    if not listed:
        return list(videos)
    kept: list[VideoHashes] = []
    position = 0
    for index, video in enumerate(videos):
        frames = []
        for frame in video.frames:
            if position not in listed:
                frames.append(frame)
            position += 1
        if not frames:
            raise refused(400, "video_quality_too_low", video=index, min_quality=FRAME_QUALITY_MIN)
        kept.append(dataclasses.replace(video, frames=tuple(frames)))
    return kept


def video_frames_check(*, case: Case | None, videos: Sequence[VideoHashes]) -> None:
    """Refuse (413 ``too_many_frames``) past REGISTRY_MAX_VIDEO_FRAMES_PER_CASE frames in the
    case, those it holds counted."""
    held = 0
    if case is not None:
        held = ImageHash.objects.filter(image__case=case, variant=ImageHash.FRAME).count()
    limit = settings.REGISTRY_MAX_VIDEO_FRAMES_PER_CASE
    if held + sum(len(video.frames) for video in videos) > limit:
        raise refused(413, "too_many_frames", max_frames_per_case=limit)


def videos_new(*, case: Case, videos: Sequence[VideoHashes]) -> list[VideoHashes]:
    """The videos not yet in the case (by the MD5 of their file), each once."""
    held = {
        bytes(value)
        for value in RegisteredImage.objects.filter(
            case=case, kind=RegisteredImage.Kind.VIDEO
        ).values_list("md5", flat=True)
        if value is not None
    }
    fresh: list[VideoHashes] = []
    for video in videos:
        assert video.md5 is not None
        if video.md5 not in held:
            held.add(video.md5)
            fresh.append(video)
    return fresh


def videos_insert(
    *, case: Case, consent: ConsentRecord, videos: Sequence[VideoHashes]
) -> list[int]:
    """Insert the videos and their frames; return the new rows' ids, in order."""
    if not videos:
        return []
    now = timezone.now()
    created = RegisteredImage.objects.bulk_create(
        [
            RegisteredImage(
                case=case,
                kind=RegisteredImage.Kind.VIDEO,
                md5=video.md5,
                duration=video.duration,
                scope=consent.scope,
                minor_depicted=consent.minor_depicted,
                quality=max(frame.quality for frame in video.frames),
                created_at=now,
            )
            for video in videos
        ]
    )
    ImageHash.objects.bulk_create(
        [
            ImageHash(
                image=row,
                variant=ImageHash.FRAME,
                value=frame.value,
                frame_at=frame.timestamp,
                frame_quality=frame.quality,
            )
            for row, video in zip(created, videos, strict=True)
            for frame in video.frames
        ]
    )
    return [row.pk for row in created]


def case_item_counts(case: Case) -> dict[str, int]:
    """How many photos and videos the case holds."""
    counts = case.images.aggregate(
        photos=Count("pk", filter=Q(kind=RegisteredImage.Kind.PHOTO)),
        videos=Count("pk", filter=Q(kind=RegisteredImage.Kind.VIDEO)),
    )
    return {"photos": counts["photos"], "videos": counts["videos"]}
