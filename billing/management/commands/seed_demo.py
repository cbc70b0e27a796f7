"""`python manage.py seed_demo [--seed N] [--customers N] [--months N]`: the demo data.

Demo users, customers, contacts and activity (crm.demo), then their receivables: a catalogue,
exchange rates and `--months` of invoices, payments, credit notes, refunds, disputes and
write-offs ending today (billing.demo), then collections work: collectors, promises to pay kept,
broken and still open (billing.demo_collections). The command lives in billing because it needs both apps,
and crm may not import billing.

Deterministic (the same seed gives the same data) and idempotent (a second run adds nothing).
One transaction: on SQLite every commit costs a disk sync, and a failed run leaves nothing.
Every change is recorded as made by the system actor `system.command:seed_demo` (write-offs:
requested by `ar`, approved by `admin`, as the rules require).
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

import crm.demo as crm_demo
from billing import demo as billing_demo
from billing import demo_collections
from config import audit
from crm.models import Customer

SYSTEM_ACTOR = "command:seed_demo"


class Command(BaseCommand):
    help = "Load deterministic demo data (users, customers, invoices, payments and more). Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
        parser.add_argument("--customers", type=int, default=240, help="How many customers (default 240).")
        parser.add_argument(
            "--months",
            type=int,
            default=18,
            help="Months of receivables, ending today (default 18); 0 loads people and customers only.",
        )

    def handle(self, *args, seed: int, customers: int, months: int, **options):
        if months < 0:
            raise CommandError("--months cannot be negative.")
        started = time.monotonic()
        with audit.as_system(SYSTEM_ACTOR), transaction.atomic():
            system = audit.system_actor(SYSTEM_ACTOR)
            people = crm_demo.seed_people_and_customers(actor=system, seed=seed, customers=customers)
            billing = None
            if months:
                billing = billing_demo.seed_billing(
                    actor=system,
                    requester=people.users["ar"],
                    approver=people.users["admin"],
                    customers=people.customers,
                    seed=seed,
                    months=months,
                    today=timezone.localdate(),
                )
                billing.added.update(
                    demo_collections.seed_collections(
                        actor=system,
                        collector=people.users["ar"],
                        customers=people.customers,
                        seed=seed,
                        today=timezone.localdate(),
                    )
                )
        self.stdout.write(
            f"People: {len(people.users)} users, {Customer.objects.count()} customers ({people.created} new)."
        )
        if billing is not None:
            self.stdout.write(str(billing))
            for line in billing_demo.demo_totals():
                self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready in {time.monotonic() - started:.1f} s. "
                f"Log in as {', '.join(people.users)} with password {crm_demo.DEMO_PASSWORD!r}."
            )
        )
