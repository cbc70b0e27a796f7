from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Products, tax rates, invoices, payments, credit notes, dunning and promises to pay."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
