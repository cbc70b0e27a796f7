"""Rounding at the edges: amounts are quantized to their currency's minor unit, half up.

Concord books currencies with at most two decimal places; the base currency is one of them.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def quantize(amount: Decimal) -> Decimal:
    """Round to the cent (two places), half up. Used for every stored money amount."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def to_base(amount: Decimal, rate: Decimal) -> Decimal:
    """`amount` in a document currency, at `rate` base units per unit, rounded to the cent."""
    return quantize(Decimal(amount) * Decimal(rate))


def base_currency() -> str:
    return settings.CONCORD_BASE_CURRENCY
