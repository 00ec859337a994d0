"""The index's checkpoint: written atomically and privately, mapped read-only and shared, and
refused (with a warning naming no hash) whenever the database cannot follow on from it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Max
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.matching.checkpoint import (
    CheckpointError,
    change_anchor,
    checkpoint_read,
    checkpoint_write,
    database_fingerprint,
)
from registry.matching.follower import Matcher, index_checkpoint_write
from registry.matching.index import HashIndex
from registry.models import Change
from registry.services.cases import case_withdraw
from tests.benchmarks.datasets import make_dataset
from tests.factories import RegisteredCase, register_case
from tests.registry.matching.test_index import probing

ROOT = Path(__file__).resolve().parents[3]
_PREFIX = struct.Struct("<8sII32s")  # the file's fixed prefix, as docs/matching.md describes


def _header_of(path: Path) -> tuple[dict[str, object], int]:
    """The header of the file at ``path`` and where its arrays start."""
    data = path.read_bytes()
    _, _, length, _ = _PREFIX.unpack_from(data)
    header = json.loads(data[_PREFIX.size : _PREFIX.size + length])
    return header, -(-(_PREFIX.size + length) // (1 << 16)) * (1 << 16)


def _arrays_of(segment: object) -> list[np.ndarray[Any, Any]]:
    found = []
    for name in segment.__dataclass_fields__:  # type: ignore[attr-defined]
        value = getattr(segment, name)
        if isinstance(value, np.ndarray):
            found.append(value)
        elif hasattr(value, "__dataclass_fields__"):
            found.extend(_arrays_of(value))
    return found


@pytest.fixture
def built() -> HashIndex:
    """An index large enough to have chunk tables, of PDQ-shaped hashes."""
    data = make_dataset("pdq", 20_000, queries=0, seed=5)
    return HashIndex.build(
        np.arange(20_000, dtype=np.int64) * 7 + 3, data.hashes, chunk_shape=(12, 14)
    )


def test_a_checkpoint_answers_every_search_as_the_index_it_was_written_from(
    built: HashIndex, tmp_path: Path
) -> None:
    path = tmp_path / "index.checkpoint"
    segment = built.main_segment()
    assert segment.layout is not None  # the chunk tables are saved, not only the rows
    checkpoint_write(path, segment, position=12, anchor="a", database="d")

    checkpoint = checkpoint_read(path)
    restored = HashIndex.of_segment(checkpoint.segment)
    assert (checkpoint.position, checkpoint.anchor, checkpoint.database) == (12, "a", "d")
    assert checkpoint.segment.occupancy == segment.occupancy
    data = make_dataset("pdq", 20_000, queries=200, seed=5)
    for plan, distance in [("auto", 0), ("auto", 31), ("single", 31), ("double", 31), ("scan", 64)]:
        probing(built, plan)
        expected = built.search(data.queries, max_distance=distance)
        found = probing(restored, plan).search(data.queries, max_distance=distance)
        assert sum(len(m.ids) for m in found) > 0
        for mine, theirs in zip(found, expected, strict=True):
            assert mine.ids.tolist() == theirs.ids.tolist()
            assert mine.distances.tolist() == theirs.distances.tolist()


def test_the_mapped_arrays_are_read_only_and_writes_to_the_index_leave_the_file_alone(
    built: HashIndex, tmp_path: Path
) -> None:
    path = tmp_path / "index.checkpoint"
    checkpoint_write(path, built.main_segment(), position=0, anchor="", database="d")
    before = path.read_bytes()
    checkpoint = checkpoint_read(path)
    arrays = _arrays_of(checkpoint.segment)
    assert len(arrays) >= 7  # ids, words, offsets, postings and the layout's three
    for array in arrays:
        assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        checkpoint.segment.ids[0] = 1

    index = HashIndex.of_segment(checkpoint.segment, merge_threshold=100)
    stored = checkpoint.segment.ids[:50]
    index.remove(stored)
    index.add(np.arange(1, 200) * 7 + 4, np.zeros((199, 32), np.uint8))  # merges
    index.merge()
    assert len(index) == 20_000 - 50 + 199
    assert len(index.search(np.zeros((1, 32), np.uint8), max_distance=0)[0].ids) == 199
    assert path.read_bytes() == before


def test_the_checkpoint_is_written_private_and_replaces_the_old_one_whole(
    built: HashIndex, tmp_path: Path
) -> None:
    path = tmp_path / "index.checkpoint"
    stale = tmp_path / ".index.checkpoint.999999.tmp"  # a writer that died
    stale.write_bytes(b"hashes")
    previous = os.umask(0)
    try:
        checkpoint_write(path, built.main_segment(), position=1, anchor="", database="d")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        checkpoint_write(path, built.main_segment(), position=2, anchor="", database="d")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert checkpoint_read(path).position == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.checkpoint"]


def _mapping_line(pid: int | str, path: Path) -> str:
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return next(line for line in lines if line.endswith(str(path)))


def test_two_processes_share_one_copy_of_the_file_in_the_page_cache(
    built: HashIndex, tmp_path: Path
) -> None:
    path = tmp_path / "index.checkpoint"
    size = checkpoint_write(path, built.main_segment(), position=0, anchor="", database="d")
    mine = checkpoint_read(path)  # every page read once: its checksums are verified
    assert _mapping_line("self", path).split()[1] == "r--s"  # read-only, shared with the file
    child = (
        "import django, re, sys\n"
        "django.setup()\n"
        "from registry.matching.checkpoint import checkpoint_read\n"
        "checkpoint = checkpoint_read(sys.argv[1])\n"
        "smaps = open('/proc/self/smaps').read()\n"
        "entry = smaps[smaps.index(sys.argv[1]):].split('VmFlags')[0]\n"
        "perms = smaps[:smaps.index(sys.argv[1])].splitlines()[-1].split()[1]\n"
        "print(perms, re.search(r'Shared_Clean:\\s+(\\d+) kB', entry).group(1))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(path)],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "registry.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    perms, shared_kb = result.stdout.split()
    assert perms == "r--s"
    # The child's pages are the parent's: both map the same page-cache pages of the file.
    assert int(shared_kb) * 1024 >= size - (1 << 16) * 8
    assert len(mine.segment) == 20_000


# --- The matcher, on the test database ------------------------------------------------------


@pytest.fixture
def checkpoint_path(settings: SettingsWrapper, tmp_path: Path) -> Path:
    path = tmp_path / "index.checkpoint"
    settings.INDEX_CHECKPOINT_PATH = str(path)
    return path


def _found(matcher: Matcher, registered: RegisteredCase) -> bool:
    """Whether the index itself (not hash_match's confirmation) holds this case's photos."""
    queries = [value for image in registered.images for value in image.hashes]
    return any(len(matches.ids) for matches in matcher.search(queries, max_distance=0))


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def _assert_no_hash_in(text: str, *cases: RegisteredCase) -> None:
    for registered in cases:
        for image in registered.images:
            for value in image.hashes:
                assert value.hex()[:16] not in text


@pytest.mark.django_db
def test_a_matcher_maps_the_checkpoint_and_applies_what_changed_since_before_answering(
    checkpoint_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept, withdrawn = register_case(images=2), register_case(images=1)
    index_checkpoint_write(str(checkpoint_path))
    added = register_case(images=1)
    case_withdraw(case=withdrawn.case)

    caplog.set_level(logging.INFO)
    matcher = Matcher()
    matcher.load()
    assert "match index loaded from the checkpoint" in _logged(caplog)
    assert "2 changes applied since" in _logged(caplog)
    assert _found(matcher, kept)
    assert _found(matcher, added)
    assert not _found(matcher, withdrawn)  # withdrawn after the checkpoint: out on load
    status = matcher.status()
    assert status.ready
    assert status.size == 3 * 8
    assert status.applied_change == Change.objects.aggregate(head=Max("id"))["head"]
    assert _mapping_line("self", checkpoint_path).split()[1] == "r--s"
    _assert_no_hash_in(_logged(caplog), kept, withdrawn, added)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _resigned(path: Path, old: bytes, new: bytes) -> None:
    """The header edited and signed again, as another writer would have written it."""
    data = path.read_bytes()
    magic, version, length, _ = _PREFIX.unpack_from(data)
    raw = data[_PREFIX.size : _PREFIX.size + length]
    assert len(old) == len(new)  # the arrays stay where they are
    assert raw.count(old) == 1
    raw = raw.replace(old, new)
    digest = hashlib.sha256(raw).digest()
    rest = data[_PREFIX.size + length :]
    path.write_bytes(_PREFIX.pack(magic, version, length, digest) + raw + rest)


def _other_code(path: Path) -> None:
    code = str(_header_of(path)[0]["code"]).encode()
    _resigned(path, code, b"0" * len(code))


def _data_flipped(path: Path) -> None:
    _, data_start = _header_of(path)
    _flip(path, data_start)  # the first byte of the first id


def _withdrawn_long_ago(path: Path) -> None:
    Change.objects.filter(kind=Change.Kind.WITHDRAWN).update(
        created_at=timezone.now() - dt.timedelta(days=60)
    )


def _rewritten(path: Path, **header: object) -> None:
    checkpoint = checkpoint_read(path)
    given: dict[str, object] = {
        "position": checkpoint.position,
        "anchor": checkpoint.anchor,
        "database": checkpoint.database,
    }
    checkpoint_write(path, checkpoint.segment, **{**given, **header})  # type: ignore[arg-type]


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing": (lambda path: path.unlink(), "there is no such file"),
    "empty": (lambda path: path.write_bytes(b""), "it is truncated"),
    "truncated": (_truncated, "it is truncated"),
    "bad magic": (lambda path: _flip(path, 0), "it is not an index checkpoint"),
    "other version": (lambda path: _flip(path, 8), "its format version is 0"),
    "header checksum": (lambda path: _flip(path, _PREFIX.size + 5), "fails its checksum"),
    "data checksum": (_data_flipped, "its data fails its checksums"),
    "other index code": (
        _other_code,
        "written by another version of the index code",
    ),
    "other fields": (
        lambda path: _resigned(path, b'"occupancy"', b'"occupancz"'),
        "its Segment fields differ from this version's",
    ),
    "other database": (
        lambda path: _rewritten(path, database="f" * 64),
        "it was written from another database",
    ),
    "ahead of the sequence": (
        lambda path: _rewritten(path, position=10**9),
        "is ahead of the database's",
    ),
    "another change at its position": (
        lambda path: _rewritten(path, anchor="0" * 64),
        "of the database is not the one it reflects",
    ),
    "older than the hashes of withdrawn photos": (
        _withdrawn_long_ago,
        "older than the withdrawn photos' hashes are kept",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_an_unusable_checkpoint_is_refused_with_a_warning_and_the_database_loaded(
    corruption: str, checkpoint_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damage, reason = CORRUPTIONS[corruption]
    kept, withdrawn = register_case(images=1), register_case(images=1)
    index_checkpoint_write(str(checkpoint_path))
    added = register_case(images=1)
    case_withdraw(case=withdrawn.case)
    damage(checkpoint_path)

    caplog.set_level(logging.INFO)
    matcher = Matcher()
    matcher.load()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"match index checkpoint {checkpoint_path} not used: " in warnings[0]
    assert reason in warnings[0]
    assert "loading from the database instead" in warnings[0]
    assert "match index loaded from the database" in _logged(caplog)
    assert _found(matcher, kept)
    assert _found(matcher, added)
    assert not _found(matcher, withdrawn)
    _assert_no_hash_in(_logged(caplog), kept, withdrawn, added)


@pytest.mark.django_db
def test_the_fingerprint_and_anchor_name_this_database_and_its_changes() -> None:
    assert len(database_fingerprint()) == 64
    assert change_anchor(0) == ""
    register_case(images=1)
    head = Change.objects.aggregate(head=Max("id"))["head"]
    assert len(change_anchor(head)) == 64
    assert change_anchor(head) != change_anchor(head - 1)


@pytest.mark.django_db
def test_the_command_writes_the_checkpoint_and_says_what_it_holds(
    checkpoint_path: Path, settings: SettingsWrapper
) -> None:
    register_case(images=2)
    output = io.StringIO()
    call_command("index_checkpoint", stdout=output)
    head = Change.objects.aggregate(head=Max("id"))["head"]
    assert f"Checkpoint written to {checkpoint_path}: 16 hashes at change {head}" in (
        output.getvalue()
    )
    assert len(checkpoint_read(checkpoint_path).segment) == 16

    settings.INDEX_CHECKPOINT_PATH = ""
    with pytest.raises(CommandError, match="Set INDEX_CHECKPOINT_PATH or give --path"):
        call_command("index_checkpoint")
    with pytest.raises(CommandError, match="Cannot write the checkpoint"):
        call_command("index_checkpoint", "--path", str(checkpoint_path.parent / "no" / "file"))


def test_reading_something_else_raises_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "other"
    path.write_bytes(b"x" * 100)
    with pytest.raises(CheckpointError, match="not an index checkpoint"):
        checkpoint_read(path)
