"""The all-customers list sorted by name (its default) reads its pages along (display_name, id)
instead of sorting every customer for each page."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0005_receivables_kept")]

    operations = [
        migrations.AddIndex(
            model_name="customer",
            index=models.Index(fields=["display_name", "id"], name="customer_name_id_idx"),
        ),
    ]
