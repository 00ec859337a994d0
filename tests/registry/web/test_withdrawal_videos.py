"""The withdrawal receipt of a case holding videos: each video is named by its file's MD5, as
on the registration's receipt, so a case with a video still gets its withdrawal receipt."""

from __future__ import annotations

import pytest

from registry import receipts
from registry.pdq import fingerprint
from registry.services.cases import case_withdraw
from registry.web.withdrawal import withdrawal_receipt
from tests.factories import register_case

pytestmark = pytest.mark.django_db


def test_a_case_with_a_video_gets_its_withdrawal_receipt_naming_the_video_by_its_md5() -> None:
    registered = register_case(images=1, videos=1)
    case_withdraw(case=registered.case)
    registered.case.refresh_from_db()

    receipt = withdrawal_receipt(case=registered.case)

    assert receipt is not None
    assert receipt.event == str(receipts.ReceiptEvent.WITHDRAWN)
    (video,) = registered.videos
    assert video.md5 is not None
    assert receipt.fingerprints == (
        fingerprint(registered.images[0].hashes[0]),
        fingerprint(video.md5),
    )


def test_a_case_of_videos_only_gets_its_withdrawal_receipt() -> None:
    registered = register_case(images=0, videos=2)
    case_withdraw(case=registered.case)
    registered.case.refresh_from_db()

    receipt = withdrawal_receipt(case=registered.case)

    assert receipt is not None
    assert len(receipt.fingerprints) == 2
