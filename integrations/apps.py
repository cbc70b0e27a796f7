from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """The sync engine and one adapter per accounting package."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"

    def ready(self) -> None:
        # Local changes reach the outbox in the same transaction (integrations/outbox.py).
        from .outbox import connect_signals

        connect_signals()
