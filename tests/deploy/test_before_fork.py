"""What the web server's main process prepares before it forks (registry.serve.before_fork).

Every compiled pass (numba) a match call uses must be loaded by then: one loaded by a worker's
first call holds that call up (about 70 ms a worker with numba's cache on disk, seconds
without), after every start and every reload. Numba compiles one version of a pass for each
kind of array it is given (a read-only array is a kind of its own), so the test makes a real
match call after ``before_fork``, in a fresh interpreter, and checks that no pass had to be
compiled or loaded for it. An index started from the checkpoint maps it read-only, and its
first merge builds a writable segment: the merge and the call after it must load nothing
either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from registry.matching.follower import index_checkpoint_write
from tests.benchmarks.bench_service import images_bulk_copy
from tests.conftest import PartnerPersona
from tests.factories import register_case
from tests.processes import service_env, suite_database_url

pytestmark = pytest.mark.slow

# In a fresh interpreter: before_fork, then a single-hash match call through the deployed
# application (the lean route), counting each compiled pass's versions before and after.
_SCRIPT = """
import io, json, os, sys

import registry.serve as serve
from numba.core.registry import CPUDispatcher
from registry.matching import kernels, probing, scan
from registry.matching.follower import get_matcher


def compiled():
    return {
        f"{module.__name__}.{name}": len(function.overloads)
        for module in (kernels, probing, scan)
        for name, function in vars(module).items()
        if isinstance(function, CPUDispatcher)
    }


def call():
    body = json.dumps({"purpose": "publish", "hashes": [os.environ["QUERY"]]}).encode()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/match", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": "Bearer " + os.environ["RAW_KEY"], "REMOTE_ADDR": "127.0.0.1",
    }
    answered = []
    content = b"".join(serve.application(environ, lambda status, *_: answered.append(status)))
    return {"status": answered[0], "answer": json.loads(content)}


serve.before_fork()
before = compiled()
first = call()
after = compiled()
# A checkpoint's segment is mapped read-only; one built in this process is writable.
mapped = not get_matcher()._index._snapshot.main.words.flags.writeable
# What the follower's thread does when the delta is due (the index's own merge).
get_matcher()._index.merge()
merged = call()
print("RESULT", json.dumps(
    {"first": first, "merged": merged, "before": before, "after": after, "end": compiled(),
     "mapped": mapped}
))
"""


@pytest.mark.parametrize("start", ["database", "checkpoint"])
def test_every_compiled_pass_of_a_match_call_is_loaded_before_the_fork(
    transactional_db: None, partner_a: PartnerPersona, tmp_path: Path, start: str
) -> None:
    case = register_case(images=1)
    query = case.images[0].hashes[0].hex()
    # Enough hashes for the index to search by its tables rather than scan them.
    hashes = np.random.default_rng(15).integers(0, 256, size=(65_536, 32), dtype=np.uint8)
    with psycopg.connect(suite_database_url()) as raw:
        images_bulk_copy(raw, case_id=case.case.pk, hashes=hashes)
    checkpoint = ""
    if start == "checkpoint":
        checkpoint = str(tmp_path / "index.checkpoint")
        assert index_checkpoint_write(checkpoint).hashes == 65_536 + 8
    env = service_env(
        DATABASE_URL=suite_database_url(),
        INDEX_AUTOSTART="0",
        INDEX_CHECKPOINT_PATH=checkpoint,
        LOG_LEVEL="WARNING",
        QUERY=query,
        RAW_KEY=partner_a.raw_key,
    )
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))

    for answered in (result["first"], result["merged"]):
        assert answered["status"].startswith("200"), result
        # Searched, confirmed, watched.
        assert len(answered["answer"]["results"][0]["matches"]) == 1, result
    assert result["mapped"] == (start == "checkpoint")
    before = result["before"]
    # The index's search and the probing watch were loaded, and the call needed nothing more;
    # nor did the merge, nor the call that searched the segment it built.
    assert before["registry.matching.kernels.probe_search"] >= 1, json.dumps(before)
    assert before["registry.matching.probing._push_one"] >= 1, json.dumps(before)
    assert before["registry.matching.kernels.index_chunk"] >= 1, json.dumps(before)
    assert result["after"] == before
    assert result["end"] == before
