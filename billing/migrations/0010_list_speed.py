"""The customer list's promise columns read each row's own promises through partial indexes: the
next open promise, a recently broken one and a newer open or kept one that clears it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_customer_page_indexes")]

    operations = [
        migrations.AddIndex(
            model_name="promisetopay",
            index=models.Index(
                condition=models.Q(("status", "open")),
                fields=["customer", "promised_on", "id"],
                include=("amount", "currency"),
                name="promise_customer_open_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="promisetopay",
            index=models.Index(
                condition=models.Q(("status", "broken")),
                fields=["customer", "settled_on"],
                name="promise_customer_broken_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="promisetopay",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "kept"])),
                fields=["customer", "made_on"],
                name="promise_customer_made_idx",
            ),
        ),
    ]
