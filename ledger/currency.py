"""ISO 4217 currencies: which codes exist and their names (py-moneyed's table)."""

from django.core.exceptions import ValidationError
from moneyed import CURRENCIES

# Amounts are stored to the cent, so currencies with three decimal places (KWD, BHD, ...) cannot
# be booked exactly; they are refused rather than rounded.
MAX_MINOR_UNITS = 100


def is_known_currency(code: str) -> bool:
    return code in CURRENCIES and code != "XXX"


def validate_currency_code(code: str) -> None:
    if not is_known_currency(code):
        raise ValidationError(f"{code!r} is not an ISO 4217 currency code (e.g. USD, EUR, GBP).", code="currency")
    if CURRENCIES[code].sub_unit > MAX_MINOR_UNITS:
        raise ValidationError(
            f"{code} has more than two decimal places, which Concord cannot book to the unit.", code="currency"
        )


def currency_choices() -> list[tuple[str, str]]:
    return sorted((code, f"{code} — {currency.name}") for code, currency in CURRENCIES.items() if code != "XXX")
