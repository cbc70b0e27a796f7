from django.db import migrations, models

# Xero allows 60 calls a minute and 5 at once per organisation: Xero connections made before new
# connections took their provider's pacing (integrations.xero.build) had QuickBooks' 480.
XERO_PACING = {"requests_per_minute": 57, "max_in_flight": 5}


def pace_xero_connections(apps, schema_editor):
    Connection = apps.get_model("integrations", "Connection")
    Connection.objects.filter(provider="xero", requests_per_minute=480).update(**XERO_PACING)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0004_connection_limited_until"),
    ]

    operations = [
        migrations.AddField(
            model_name="connection",
            name="first_push_queued_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(pace_xero_connections, migrations.RunPython.noop),
    ]
