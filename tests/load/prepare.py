"""Fill the load test's database: registered hashes, a partner key and the queries to send.

Run by tests/load/harness.py in its own process (``python -m tests.load.prepare``), with
``DATABASE_URL`` naming the load test's own, empty database. It migrates, opens one case
through the services, writes ``--hashes`` more hashes with COPY (the benchmark's loader,
tests/benchmarks/bench_service.py), creates the partner ``load`` with a match key, writes the
query file for the wrk scripts, and prints the key, as JSON, on its last line.

``--data`` names the hashes: ``real`` (the default) takes the first ``--hashes`` of the
benchmark's pool of real PDQ hashes of real photographs and video frames
(tests/benchmarks/real_hashes.py, built once and cached), what the registry stores; ``pdq`` draws
the synthetic PDQ-shaped ones (tests/benchmarks/datasets.py), whose skewed bits fill the index's
buckets far beyond real hashes: the harsh case.

The queries are what a platform sends: most are unrelated photos (for real hashes, hashes of the
photos the pool holds out), a share (``--near-fraction``) are near-duplicates of registered
photos (a re-encoded or resized upload: up to 20 bits flipped), which the database confirms.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tests.benchmarks import real_hashes
from tests.benchmarks.datasets import PdqShape

# A partner's budget is an operator setting; the load partner is a large platform.
LOAD_PARTNER_HASHES_PER_MINUTE = 1_000_000_000
DATA = ("real", "pdq")


def hashes_and_unrelated(
    data: str,
    count: int,
    unrelated: int,
    rng: np.random.Generator,
    *,
    real: real_hashes.Pool | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """``count`` hashes to register and ``unrelated`` hashes of other photos, of one kind;
    ``real`` is the pool of real hashes (the default pool, built or read, if None)."""
    if data == "pdq":
        shape = PdqShape.create()
        return shape.sample(count, rng), shape.sample(unrelated, rng)
    if real is None:
        real = real_hashes.pool()
    if len(real) < count:
        raise SystemExit(f"the real pool holds {len(real):,} hashes, not {count:,}")
    others = real.held_out[rng.integers(0, real.held_out.shape[0], size=unrelated)]
    return np.ascontiguousarray(real.hashes[:count]), others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hashes", type=int, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--query-count", type=int, default=20_000)
    parser.add_argument("--near-fraction", type=float, default=0.1)
    parser.add_argument("--data", choices=DATA, default="real")
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    os.environ["INDEX_AUTOSTART"] = "0"

    import django  # After the environment names the load database.

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    from registry.models import Partner
    from registry.services.cases import Attestations, case_create
    from registry.services.partners import partner_create, partner_key_issue
    from tests.benchmarks.bench_service import images_bulk_copy
    from tests.benchmarks.datasets import flip_bits
    from tests.factories import random_dihedral

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(8)
    near = int(arguments.query_count * arguments.near_fraction)
    hashes, unrelated = hashes_and_unrelated(
        arguments.data, arguments.hashes, arguments.query_count - near, rng
    )
    case = case_create(
        scope="intimate",
        attestations=Attestations(
            depicted_or_acting_for=True, rights_to_register=True, minor_depicted=False
        ),
        terms_version="load",
        language="en",
        images=[random_dihedral()],
    ).case
    raw = connection.connection
    assert isinstance(raw, psycopg.Connection)
    images_bulk_copy(raw, case_id=case.pk, hashes=hashes)

    partner = partner_create(name="load")
    Partner.objects.filter(pk=partner.pk).update(
        match_hashes_per_minute=LOAD_PARTNER_HASHES_PER_MINUTE
    )
    key = partner_key_issue(partner=partner, scopes=["match"]).raw

    sources = rng.integers(0, len(hashes), size=near)
    queries = np.concatenate(
        [
            flip_bits(hashes[sources], rng.integers(0, 21, size=near), rng, keep_weight=True),
            unrelated,
        ]
    )
    queries = queries[rng.permutation(len(queries))]
    arguments.queries.write_text("".join(f"{row.tobytes().hex()}\n" for row in queries))
    print(json.dumps({"key": key, "hashes": len(hashes) + 8}))


if __name__ == "__main__":
    main()
