"""ISO 4217 currencies: which codes exist and their names (py-moneyed's table)."""

from django.core.exceptions import ValidationError
from moneyed import CURRENCIES


def is_known_currency(code: str) -> bool:
    return code in CURRENCIES and code != "XXX"


def validate_currency_code(code: str) -> None:
    if not is_known_currency(code):
        raise ValidationError(f"{code!r} is not an ISO 4217 currency code (e.g. USD, EUR, GBP).", code="currency")


def currency_choices() -> list[tuple[str, str]]:
    return sorted((code, f"{code} — {currency.name}") for code, currency in CURRENCIES.items() if code != "XXX")
