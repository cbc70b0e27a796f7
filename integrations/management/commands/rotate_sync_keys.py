"""`python manage.py rotate_sync_keys [--batch-size N]`

Re-encrypts every encrypted column (OAuth tokens and other sync secrets) of every model with the
first key of SYNC_ENCRYPTION_KEYS. Run it after putting a new key first; once it reports nothing
undecryptable, the older keys can be removed. Running it again changes nothing.
"""

from django.core.management.base import BaseCommand, CommandError

from integrations.core.fields import models_with_encrypted_fields, rotate_stored_values

# How many undecryptable values the error names before summarising the rest.
LISTED_FAILURES = 20


class Command(BaseCommand):
    help = "Re-encrypt every stored sync secret with the newest key in SYNC_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Rows locked and updated per transaction.")

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        failures = []
        for model in models_with_encrypted_fields():
            count = rotate_stored_values(model, batch_size=batch_size)
            self.stdout.write(
                f"{count.model}: {count.rows} rows, {count.values} encrypted values, "
                f"{count.rotated} re-encrypted, {count.values - count.rotated - len(count.undecryptable)} "
                f"already under the newest key, {len(count.undecryptable)} undecryptable"
            )
            failures += [f"{count.model} {where}" for where in count.undecryptable]
        if failures:
            listed = "; ".join(failures[:LISTED_FAILURES])
            more = f" and {len(failures) - LISTED_FAILURES} more" if len(failures) > LISTED_FAILURES else ""
            raise CommandError(
                f"{len(failures)} values open with none of SYNC_ENCRYPTION_KEYS and were left as they are: "
                f"{listed}{more}. Put back the key that encrypted them and run the command again, or "
                "reconnect those connections."
            )
        self.stdout.write(self.style.SUCCESS("Every encrypted value is under the newest key."))
