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

        # The customer page's header figures (balance, credit use, DSO), above the Billing panel,
        # and the balance columns and filters of the customer list.
        from billing import customer_list, summary_panel

        register_customer_panel(summary_panel.PANEL_NAME, order=5, render=summary_panel.render)
        customer_list.register()

        # Promises, disputes, letters and the collector, below the Billing panel.
        from billing.collections_views import customer_panel as collections_panel

        register_customer_panel("Collections", order=20, render=collections_panel)
