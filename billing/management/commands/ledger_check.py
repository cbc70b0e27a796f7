"""`python manage.py ledger_check [--as-of YYYY-MM-DD]`: do the books agree with themselves?

Prints four figures for the end of the given day (base currency) and exits 1 if any disagree by
as much as a cent:
- the trial balance total (debits less credits over every account: must be zero);
- the accounts-receivable control account's balance;
- open invoice balances less unapplied credit, summed document by document;
- the aging report's total.
For today or later it also checks the balances stored on the documents against their history,
each customer's stored receivables against its documents, and the settlement days that let an
aging skip settled documents.
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing import selectors
from ledger import selectors as ledger_selectors
from ledger.models import Account
from ledger.money import ZERO


class Command(BaseCommand):
    help = "Check that the trial balance, AR control, open balances and aging agree to the cent."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")

    def handle(self, *args, as_of: date | None, **options):
        today = timezone.localdate()
        as_of = as_of or today
        trial_balance = sum((row.balance for row in ledger_selectors.trial_balance(as_of=as_of)), ZERO)
        ar_control = ledger_selectors.account_balance(role=Account.Role.AR_CONTROL, as_of=as_of)
        position = selectors.open_position(as_of=as_of)
        aging_total = selectors.aging(as_of=as_of).total
        figures = [
            ("Trial balance total (must be 0.00)", trial_balance),
            ("AR control account", ar_control),
            ("Open invoices less unapplied credit", position.net),
            ("Aging total", aging_total),
        ]
        problems = []
        if trial_balance != ZERO:
            problems.append(f"the trial balance is off by {trial_balance}")
        if not ar_control == position.net == aging_total:
            problems.append("AR control, open balances and aging disagree")
        if as_of >= today:
            stored = selectors.stored_open_position()
            figures.append(("Stored open balances less unapplied credit", stored.net))
            if stored != selectors.open_position(as_of=max(as_of, today)):
                problems.append("balances stored on documents differ from their history")
            out_of_step = selectors.receivables_out_of_step()
            figures.append(("Customers whose stored receivables differ", len(out_of_step)))
            for customer_id, stored_open, open_, stored_unapplied, unapplied in out_of_step[:10]:
                self.stdout.write(
                    f"  customer {customer_id}: stored open {stored_open} vs {open_} on its invoices, "
                    f"stored unapplied {stored_unapplied} vs {unapplied} on its credits"
                )
            if out_of_step:
                problems.append(f"{len(out_of_step)} customers' stored receivables differ from their documents")
            missing_days = selectors.settlement_days_out_of_step()
            figures.append(("Documents with a wrong settlement day", missing_days))
            if missing_days:
                problems.append(f"{missing_days} documents have a settlement day that disagrees with their balance")
        width = max(len(label) for label, _ in figures)
        self.stdout.write(f"Ledger check as of {as_of:%Y-%m-%d}")
        for label, value in figures:
            shown = f"{value:>16,}" if isinstance(value, int) else f"{value:>16,.2f}"
            self.stdout.write(f"  {label:<{width}}  {shown}")
        if problems:
            raise CommandError("Ledger check FAILED: " + "; ".join(problems) + ".")
        self.stdout.write(self.style.SUCCESS("Ledger check passed: all figures agree to the cent."))
