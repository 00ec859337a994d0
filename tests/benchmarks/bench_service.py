"""Benchmark of the service around the index, on a real PostgreSQL: start-up and request costs.

Run: ``.venv/bin/python -m tests.benchmarks.bench_service [--hashes 10000000]`` (``make
bench-db``). It creates (or empties) its own database, ``rempart_bench`` on the server of
``DATABASE_URL`` (default: the local PostgreSQL), fills it with registered images whose hashes
are shaped like real PDQ hashes (8 per image), and measures, printing a Markdown table:

* loading every matchable hash from PostgreSQL into a process's index (binary COPY, parsing,
  building), the start-up cost of every web process without a checkpoint;
* writing the index's checkpoint (``manage.py index_checkpoint``), its size, and starting from
  it: mapping it, verifying it and applying the changes made since (registrations and
  withdrawals through the services), with the file out of the page cache and in it;
* a partner key check (one indexed read and one HMAC);
* ``registry.selectors.hash_match`` for one hash: a registered photo's near-duplicate (the
  index finds it and the database confirms it) and an unrelated hash (no database work).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

BENCH_DATABASE = "rempart_bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _prepare_environment(database: str) -> None:
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rempart")
    base, _, _ = server.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{database}"')
    os.environ["DATABASE_URL"] = f"{base}/{database}"
    # Measured as in production: DEBUG off (Django then keeps no record of queries).
    os.environ["DEBUG"] = "0"
    for name in ("SECRET_KEY", "KEY_PEPPER", "RECEIPT_SIGNING_KEY"):
        os.environ.setdefault(name, "YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMDA=")
    os.environ.setdefault("INDEX_AUTOSTART", "0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


VARIANTS = ("original", "rot90", "rot180", "rot270", "flip_tb", "flip_lr", "transpose",
            "antitranspose")  # fmt: skip


def _other_columns(cursor: psycopg.Cursor[Any], table: str, written: Sequence[str]) -> list[str]:
    rows = cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [f'"{row[0]}"' for row in rows if row[0] not in written]


def images_bulk_copy(
    raw: psycopg.Connection[Any], *, case_id: int, hashes: npt.NDArray[np.uint8]
) -> None:
    """Write ``len(hashes) // 8`` more images of the case ``case_id``, 8 hashes each, fast.

    The case's first image (opened through the services) is the template: every column other
    than ids, variant and value is copied from it and from its first hash, so the new images are
    in the same state (active, matchable) whatever columns the models gain. They appear in no
    change: a process's index holds them once it loads from the database. Far faster than the
    services (no secret digest, audit event or change per image): the hashes go through one
    COPY. One transaction; sequences and statistics are updated. Shared with the load test
    (tests/load/).
    """
    images = len(hashes) // 8
    with raw.transaction(), raw.cursor() as cursor:
        template = cursor.execute(
            "SELECT i.id, min(h.id) FROM registry_registeredimage i "
            "JOIN registry_imagehash h ON h.image_id = i.id WHERE i.case_id = %s "
            "GROUP BY i.id ORDER BY i.id LIMIT 1",
            [case_id],
        ).fetchone()
        first_image = cursor.execute("SELECT max(id) + 1 FROM registry_registeredimage").fetchone()
        first_hash = cursor.execute("SELECT max(id) + 1 FROM registry_imagehash").fetchone()
        assert template
        assert first_image
        assert first_hash
        image_base, hash_base = int(first_image[0]), int(first_hash[0])
        image_columns = ", ".join(_other_columns(cursor, "registry_registeredimage", ["id"]))
        cursor.execute(
            f"INSERT INTO registry_registeredimage (id, {image_columns}) "  # noqa: S608
            f"SELECT g, {image_columns} FROM registry_registeredimage, "
            "generate_series(%s::bigint, %s::bigint) g WHERE id = %s",
            [image_base, image_base + images - 1, template[0]],
        )
        cursor.execute(
            "CREATE TEMPORARY TABLE load_hashes (id bigint, image_id bigint, variant text, "
            "value bytea) ON COMMIT DROP"
        )
        chunk = 500_000
        with cursor.copy("COPY load_hashes (id, image_id, variant, value) FROM STDIN") as copy:
            for start in range(0, images * 8, chunk):
                rows = io.StringIO()
                for row in range(start, min(start + chunk, images * 8)):
                    rows.write(
                        f"{hash_base + row}\t{image_base + row // 8}\t{VARIANTS[row % 8]}\t"
                        f"\\\\x{hashes[row].tobytes().hex()}\n"
                    )
                copy.write(rows.getvalue())
        written = ["id", "image_id", "variant", "value"]
        others = _other_columns(cursor, "registry_imagehash", written)
        selected = ", ".join([f"l.{column}" for column in written] + [f"t.{c}" for c in others])
        cursor.execute(
            f"INSERT INTO registry_imagehash ({', '.join(written + others)}) "  # noqa: S608
            f"SELECT {selected} FROM load_hashes l, registry_imagehash t WHERE t.id = %s",
            [template[1]],
        )
        for table in ("registry_registeredimage", "registry_imagehash"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608, E501
            )
        cursor.execute("ANALYZE registry_registeredimage")
        cursor.execute("ANALYZE registry_imagehash")


def _checkpoint_rows(
    loaded: Any, hashes: npt.NDArray[np.uint8], *, changes: int
) -> list[tuple[str, str]]:
    """Write the checkpoint of ``loaded`` (a Matcher loaded from the database), register
    ``changes`` photos and withdraw a tenth of them, then start from the checkpoint."""
    from django.conf import settings

    from registry.matching.checkpoint import change_anchor, checkpoint_write, database_fingerprint
    from registry.matching.follower import Matcher, index_checkpoint_write
    from registry.services.cases import case_withdraw
    from tests.factories import register_case

    rows: list[tuple[str, str]] = []
    directory = tempfile.mkdtemp(prefix="rempart-bench-")
    path = os.path.join(directory, "index.checkpoint")
    segment = loaded._index.main_segment()
    status = loaded.status()
    started = time.monotonic()
    position = status.applied_change
    size = checkpoint_write(
        path, segment, position=position, anchor=change_anchor(position),
        database=database_fingerprint(),
    )  # fmt: skip
    rows.append(
        (
            "checkpoint: writing the file (checksums, write, fsync)",
            f"{time.monotonic() - started:.1f} s",
        )
    )
    rows.append(
        (
            "checkpoint: file size",
            f"{size / 2**30:.2f} GiB ({size / len(segment):.1f} bytes a hash)",
        )
    )
    del segment
    log("writing the checkpoint as manage.py index_checkpoint does")
    written = index_checkpoint_write(path)
    rows.append(
        ("checkpoint: manage.py index_checkpoint (read, build, write)", f"{written.seconds:.1f} s")
    )

    log(f"registering {changes:,} photos and withdrawing {changes // 10:,} after the checkpoint")
    registered = [register_case(images=1) for _ in range(changes)]
    for case in registered[: changes // 10]:
        case_withdraw(case=case.case)
    settings.INDEX_CHECKPOINT_PATH = path
    applied = changes + changes // 10
    for label, cold in (
        ("out of the page cache", True),
        ("in the page cache (another process)", False),
    ):
        if cold:
            # Evict the file's pages (clean since the fsync): as after a reboot, for this file only.
            descriptor = os.open(path, os.O_RDONLY)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(descriptor)
        matcher = Matcher()
        started = time.monotonic()
        matcher.load()
        seconds = time.monotonic() - started
        rows.append(
            (
                f"start-up from the checkpoint, {applied:,} changes since, file {label}",
                f"{seconds:.1f} s",
            )
        )
        withdrawn = registered[0].images[0].hashes
        assert not any(len(m.ids) for m in matcher.search(withdrawn, max_distance=0))
        assert len(matcher.search([registered[-1].images[0].hashes[0]], max_distance=0)[0].ids)
        assert len(matcher.search([hashes[12345].tobytes()], max_distance=0)[0].ids)
    settings.INDEX_CHECKPOINT_PATH = ""
    os.unlink(path)
    os.rmdir(directory)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hashes", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--database", default=BENCH_DATABASE, help="emptied, then filled")
    parser.add_argument(
        "--changes", type=int, default=1000, help="photos registered after the checkpoint"
    )
    arguments = parser.parse_args()
    _prepare_environment(arguments.database)

    import django  # After the environment names the bench database.

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from registry.matching import follower as matcher_module
    from registry.matching.follower import Matcher
    from registry.selectors.matches import hash_match
    from registry.selectors.partners import partner_key_authenticate
    from registry.services.cases import Attestations, case_create
    from registry.services.partners import partner_create, partner_key_issue
    from tests.benchmarks.datasets import PdqShape, make_dataset
    from tests.factories import near_duplicate, random_dihedral

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE registry_imagehash, registry_change, registry_registeredimage, "
            "registry_consentrecord, registry_auditevent, registry_case, api_matchcall, "
            "api_partnerkey, api_partner CASCADE"
        )
    images = arguments.hashes // 8
    log(f"generating {images * 8:,} PDQ-shaped hashes")
    hashes = make_dataset("pdq", images * 8, queries=0, seed=7).hashes
    case = case_create(
        scope="intimate",
        attestations=Attestations(
            depicted_or_acting_for=True, rights_to_register=True, minor_depicted=False
        ),
        terms_version="bench",
        language="en",
        images=[random_dihedral()],
    ).case
    log(f"writing {images:,} images and {images * 8:,} hashes with COPY")
    started = time.monotonic()
    raw = connection.connection
    assert isinstance(raw, psycopg.Connection)
    images_bulk_copy(raw, case_id=case.pk, hashes=hashes)
    log(f"written in {time.monotonic() - started:.0f} s")

    rows_out: list[tuple[str, str]] = []
    matcher = Matcher()
    started = time.monotonic()
    ids, values = matcher_module.load_matchable()
    read_seconds = time.monotonic() - started
    del ids, values
    started = time.monotonic()
    matcher.load()
    load_seconds = time.monotonic() - started
    status = matcher.status()
    matcher_module._matcher = matcher  # the selector uses this process's matcher
    rows_out.append(("hashes in the index", f"{status.size:,}"))
    rows_out.append(("read from PostgreSQL (binary COPY, parsed)", f"{read_seconds:.1f} s"))
    rows_out.append(("load at start-up (read and build)", f"{load_seconds:.1f} s"))
    rows_out.append(("index memory", f"{status.nbytes / status.size:.1f} bytes a hash"))
    rows_out.extend(_checkpoint_rows(matcher, hashes, changes=arguments.changes))

    partner = partner_create(name="bench")
    raw_key = partner_key_issue(partner=partner, scopes=["match"]).raw
    samples = []
    for _ in range(arguments.calls):
        began = time.perf_counter()
        assert partner_key_authenticate(raw_key) is not None
        samples.append((time.perf_counter() - began) * 1000)
    p50, p99 = _percentiles(samples)
    rows_out.append(("partner key check, p50 / p99", f"{p50:.3f} / {p99:.3f} ms"))

    rng = np.random.default_rng(3)
    unrelated = PdqShape.create().sample(arguments.calls, rng)
    for label, make_query in (
        ("hash_match, a near-duplicate of a registered photo", "near"),
        ("hash_match, an unrelated hash", "unrelated"),
    ):
        samples = []
        for _ in range(arguments.calls):
            if make_query == "near":
                stored = hashes[int(rng.integers(0, images * 8))].tobytes()
                query = near_duplicate(stored, int(rng.integers(0, 20)))
            else:
                query = unrelated[len(samples)].tobytes()
            began = time.perf_counter()
            found = hash_match([query])
            samples.append((time.perf_counter() - began) * 1000)
            if make_query == "near":
                assert found[0], "a near-duplicate was not matched"
        p50, p99 = _percentiles(samples)
        rows_out.append((f"{label}, p50 / p99", f"{p50:.3f} / {p99:.3f} ms"))

    version = connection.cursor().connection.info.server_version
    print(f"PostgreSQL {version // 10000}.{version % 100}, {os.cpu_count()} cores")
    print()
    print("| measure | value |")
    print("| --- | --- |")
    for name, value in rows_out:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
