"""Indexes for the aging over a large book (billing.selectors.aging_statement): the invoices and
payments not settled or used up by a day, read by index-only scans; what was applied to an
invoice by a day; and whether anything was dated after a day (allocations, voids, failures).

The two allocation indexes on (invoice, allocated_on) gain the base amount, so that what was
applied by a day is read from the index alone."""

from django.db import migrations, models


class Migration(migrations.Migration):
    # After the dunning migration that was written alongside (both started from 0007): one line
    # of migrations rather than two leaves that `migrate` would refuse.
    dependencies = [("billing", "0008_dunning_at_scale")]

    operations = [
        migrations.RemoveIndex(model_name="paymentallocation", name="payalloc_invoice_date_idx"),
        migrations.AddIndex(
            model_name="paymentallocation",
            index=models.Index(
                fields=["invoice", "allocated_on", "invoice_base"], name="payalloc_invoice_date_base_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="paymentallocation", index=models.Index(fields=["allocated_on"], name="payalloc_date_idx")
        ),
        migrations.RemoveIndex(model_name="creditnoteallocation", name="cnalloc_invoice_date_idx"),
        migrations.AddIndex(
            model_name="creditnoteallocation",
            index=models.Index(
                fields=["invoice", "allocated_on", "invoice_base"], name="cnalloc_invoice_date_base_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="creditnoteallocation", index=models.Index(fields=["allocated_on"], name="cnalloc_date_idx")
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(settled_on__isnull=True),
                fields=["issue_date", "customer", "due_date", "status", "voided_on", "open_base", "base_gross", "id"],
                name="invoice_unsettled_aging_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(settled_on__isnull=False),
                fields=["settled_on", "issue_date", "customer", "due_date", "voided_on", "base_gross", "id"],
                name="invoice_settled_aging_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(voided_on__isnull=False), fields=["voided_on"], name="invoice_voided_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(
                condition=models.Q(used_up_on__isnull=True),
                fields=["received_on", "customer", "unapplied_base", "base_amount", "failed_on", "entry", "id"],
                name="payment_unused_aging_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(
                condition=models.Q(used_up_on__isnull=False),
                fields=["used_up_on", "received_on"],
                name="payment_used_up_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(
                condition=models.Q(failed_on__isnull=False), fields=["failed_on"], name="payment_failed_idx"
            ),
        ),
    ]
