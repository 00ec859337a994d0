"""Videos on the StopNCII-compatible routes, driven by Meta's real client (``threatexchange``):
a video is one ``VideoMD5`` record (its file's MD5, never its frames), withdrawn as StopNCII
withdraws, and feedback on that MD5 lands on the video."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from threatexchange.exchanges.clients.stopncii.api import (
    StopNCIICaseStatus,
    StopNCIICSPFeedbackValue,
    StopNCIISignalType,
)
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal

from registry.match_ids import match_id_encode
from registry.models import Disclosure, Feedback, RegisteredImage
from registry.services.cases import case_withdraw
from tests.api.stopncii.test_stopncii import _client, _exchange, _hashes, _headers
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, register_case

PDQ = PdqSignal.get_name()
MD5 = VideoMD5Signal.get_name()


def _md5(registered: RegisteredCase) -> str:
    (video,) = registered.videos
    assert video.md5 is not None
    return video.md5.hex()


def _frames(registered: RegisteredCase) -> set[str]:
    return {frame.value.hex() for video in registered.videos for frame in video.frames}


def _video_id(registered: RegisteredCase, partner_id: int) -> str:
    video = RegisteredImage.objects.get(case=registered.case, kind=RegisteredImage.Kind.VIDEO)
    return match_id_encode(image_id=video.pk, partner_id=partner_id)


@pytest.mark.django_db(transaction=True)
def test_the_real_client_fetches_a_video_as_its_md5_sees_it_withdrawn_and_reports_on_it(
    live_server: Any, partner_a: PartnerPersona
) -> None:
    person = register_case(images=1, videos=1)
    client = _client(live_server.url, partner_a.raw_key)
    exchange = _exchange(client)

    # 1. Through Hasher-Matcher-Actioner's delta layer: the photo's 8 PDQ hashes and the
    # video's MD5, as a VideoMD5 signal; never a frame.
    state: dict[tuple[str, str], Any] = {}
    checkpoints: list[int] = []
    for delta in exchange.fetch_iter([PdqSignal, VideoMD5Signal], None):
        exchange.naive_fetch_merge(state, delta.updates)
        checkpoints.append(delta.checkpoint.update_time)
    assert set(state) == {(PDQ, value) for value in _hashes(person)} | {(MD5, _md5(person))}
    assert not _frames(person) & {value for _, value in state}
    assert VideoMD5Signal.validate_signal_str(_md5(person)) == _md5(person)
    assert Disclosure.objects.filter(partner_id=partner_a.partner.pk).count() == 2

    # 2. The record itself: VideoMD5, Active, the video named by its opaque id.
    records = {
        record.hashValue: record
        for page in client.fetch_hashes_iter()
        for record in page.hashRecords
    }
    assert len(records) == 9
    video_record = records[_md5(person)]
    assert video_record.signalType is StopNCIISignalType.VideoMD5
    assert video_record.hashStatus is StopNCIICaseStatus.Active
    video_id = _video_id(person, partner_a.partner.pk)
    assert video_record.caseNumbers == {video_id: StopNCIICaseStatus.Active}
    assert {records[value].signalType for value in _hashes(person)} == {StopNCIISignalType.ImagePDQ}

    # 3. Feedback on the MD5, as the client sends it (no signal type), lands on the video.
    client.submit_feedback(
        StopNCIISignalType.VideoMD5, _md5(person), StopNCIICSPFeedbackValue.Blocked, {"ncii"}
    )
    (feedback,) = Feedback.objects.all()
    assert feedback.partner_id == partner_a.partner.pk
    assert feedback.image.kind == RegisteredImage.Kind.VIDEO
    assert feedback.image.case_id == person.case.pk
    assert feedback.verdict == "blocked"
    assert feedback.tags == ["ncii"]

    # 4. The withdrawal: the MD5 comes back Withdrawn, as the photo's hashes do.
    after = checkpoints[-1]
    case_withdraw(case=person.case)
    later = {
        record.hashValue: record
        for page in client.fetch_hashes_iter(start_timestamp=after)
        for record in page.hashRecords
    }
    assert set(later) == _hashes(person) | {_md5(person)}
    withdrawn = later[_md5(person)]
    assert withdrawn.signalType is StopNCIISignalType.VideoMD5
    assert withdrawn.hashStatus is StopNCIICaseStatus.Withdrawn
    assert withdrawn.caseNumbers == {video_id: StopNCIICaseStatus.Withdrawn}
    layered: dict[tuple[str, str], Any] = {}
    for delta in exchange.fetch_iter([PdqSignal, VideoMD5Signal], None):
        layered.update(delta.updates)
        checkpoints.append(delta.checkpoint.update_time)
    assert (MD5, _md5(person)) in layered
    assert checkpoints == sorted(checkpoints)


@pytest.mark.django_db
def test_feedback_on_a_video_md5_needs_the_md5_to_have_been_served(
    partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    person = register_case(images=0, videos=1)
    Client().get("/v1/FetchHashes", headers=_headers(partner_a.raw_key, "f"))

    def feedback(persona: PartnerPersona, value: str) -> Any:
        body = {"count": 1, "hashFeedbacks": [{"hashValue": value, "feedbackValue": "Blocked"}]}
        return (
            Client()
            .post(
                "/v1/SubmitFeedback",
                json.dumps(body),
                content_type="application/json",
                headers=_headers(persona.raw_key, "f"),
            )
            .json()
        )

    # Partner B never received the MD5; an MD5 nobody registered names nothing.
    assert feedback(partner_b, _md5(person)) == {"count": 0, "recorded": 0, "ignored": 1}
    assert feedback(partner_a, "ab" * 16) == {"count": 0, "recorded": 0, "ignored": 1}
    # Upper case is the same MD5.
    assert feedback(partner_a, _md5(person).upper()) == {"count": 1, "recorded": 1, "ignored": 0}
    (row,) = Feedback.objects.all()
    assert row.image.kind == RegisteredImage.Kind.VIDEO


@pytest.mark.django_db
def test_a_video_registered_twice_is_one_record_active_while_either_matches(
    partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    first = register_case(images=0, videos=1)
    second = register_case(images=0, videos=1)
    RegisteredImage.objects.filter(case=second.case).update(md5=bytes.fromhex(_md5(first)))
    headers = _headers(partner_a.raw_key, "f")
    Client().get("/v1/FetchHashes", headers=headers)
    case_withdraw(case=first.case)

    body = Client().get("/v1/FetchHashes", headers=headers).json()

    (record,) = body["hashRecords"]
    assert record["signalType"] == "VideoMD5"
    assert record["hashValue"] == _md5(first)
    assert record["hashStatus"] == "Active"
    assert sorted(record["caseNumbers"].values()) == ["Active", "Withdrawn"]
    # A withdrawn video's MD5 never reaches a partner that never had it.
    case_withdraw(case=second.case)
    b_body = Client().get("/v1/FetchHashes", headers=_headers(partner_b.raw_key, "f")).json()
    assert b_body["hashRecords"] == []
    assert not Disclosure.objects.filter(partner_id=partner_b.partner.pk).exists()


@pytest.mark.django_db
def test_a_videos_md5_and_a_photos_hash_are_never_confused(partner_a: PartnerPersona) -> None:
    photo = register_case(images=1)
    video = register_case(images=0, videos=1)
    md5 = bytes.fromhex(_md5(video))
    body = Client().get("/v1/FetchHashes", headers=_headers(partner_a.raw_key, "f")).json()

    kinds = {record["hashValue"]: record["signalType"] for record in body["hashRecords"]}
    assert kinds == {
        **dict.fromkeys(_hashes(photo), "ImagePDQ"),
        md5.hex(): "VideoMD5",
    }
    assert all(len(value) == 64 for value, kind in kinds.items() if kind == "ImagePDQ")
    assert not _frames(video) & set(kinds)
