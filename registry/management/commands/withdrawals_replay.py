"""``manage.py withdrawals_replay JOURNAL...``: re-apply journalled withdrawals after a restore.

Every case the journal names that the database holds as active is withdrawn again through the
withdrawal service (its photos stop matching, partners are told through the sync feed and
webhooks). Idempotent: a case already withdrawn, or unknown to the database (registered after
the backup, so never restored), is left as it is. Several journals (one per web machine) may be
given. Prints one summary line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.journal import JournalError, journal_read
from registry.models import Case
from registry.services.cases import case_withdraw


class Command(BaseCommand):
    help = "Withdraw again every case the withdrawal journal names that is still active."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "journals",
            nargs="+",
            help="The withdrawal journals (WITHDRAWAL_JOURNAL of each web machine).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        paths = [Path(journal) for journal in options["journals"]]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"No withdrawal journal at {path}.")
        replayed = already = unknown = 0
        for path in paths:
            try:
                for entry in journal_read(path):
                    case = Case.objects.filter(reference=entry.case_reference).first()
                    if case is None:
                        unknown += 1
                    elif case_withdraw(case=case, replayed=True):
                        replayed += 1
                    else:
                        already += 1
            except JournalError as error:
                raise CommandError(f"{path}: {error}") from error
        self.stdout.write(
            f"withdrawals replayed: {replayed}, already withdrawn: {already}, "
            f"cases not in the database: {unknown}"
        )
