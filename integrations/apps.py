from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """The sync engine and one adapter per accounting package."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
