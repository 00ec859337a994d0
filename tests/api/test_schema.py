"""The partner API's docs group operations by what a partner does, match first, each with a
summary."""

from __future__ import annotations

import json

import pytest
from django.test import Client

GROUPS = ["Match", "Sync", "Feedback", "Cases", "StopNCII-compatible"]


@pytest.fixture
def schema(db: None, client: Client) -> dict[str, object]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    loaded: dict[str, object] = json.loads(response.content)
    return loaded


def _operations(schema: dict[str, object]) -> dict[str, dict[str, object]]:
    paths = schema["paths"]
    assert isinstance(paths, dict)
    return {
        f"{method.upper()} {path}": operation
        for path, methods in paths.items()
        for method, operation in methods.items()
    }


def test_the_groups_are_declared_in_order_with_what_each_is_for(schema: dict[str, object]) -> None:
    tags = schema["tags"]
    assert isinstance(tags, list)
    assert [tag["name"] for tag in tags] == GROUPS
    assert all(tag["description"] for tag in tags)


def test_every_operation_is_in_one_group_and_has_a_summary(schema: dict[str, object]) -> None:
    operations = _operations(schema)
    assert len(operations) >= 11
    for name, operation in operations.items():
        assert len(operation["tags"]) == 1, name  # type: ignore[arg-type]
        assert operation["tags"][0] in GROUPS, name  # type: ignore[index]
        assert operation.get("summary"), name


def test_each_operation_sits_in_the_group_of_what_it_does(schema: dict[str, object]) -> None:
    groups = {name: op["tags"][0] for name, op in _operations(schema).items()}  # type: ignore[index]
    assert groups["POST /api/v1/match"] == "Match"
    assert groups["GET /api/v1/hashes/changes"] == "Sync"
    assert groups["POST /api/v1/withdrawals/ack"] == "Sync"
    assert groups["POST /api/v1/feedback"] == "Feedback"
    assert groups["POST /api/v1/cases"] == "Cases"
    assert groups["GET /v1/FetchHashes"] == "StopNCII-compatible"
    assert groups["POST /v1/SubmitHashes"] == "StopNCII-compatible"
