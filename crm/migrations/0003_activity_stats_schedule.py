"""Schedule the periodic repair of customers' cached activity stats (every 15 minutes).

The schedule is a row in django-celery-beat's tables, so admins can change or pause it in the
admin site; this migration only creates it when it is missing.
"""

from django.db import migrations

TASK_NAME = "crm: refresh customer activity stats"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_quarter_hour, _ = CrontabSchedule.objects.get_or_create(
        minute="*/15", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "crm.tasks.refresh_customer_activity_stats",
            "crontab": every_quarter_hour,
            "description": "Repairs customers' cached activity count and last-activity time.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0002_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
