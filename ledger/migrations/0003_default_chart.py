"""A default chart of accounts with every account the posting rules need, each tagged with its
role. Companies rename or renumber them in the admin; the roles are what the rules look up."""

from django.db import migrations

CHART = [
    # code, name, type, role
    ("1000", "Bank", "asset", "bank"),
    ("1010", "Card payments clearing", "asset", "card_clearing"),
    ("1020", "Cash on hand", "asset", "cash"),
    ("1030", "Cheques to deposit", "asset", "cheque_clearing"),
    ("1040", "Other receipts clearing", "asset", "other_clearing"),
    ("1200", "Accounts receivable", "asset", "ar_control"),
    ("1300", "Inventory", "asset", "inventory"),
    ("2200", "Sales tax payable", "liability", "tax_payable"),
    ("3000", "Retained earnings", "equity", ""),
    ("4000", "Sales", "income", "revenue"),
    ("4010", "Services revenue", "income", ""),
    ("4900", "Sales discounts", "income", "sales_discounts"),
    ("5000", "Cost of goods sold", "expense", "cogs"),
    ("6900", "Bad debt expense", "expense", "bad_debt"),
    ("7900", "Realised exchange gains and losses", "income", "fx_gain_loss"),
]


def create_chart(apps, schema_editor):
    Account = apps.get_model("ledger", "Account")
    for code, name, account_type, role in CHART:
        Account.objects.get_or_create(code=code, defaults={"name": name, "type": account_type, "role": role})


def remove_chart(apps, schema_editor):
    apps.get_model("ledger", "Account").objects.filter(code__in=[row[0] for row in CHART]).delete()


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_append_only_triggers")]

    operations = [migrations.RunPython(create_chart, remove_chart)]
