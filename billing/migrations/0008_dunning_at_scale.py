"""Dunning at scale: the run that wrote a letter's row (how a run reads back its own rows after an
insert with ON CONFLICT DO NOTHING), and the default letter templates taught to speak of several
invoices at once (a customer gets one e-mail per level listing all its invoices due for it) and of
a linked statement. A level whose templates were edited is left as it is."""

from importlib import import_module

from django.db import migrations, models

STATEMENT = (
    "{% if statement_url %}Your statement is at {{ statement_url }}.{% else %}Your statement is attached.{% endif %}"
)
GROUPED_LEVELS = {
    1: {
        "subject": (
            "Reminder: {% if invoice_count > 1 %}{{ invoice_count }} invoices are{% else %}"
            "invoice {{ invoice.number }} is{% endif %} overdue"
        ),
        "body": (
            "Dear {{ contact_name|default:customer.display_name }},\n\n"
            "{% if invoice_count > 1 %}Our records show that these invoices are overdue:"
            "{% for item in invoices %}\n- {{ item.number }} of {{ item.issue_date|date:'j F Y' }}, due on "
            "{{ item.due_date|date:'j F Y' }}: {{ item.open_amount }} {{ item.currency }} open{% endfor %}\n\n"
            "Perhaps they have crossed with your payment; if not, we would be grateful if you could "
            "arrange payment in the coming days.{% else %}"
            "Our records show that invoice {{ invoice.number }} of {{ invoice.issue_date|date:'j F Y' }}, "
            "due on {{ invoice.due_date|date:'j F Y' }}, still has {{ open_amount }} {{ invoice.currency }} "
            "open. Perhaps it has crossed with your payment; if not, we would be grateful if you could "
            "arrange payment in the coming days.{% endif %}\n\n"
            f"{STATEMENT} If anything on it looks wrong, simply reply to this e-mail.\n\n"
            "Kind regards,\n{{ company_name }} accounts receivable"
        ),
    },
    2: {
        "subject": (
            "Second reminder: {% if invoice_count > 1 %}{{ invoice_count }} invoices are overdue{% else %}"
            "invoice {{ invoice.number }} is {{ days_overdue }} days overdue{% endif %}"
        ),
        "body": (
            "Dear {{ contact_name|default:customer.display_name }},\n\n"
            "{% if invoice_count > 1 %}Despite our earlier reminders, these invoices are still overdue:"
            "{% for item in invoices %}\n- {{ item.number }} (due {{ item.due_date|date:'j F Y' }}), "
            "{{ item.days_overdue }} days overdue: {{ item.open_amount }} {{ item.currency }} open{% endfor %}"
            "{% else %}Despite our earlier reminder, invoice {{ invoice.number }} (due "
            "{{ invoice.due_date|date:'j F Y' }}) is now {{ days_overdue }} days overdue with {{ open_amount }} "
            "{{ invoice.currency }} open.{% endif %}\n\n"
            "Please pay within 7 days, or tell us by reply when payment will be made.\n\n"
            f"{STATEMENT}\n\n"
            "Kind regards,\n{{ company_name }} accounts receivable"
        ),
    },
    3: {
        "subject": (
            "Final notice: {% if invoice_count > 1 %}{{ invoice_count }} invoices{% else %}"
            "invoice {{ invoice.number }}{% endif %}"
        ),
        "body": (
            "Dear {{ contact_name|default:customer.display_name }},\n\n"
            "{% if invoice_count > 1 %}These invoices remain unpaid after two reminders:"
            "{% for item in invoices %}\n- {{ item.number }}, {{ item.days_overdue }} days overdue: "
            "{{ item.open_amount }} {{ item.currency }} open{% endfor %}"
            "{% else %}Invoice {{ invoice.number }} is {{ days_overdue }} days overdue; {{ open_amount }} "
            "{{ invoice.currency }} remains unpaid after two reminders.{% endif %}\n\n"
            "Unless we receive payment or hear from you within 7 days, we will put your account on hold "
            "and may pass the debt on for collection.\n\n"
            f"{STATEMENT}\n\n"
            "{{ company_name }} accounts receivable"
        ),
    },
}


def _original_levels() -> dict[int, dict]:
    setup = import_module("billing.migrations.0006_collections_setup")
    return {level["level"]: level for level in setup.DEFAULT_LEVELS}


def _replace(apps, old: dict[int, dict], new: dict[int, dict]) -> None:
    DunningLevel = apps.get_model("billing", "DunningLevel")
    for level in DunningLevel.objects.filter(level__in=list(new)):
        was = old[level.level]
        if (level.subject, level.body) == (was["subject"], was["body"]):
            level.subject, level.body = new[level.level]["subject"], new[level.level]["body"]
            level.save(update_fields=["subject", "body"])


def group_letters(apps, schema_editor):
    _replace(apps, _original_levels(), GROUPED_LEVELS)


def ungroup_letters(apps, schema_editor):
    _replace(apps, GROUPED_LEVELS, _original_levels())


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_receivables_kept")]

    operations = [
        migrations.AddField(
            model_name="dunningletter",
            name="run_id",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="historicaldunningletter",
            name="run_id",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(group_letters, ungroup_letters),
    ]
