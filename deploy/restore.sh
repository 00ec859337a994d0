#!/usr/bin/env bash
# Restore the registry's database from a backup, then replay the withdrawal journal:
# deploy/restore.sh DUMP [JOURNAL...]
#
# Run it with the web, worker and beat services stopped, against the database in DATABASE_URL
# (an empty one, or the damaged one: what it holds is dropped first). Then every withdrawal in
# WITHDRAWAL_JOURNAL (or in each JOURNAL given: one per web machine) is applied again through the
# withdrawal service (manage.py withdrawals_replay), so that no withdrawal made after the backup
# is undone. Start the services
# only once this has succeeded. PYTHON names the registry's Python (default: .venv/bin/python
# in the checkout this script belongs to).
set -euo pipefail

die() { echo "restore: $*" >&2; exit 1; }

[[ $# -ge 1 ]] || die "usage: deploy/restore.sh DUMP [JOURNAL...]"
dump=$1
shift
journals=("$@")
[[ -f $dump ]] || die "no dump at $dump"
[[ -n ${DATABASE_URL:-} ]] || die "DATABASE_URL is not set"
if ((${#journals[@]} == 0)); then
    [[ -n ${WITHDRAWAL_JOURNAL:-} ]] \
        || die "WITHDRAWAL_JOURNAL is not set: without it a restore would undo withdrawals"
    journals=("$WITHDRAWAL_JOURNAL")
fi
for journal in "${journals[@]}"; do
    [[ -f $journal ]] || die "no withdrawal journal at $journal"
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}

pg_restore --clean --if-exists --no-owner --exit-on-error --dbname="$DATABASE_URL" "$dump" \
    || die "pg_restore failed"
echo "restore: restored $dump"
(cd "$root" && "$python" manage.py withdrawals_replay "${journals[@]}") \
    || die "replaying the withdrawal journal failed: do not start the services"
echo "restore: done; start the services"
