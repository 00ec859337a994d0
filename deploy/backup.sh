#!/usr/bin/env bash
# Back up the registry's PostgreSQL database: deploy/backup.sh DIRECTORY
#
# Writes DIRECTORY/rempart-<UTC time>.dump (pg_dump's custom format) and, beside it,
# rempart-<UTC time>.journal: how many lines the withdrawal journal (WITHDRAWAL_JOURNAL) held
# once the dump was taken. The journal itself is not in the dump and must not be: it is what
# deploy/restore.sh replays so that a restore never undoes a withdrawal made after the backup.
# Reads DATABASE_URL and WITHDRAWAL_JOURNAL from the environment (for example /etc/rempart/env).
set -euo pipefail

die() { echo "backup: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: deploy/backup.sh DIRECTORY"
directory=$1
[[ -n ${DATABASE_URL:-} ]] || die "DATABASE_URL is not set"
mkdir -p "$directory"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dump="$directory/rempart-$stamp.dump"

pg_dump --format=custom --file="$dump.partial" "$DATABASE_URL" || die "pg_dump failed"
mv "$dump.partial" "$dump"

# Counted after the dump: every withdrawal up to this line is in the dump or in the journal.
lines=0
if [[ -n ${WITHDRAWAL_JOURNAL:-} && -f $WITHDRAWAL_JOURNAL ]]; then
    lines=$(wc -l <"$WITHDRAWAL_JOURNAL")
fi
printf 'journal %s lines %s\n' "${WITHDRAWAL_JOURNAL:-none}" "$lines" >"$directory/rempart-$stamp.journal"
echo "backup: wrote $dump"
