#!/usr/bin/env bash
# Smoke test of the production configuration on this machine: deploy/smoke.sh
#
# Starts the web server (python -m registry.serve), a Celery worker and Celery beat against the
# local PostgreSQL and Redis, in a database it creates and drops, then: registers a photo, matches it
# with a partner key, withdraws it (it no longer matches), and checks that a local receiver got
# the signed image.added and image.withdrawn webhooks. Stops everything it started, whatever
# happens, and exits non-zero with a message naming the step that failed.
#
# Environment (all optional):
#   SMOKE_POSTGRES  PostgreSQL server URL, no database  (postgres://postgres@127.0.0.1:5432)
#   SMOKE_DATABASE  database to create and drop          (rempart_smoke)
#   SMOKE_REDIS     Redis URL with its own db number     (redis://127.0.0.1:6379/12)
#   SMOKE_PORT      the web server's port; the receiver takes the next one (8741)
#   PYTHON          the registry's Python                (.venv/bin/python)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
bin=$(dirname "$python")
postgres=${SMOKE_POSTGRES:-postgres://postgres@127.0.0.1:5432}
database=${SMOKE_DATABASE:-rempart_smoke}
port=${SMOKE_PORT:-8741}
receiver_port=$((port + 1))
url="http://127.0.0.1:$port"
work=$(mktemp -d)
pids=()
database_created=0

step() { echo "smoke: $*"; }
fail() {
    echo "smoke: FAILED: $*" >&2
    for log in "$work"/*.log; do
        [[ -f $log ]] && { echo "--- last lines of $(basename "$log")" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

cleanup() {
    local status=$?
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((database_created)); then
        psql "$postgres/postgres" -qX -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 \
            || echo "smoke: could not drop database $database" >&2
    fi
    rm -rf "$work"
    if ((status == 0)); then step "stopped everything it started"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The production configuration: DEBUG off, every secret set, PostgreSQL, Redis as cache and
# broker. Plain http on loopback (no nginx here), and webhooks allowed to a loopback receiver.
random() { "$python" -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'; }
export DEBUG=0 SECURE_SSL_REDIRECT=0 ALLOWED_HOSTS=127.0.0.1 SITE_ROOT="$url"
# A server never runs with Django's async-safety check turned off (a test runner may have it).
unset DJANGO_ALLOW_ASYNC_UNSAFE
export SECRET_KEY="$(random)$(random)" KEY_PEPPER="$(random)" RECEIPT_SIGNING_KEY="$(random)"
export DATABASE_URL="$postgres/$database" REDIS_URL=${SMOKE_REDIS:-redis://127.0.0.1:6379/12}
export CELERY_BROKER_URL=$REDIS_URL
export WITHDRAWAL_JOURNAL="$work/withdrawals.jsonl" STATIC_ROOT="$work/static"
export WEBHOOK_ALLOW_PRIVATE_TARGETS=1 WEBHOOK_SWEEP_SECONDS=1 WEBHOOK_TIMEOUT_SECONDS=2
export WEB_BIND="127.0.0.1:$port" WEB_CONCURRENCY=2 WEB_THREADS=2 LOG_LEVEL=INFO
webhook_secret="whsec_$(random)"

manage() { "$python" manage.py "$@"; }
export PGOPTIONS="-c client_min_messages=warning"

# 1. The database.
psql "$postgres/postgres" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" \
    -c "CREATE DATABASE \"$database\"" >/dev/null || fail "could not create database $database"
database_created=1
manage migrate --no-input -v 0 >"$work/migrate.log" 2>&1 || fail "migrate"
manage check --deploy >"$work/check.log" 2>&1 || fail "check --deploy"
step "database $database created and migrated"

# 2. A partner, its key, and its webhook endpoint.
key=$(manage partner_create smoke --scopes match,sync | tail -n 1)
[[ $key == rmp_* ]] || fail "partner_create printed no key"
WEBHOOK_URL="http://127.0.0.1:$receiver_port/rempart" WEBHOOK_SECRET=$webhook_secret \
    manage shell --no-imports -c '
import os
from registry.models import Partner
Partner.objects.filter(name="smoke").update(
    webhook_url=os.environ["WEBHOOK_URL"], webhook_secret=os.environ["WEBHOOK_SECRET"]
)' || fail "setting the webhook endpoint"
step "partner created with a key and a webhook endpoint"

# 3. The partner's endpoint: checks each Standard Webhooks signature, records the events.
cat >"$work/receiver.py" <<'PY'
import base64, hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

key = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))
events = sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        webhook_id, timestamp = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [part.split(",", 1)[1] for part in self.headers["webhook-signature"].split()]
        valid = any(hmac.compare_digest(expected, one) for one in offered)
        valid = valid and abs(time.time() - int(timestamp)) < 300
        with open(events, "a") as out:
            out.write(json.dumps({"valid": valid, "type": json.loads(body)["type"]}) + "\n")
        self.send_response(204 if valid else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
WEBHOOK_SECRET=$webhook_secret "$python" "$work/receiver.py" "$receiver_port" "$work/events.jsonl" \
    >"$work/receiver.log" 2>&1 &
pids+=($!)

# 4. The three services, as the systemd units run them.
"$python" -m registry.serve >"$work/web.log" 2>&1 &
pids+=($!)
web=$!
"$bin/celery" -A registry worker --loglevel INFO --concurrency 2 >"$work/worker.log" 2>&1 &
pids+=($!)
"$bin/celery" -A registry beat --loglevel INFO --schedule "$work/celerybeat-schedule" \
    >"$work/beat.log" 2>&1 &
pids+=($!)

for ((i = 0; i < 300; i++)); do
    curl -fsS "$url/ready" >/dev/null 2>&1 && break
    kill -0 "$web" 2>/dev/null || fail "the web server exited"
    sleep 0.2
done
curl -fsS "$url/ready" >/dev/null || fail "the web server did not become ready"
for ((i = 0; i < 300; i++)); do
    grep -q " ready." "$work/worker.log" 2>/dev/null && break
    sleep 0.2
done
grep -q " ready." "$work/worker.log" || fail "the Celery worker did not start"
step "web server, Celery worker and Celery beat started"

# 5. A registration, as a helpline would make it with the rempart client.
"$python" -c '
import sys
import numpy as np
from PIL import Image
for seed, path in enumerate(sys.argv[1:]):  # Two unrelated photo-sized images.
    noise = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((640, 480), Image.Resampling.BICUBIC).save(path, quality=90)
' "$work/photo.jpg" "$work/other.jpg" || fail "generating the photos"
"$bin/rempart" --url "$url" submit "$work/photo.jpg" --scope intimate --attest >"$work/submit.out" \
    || fail "registration"
reference=$(sed -n 's/^case reference: *//p' "$work/submit.out")
secret=$(sed -n 's/^case secret: *//p' "$work/submit.out")
[[ -n $reference && -n $secret ]] || fail "registration printed no reference or secret"
step "registration: case $reference"

# 6. A match: the registered photo matches (within the index's poll interval), another does not.
status=0
for ((i = 0; i < 50; i++)); do
    status=0
    REMPART_KEY=$key "$bin/rempart" --url "$url" match "$work/photo.jpg" >"$work/match.out" || status=$?
    ((status == 1)) && break
    sleep 0.1
done
((status == 1)) || fail "match: the registered photo did not match (exit $status)"
status=0
REMPART_KEY=$key "$bin/rempart" --url "$url" match "$work/other.jpg" >/dev/null || status=$?
((status == 0)) || fail "match: an unrelated photo matched (exit $status)"
step "match: the registered photo matches, an unrelated one does not"

# 7. A withdrawal: from the very next call, the photo no longer matches.
curl -fsS -X POST "$url/api/v1/cases/withdraw" -H 'Content-Type: application/json' \
    -d "{\"case_reference\": \"$reference\", \"case_secret\": \"$secret\"}" >"$work/withdraw.out" \
    || fail "withdrawal refused"
grep -q '"withdrawn"' "$work/withdraw.out" || fail "withdrawal: the case is not withdrawn"
status=0
REMPART_KEY=$key "$bin/rempart" --url "$url" match "$work/photo.jpg" >/dev/null || status=$?
((status == 0)) || fail "withdrawal: the withdrawn photo still matches (exit $status)"
grep -q "\"case\":\"$reference\"" "$WITHDRAWAL_JOURNAL" || fail "withdrawal: not in the journal"
step "withdrawal: the photo no longer matches, and the withdrawal journal holds it"

# 8. The webhooks: image.added and image.withdrawn, signed, delivered by the worker.
for ((i = 0; i < 300; i++)); do
    grep -q '"image.withdrawn"' "$work/events.jsonl" 2>/dev/null && break
    sleep 0.1
done
grep -q '"type": "image.added"' "$work/events.jsonl" 2>/dev/null \
    || fail "webhook: no image.added event arrived"
grep -q '"type": "image.withdrawn"' "$work/events.jsonl" || fail "webhook: no image.withdrawn event"
! grep -q '"valid": false' "$work/events.jsonl" || fail "webhook: a signature did not verify"
step "webhook: image.added and image.withdrawn delivered with valid signatures"
step "all steps passed"
