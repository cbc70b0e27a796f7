"""Rebuild a record's remote history from the archived payloads of its connection.

    manage.py replay_sync_payloads --connection 3 --entity invoice --remote-id 130 [--apply]

Prints every state of the record the package ever sent (oldest first, with its version and the
call that carried it) and the canonical fields of the latest one. With --apply, the latest state
is applied to Concord through the engine, exactly as a pull would (merging, conflicts and all).
"""

import json

from django.core.management.base import BaseCommand, CommandError

from integrations import services
from integrations.core.canonical import RECORD_TYPES
from integrations.core.engine import Context, apply_remote
from integrations.local import ConcordStore
from integrations.models import Connection, PayloadArchive, SyncRun
from integrations.outbox import applying_remote_changes
from integrations.providers import build_adapter


class Command(BaseCommand):
    help = "Rebuild a synced record's state from the archived request/response payloads."

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True)
        parser.add_argument("--entity", required=True, choices=sorted(RECORD_TYPES))
        parser.add_argument("--remote-id", required=True)
        parser.add_argument("--apply", action="store_true", help="apply the latest state to Concord")

    def handle(self, *args, connection: int, entity: str, remote_id: str, apply: bool, **options):
        found = Connection.objects.filter(pk=connection).first()
        if found is None:
            raise CommandError(f"No connection {connection}.")
        adapter = build_adapter(found, mapping=services.current_mapping(found))
        history = []
        archives = PayloadArchive.objects.filter(connection=found).order_by("created_at", "id")
        for archive in archives.iterator(chunk_size=200):
            text = PayloadArchive.unpack(archive.response_body)
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                continue  # an XML fault or a dropped answer: no record in it
            for state in adapter.states_in(payload):
                if state.entity == entity and state.remote_id == remote_id:
                    history.append((archive, state))
        if not history:
            raise CommandError(f"No archived payload holds {entity} {remote_id} (kept for the retention period only).")
        for archive, state in history:
            what = "deleted" if state.deleted else f"version {state.version}"
            self.stdout.write(f"{archive.created_at:%Y-%m-%d %H:%M:%S} {archive.method} {archive.url}: {what}")
        latest = history[-1][1]
        if latest.error is not None:
            raise CommandError(f"The latest state cannot be read: {latest.error}")
        fields = {"deleted": True} if latest.deleted else latest.record.fields()
        self.stdout.write(json.dumps(fields, indent=2, sort_keys=True))
        if apply:
            run = SyncRun.objects.create(connection=found, trigger=SyncRun.Trigger.RETRY, targets=[[entity, remote_id]])
            ctx = Context(
                connection=found,
                run=run,
                adapter=adapter,
                local=ConcordStore(connection=found),
                actor=services.sync_actor(),
                pulls=frozenset({entity}),
                pushes=frozenset(),
            )
            with applying_remote_changes(found.pk):
                apply_remote(ctx, latest)
            run.status, run.phase = SyncRun.Status.SUCCEEDED, "Replayed from the archive"
            run.save()
            self.stdout.write(f"Applied to Concord (run {run.pk}).")
