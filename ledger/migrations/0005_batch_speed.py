"""Fewer indexes to keep up as journal lines are posted, none that a query reads.

- journal lines: the single-column indexes on `account` and `customer`, which line_account_date_idx
  and line_customer_date_idx (partial, every line with a customer) start with;
- the history of entries and lines: the indexes simple-history puts on each foreign key
  (`reversal_of`, `created_by`; `entry`, `account`, `customer`). The history is read by row
  (`id`), by day (`history_date`) and by author (`history_user`), whose indexes stay.

A batch of 500 invoices writes some 2 500 journal lines and as many history rows: these seven
indexes were a third of the index entries written for them.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0006_customer_name_index"),
        ("ledger", "0004_batch_balance_check"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicaljournalentry",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="historicaljournalentry",
            name="reversal_of",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="ledger.journalentry",
            ),
        ),
        migrations.AlterField(
            model_name="historicaljournalline",
            name="account",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="ledger.account",
            ),
        ),
        migrations.AlterField(
            model_name="historicaljournalline",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="crm.customer",
            ),
        ),
        migrations.AlterField(
            model_name="historicaljournalline",
            name="entry",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="ledger.journalentry",
            ),
        ),
        migrations.AlterField(
            model_name="journalline",
            name="account",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="lines", to="ledger.account"
            ),
        ),
        migrations.AlterField(
            model_name="journalline",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="crm.customer",
            ),
        ),
    ]
