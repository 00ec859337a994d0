"""The people's pages answer, in both languages."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_home_page_is_served() -> None:
    response = Client().get("/")
    assert response.status_code == 200
    assert b"Stop your photos" in response.content


def test_health_answers_ok() -> None:
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
