from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Products, tax rates, invoices, payments, credit notes, dunning and promises to pay."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self):
        # crm does not import billing, so billing tells the customer page what to show.
        from billing.views import customer_panel
        from crm.panels import register_customer_panel

        register_customer_panel("Billing", order=10, render=customer_panel)
