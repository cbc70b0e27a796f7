"""`python manage.py seed_scale --customers 100000 --invoices 1000000 [--seed N]`: benchmark data.

Thin: the generator is billing.scale_seed (what it writes and why it is ledger-consistent is
explained there). Refuses a database that holds customers already, unless --allow-existing.
"""

from django.core.management.base import BaseCommand, CommandError

from billing import scale_seed


class Command(BaseCommand):
    help = (
        "Load realistic, ledger-consistent data at scale for benchmarks: customers (about 20% in a second "
        "currency) with contacts, 50 sales reps (rep01 owns exactly --big-rep-customers of them), AR collectors, "
        "daily exchange rates, and 24 months of invoices with payments, allocations, credit notes and their "
        "journal entries — about 85% paid, 3% credited, 12% open (most past due, a few disputed). Loaded with "
        "COPY on PostgreSQL (each chunk of customers committed on its own, several at once; load into a fresh "
        "database, since a failed run keeps the chunks it committed), plain inserts on SQLite (small sizes "
        "only). No history rows are written for seeded rows. Users rep01… and collector1… get the password "
        f"{scale_seed.PASSWORD!r}. Deterministic for a seed; `ledger_check` passes afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=100_000, help="How many customers (default 100000).")
        parser.add_argument("--invoices", type=int, default=1_000_000, help="How many invoices (default 1000000).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument("--reps", type=int, default=50, help="Sales reps (default 50).")
        parser.add_argument(
            "--big-rep-customers",
            type=int,
            default=None,
            help="Customers of the one big rep, rep01 (default 2000, or a fiftieth of the customers if that is less).",
        )
        parser.add_argument("--collectors", type=int, default=3, help="AR collectors (default 3).")
        parser.add_argument(
            "--chunk", type=int, default=2000, help="Customers generated and committed at a time (default 2000)."
        )
        parser.add_argument(
            "--writers",
            type=int,
            default=3,
            help="PostgreSQL: chunks written and committed in parallel, each on its own connection (default 3).",
        )
        parser.add_argument(
            "--allow-existing",
            action="store_true",
            help="Add to a database that has customers already (new account numbers follow the existing ones).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars (also off when not a tty).")

    def handle(self, *args, customers, invoices, seed, reps, big_rep_customers, collectors, chunk, **options):
        if big_rep_customers is None:
            big_rep_customers = min(2000, max(1, customers // 50))
        try:
            summary = scale_seed.seed_scale(
                customers=customers,
                invoices=invoices,
                seed=seed,
                progress=not options["no_progress"],
                reps=reps,
                big_rep_customers=big_rep_customers,
                collectors=collectors,
                chunk_customers=chunk,
                writers=options["writers"],
                allow_existing=options["allow_existing"],
            )
        except scale_seed.SeedRefused as refused:
            raise CommandError(str(refused)) from None
        for line in summary.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Scale data loaded in {summary.phases['total']:.1f} s."))
