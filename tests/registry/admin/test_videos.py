"""Videos in the admin: the case list counts photos and videos apart, a video's page shows its
kind, truncated MD5, duration and frames in time order, and the review queue names a disputed
video by its truncated MD5, never a whole hash."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from registry.models import RegisteredImage
from tests.conftest import staff_login
from tests.factories import register_case

pytestmark = pytest.mark.django_db


def test_the_case_list_counts_photos_and_videos_apart(superuser: User) -> None:
    registered = register_case(images=1, videos=2)

    html = staff_login(Client(), superuser).get("/admin/registry/case/").content.decode()

    row = html.split(registered.case.reference, 1)[1].split("</tr>", 1)[0]
    assert 'field-image_count">1<' in row
    assert 'field-video_count">2<' in row


def test_a_videos_page_shows_its_md5_truncated_and_its_frames_in_time_order(
    superuser: User,
) -> None:
    registered = register_case(images=0, videos=1)
    (clip,) = registered.videos
    assert clip.md5 is not None
    video = RegisteredImage.objects.get(case=registered.case)

    page = staff_login(Client(), superuser).get(
        f"/admin/registry/registeredimage/{video.pk}/change/"
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert clip.md5.hex()[:8] in html
    assert clip.md5.hex() not in html
    assert not any(frame.value.hex() in html for frame in clip.frames)
    positions = [html.index(frame.value.hex()[:8]) for frame in clip.frames]
    assert positions == sorted(positions)


def test_a_disputed_video_is_named_in_the_queue_by_its_truncated_md5(
    reviewer: User, staff_client: Callable[[User], Client]
) -> None:
    registered = register_case(images=0, videos=1)
    (clip,) = registered.videos
    assert clip.md5 is not None
    RegisteredImage.objects.filter(case=registered.case).update(
        status="disputed", dispute_reason="match_spike"
    )

    html = staff_client(reviewer).get("/admin/registry/reviewqueueimage/").content.decode()

    assert f"video MD5 {clip.md5.hex()[:8]}" in html
    assert clip.md5.hex() not in html
    assert not any(frame.value.hex()[:8] in html for frame in clip.frames)
