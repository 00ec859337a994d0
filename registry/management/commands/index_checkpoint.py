"""``manage.py index_checkpoint``: write the match index's checkpoint from the database."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.matching.follower import index_checkpoint_write


class Command(BaseCommand):
    help = (
        "Build the match index from the database and write it as the checkpoint that web "
        "processes map at start (INDEX_CHECKPOINT_PATH, or --path), replacing the old one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", default="", help="where to write (INDEX_CHECKPOINT_PATH)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"] or settings.INDEX_CHECKPOINT_PATH
        if not path:
            raise CommandError("Set INDEX_CHECKPOINT_PATH or give --path.")
        try:
            written = index_checkpoint_write(path)
        except OSError as error:
            raise CommandError(f"Cannot write the checkpoint {path}: {error.strerror}") from error
        self.stdout.write(
            f"Checkpoint written to {written.path}: {written.hashes} hashes at change "
            f"{written.position}, {written.size / 2**20:.1f} MiB in {written.seconds:.1f} s."
        )
