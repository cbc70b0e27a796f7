"""Collections set-up: the default dunning ladder, the roles' rights to promises, dunning and the
collections desk, and the two daily jobs (settle promises at 00:30, send dunning letters at 06:00)
as django-celery-beat rows admins can edit."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DEFAULT_LEVELS = [
    {
        "level": 1,
        "name": "Friendly reminder",
        "days_overdue": 7,
        "subject": "Reminder: invoice {{ invoice.number }} is overdue",
        "body": (
            "Dear {{ contact_name|default:customer.display_name }},\n\n"
            "Our records show that invoice {{ invoice.number }} of {{ invoice.issue_date|date:'j F Y' }}, "
            "due on {{ invoice.due_date|date:'j F Y' }}, still has {{ open_amount }} {{ invoice.currency }} "
            "open. Perhaps it has crossed with your payment; if not, we would be grateful if you could "
            "arrange payment in the coming days.\n\n"
            "Your statement is attached. If anything on it looks wrong, simply reply to this e-mail.\n\n"
            "Kind regards,\n{{ company_name }} accounts receivable"
        ),
    },
    {
        "level": 2,
        "name": "Firm reminder",
        "days_overdue": 21,
        "subject": "Second reminder: invoice {{ invoice.number }} is {{ days_overdue }} days overdue",
        "body": (
            "Dear {{ contact_name|default:customer.display_name }},\n\n"
            "Despite our earlier reminder, invoice {{ invoice.number }} (due {{ invoice.due_date|date:'j F Y' }}) "
            "is now {{ days_overdue }} days overdue with {{ open_amount }} {{ invoice.currency }} open.\n\n"
            "Please pay within 7 days, or tell us by reply when payment will be made.\n\n"
            "Your statement is attached.\n\n"
            "Kind regards,\n{{ company_name }} accounts receivable"
        ),
    },
    {
        "level": 3,
        "name": "Final notice",
        "days_overdue": 45,
        "subject": "Final notice: invoice {{ invoice.number }}",
        "body": (
            "Dear {{ contact_name|default:customer.display_name }},\n\n"
            "Invoice {{ invoice.number }} is {{ days_overdue }} days overdue; {{ open_amount }} "
            "{{ invoice.currency }} remains unpaid after two reminders.\n\n"
            "Unless we receive payment or hear from you within 7 days, we will put your account on hold "
            "and may pass the debt on for collection.\n\n"
            "Your statement is attached.\n\n"
            "{{ company_name }} accounts receivable"
        ),
    },
]

NEW_VIEW = ["billing.view_promisetopay", "billing.view_promiseinvoice", "billing.view_dunningletter"]
ROLE_PERMISSIONS = {
    "Sales": NEW_VIEW,
    "Accounts Receivable": [
        *NEW_VIEW,
        "billing.add_promisetopay",
        "billing.change_promisetopay",
        "billing.view_dunninglevel",
        "billing.add_dunningletter",
    ],
    "Finance Admin": [
        *NEW_VIEW,
        "billing.add_promisetopay",
        "billing.change_promisetopay",
        "billing.view_dunninglevel",
        "billing.add_dunninglevel",
        "billing.change_dunninglevel",
        "billing.add_dunningletter",
    ],
}

SCHEDULES = [
    (
        "billing: settle due promises to pay",
        "billing.tasks.settle_due_promises",
        "30",
        "0",
        "Marks each promise whose date has passed as kept or broken, and tells the owner rep of a broken one.",
    ),
    (
        "billing: send dunning letters",
        "billing.tasks.send_daily_dunning",
        "0",
        "6",
        "Sends each overdue invoice the letter of the level it has reached, at most once per level.",
    ),
]


def set_up(apps, schema_editor):
    DunningLevel = apps.get_model("billing", "DunningLevel")
    for level in DEFAULT_LEVELS:
        DunningLevel.objects.get_or_create(level=level["level"], defaults=level)

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))

    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, minute, hour, description in SCHEDULES:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "crontab": crontab, "description": description}
        )


def tear_down(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, *_ in SCHEDULES]
    ).delete()
    apps.get_model("billing", "DunningLevel").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_collections"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(set_up, tear_down)]
