from django.apps import AppConfig


class CrmConfig(AppConfig):
    """Customers, contacts, activities, ownership and who may see which customer."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "Customers"
