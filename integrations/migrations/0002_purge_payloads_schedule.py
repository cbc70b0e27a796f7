from django.db import migrations

PURGE_TASK_NAME = "integrations: purge archived sync payloads"


def create_purge_schedule(apps, schema_editor):
    """Archived request/response payloads older than SYNC_PAYLOAD_RETENTION_DAYS go, nightly.
    A row of django-celery-beat's tables, so admins may change or pause it."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="41", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=PURGE_TASK_NAME,
        defaults={
            "task": "integrations.tasks.purge_sync_payloads",
            "crontab": nightly,
            "description": "Deletes archived sync payloads older than the retention setting.",
        },
    )


def remove_purge_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=PURGE_TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_purge_schedule, remove_purge_schedule)]
