from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """Accounts, journal entries, posting rules, aging and the trial balance."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "ledger"
