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
# The change sequence is back where it was at the backup, below the cursors partners took since:
# move it far past anything the lost database can have issued (2^32 changes), so that the
# replayed withdrawals, and everything after them, come after every cursor a partner holds.
psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --dbname="$DATABASE_URL" --command="
    SELECT setval(pg_get_serial_sequence('registry_change', 'id'),
                  (SELECT COALESCE(max(id), 0) FROM registry_change) + 4294967296)" >/dev/null \
    || die "moving the change sequence past partners' cursors failed"
(cd "$root" && "$python" manage.py withdrawals_replay "${journals[@]}") \
    || die "replaying the withdrawal journal failed: do not start the services"
echo "restore: done; start the services"
