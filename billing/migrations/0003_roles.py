"""Give the roles their billing and ledger permissions (frozen as of this migration)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

BILLING_VIEW = [
    f"billing.view_{model}"
    for model in (
        "invoice",
        "invoiceline",
        "payment",
        "paymentallocation",
        "creditnote",
        "creditnoteline",
        "creditnoteallocation",
        "refund",
        "writeoff",
        "product",
        "taxrate",
        "recurringinvoice",
        "recurringinvoiceline",
    )
]

ROLE_PERMISSIONS = {
    # Reps see their customers' documents and may prepare draft invoices for them.
    "Sales": [*BILLING_VIEW, "billing.add_invoice", "billing.change_invoice"],
    "Accounts Receivable": [
        *BILLING_VIEW,
        "billing.add_invoice",
        "billing.change_invoice",
        "billing.issue_invoice",
        "billing.void_invoice",
        "billing.add_payment",
        "billing.change_payment",
        "billing.add_paymentallocation",
        "billing.add_creditnote",
        "billing.add_creditnoteallocation",
        "billing.add_refund",
        "billing.request_writeoff",
        "ledger.view_exchangerate",
    ],
    "Finance Admin": [
        "billing.*",
        "ledger.view_account",
        "ledger.add_account",
        "ledger.change_account",
        "ledger.view_exchangerate",
        "ledger.add_exchangerate",
        "ledger.change_exchangerate",
        "ledger.view_periodlock",
        "ledger.add_periodlock",
        "ledger.view_journalentry",
        "ledger.view_journalline",
    ],
}


def grant(apps, schema_editor):
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
            matching = Permission.objects.filter(content_type__app_label=app_label)
            if codename != "*":
                matching = matching.filter(codename=codename)
            found = list(matching)
            if not found:
                raise RuntimeError(f"Role {role!r} names permission {name!r}, which does not exist.")
            group.permissions.add(*found)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.remove(*group.permissions.filter(content_type__app_label__in=["billing", "ledger"]))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_initial"),
        ("ledger", "0003_default_chart"),
        ("crm", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
