"""Line and document amounts, by the one rounding rule (docs/ledger.md):

1. subtotal = quantity × unit price, rounded half up to the cent;
2. discount = subtotal × percent / 100 (rounded) or the given amount, never above the subtotal;
3. amount = subtotal − discount;
   - tax exclusive: net = amount, tax = net × rate (rounded), gross = net + tax;
   - tax inclusive: gross = amount, net = gross / (1 + rate) (rounded), tax = gross − net;
   the discount without tax (for the discounts account) is discount / (1 + rate), rounded;
4. document totals are the sums of the rounded lines, never rounded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from ledger.money import ZERO, quantize


@dataclass(frozen=True)
class LineAmounts:
    subtotal: Decimal
    discount: Decimal
    discount_net: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal


def price_line(
    *,
    quantity: Decimal,
    unit_price: Decimal,
    discount_type: str = "none",
    discount_value: Decimal = ZERO,
    tax_rate: Decimal | None = None,
    tax_inclusive: bool = False,
) -> LineAmounts:
    if quantity <= 0:
        raise ValidationError({"quantity": f"Quantity must be positive, not {quantity}."})
    if unit_price < 0:
        raise ValidationError({"unit_price": f"A unit price cannot be negative ({unit_price})."})
    subtotal = quantize(quantity * unit_price)
    if discount_type == "percent":
        if not ZERO <= discount_value <= 100:
            raise ValidationError({"discount_value": f"A percentage discount must be 0–100, not {discount_value}."})
        discount = quantize(subtotal * discount_value / 100)
    elif discount_type == "amount":
        if not ZERO <= discount_value <= subtotal:
            raise ValidationError(
                {"discount_value": f"A discount of {discount_value} cannot exceed the line's {subtotal}."}
            )
        discount = quantize(discount_value)
    else:
        discount = ZERO
    amount = subtotal - discount
    rate = tax_rate or ZERO
    if tax_inclusive:
        gross = amount
        net = quantize(gross / (1 + rate))
        tax = gross - net
        discount_net = quantize(discount / (1 + rate))
    else:
        net = amount
        tax = quantize(net * rate)
        gross = net + tax
        discount_net = discount
    return LineAmounts(subtotal, discount, discount_net, net, tax, gross)


def apply_to_line(line) -> None:
    """Compute and set a stored line's amounts from its quantity, price, discount and tax rate."""
    amounts = price_line(
        quantity=line.quantity,
        unit_price=line.unit_price,
        discount_type=line.discount_type,
        discount_value=line.discount_value,
        tax_rate=line.tax_rate.rate if line.tax_rate else None,
        tax_inclusive=bool(line.tax_rate and line.tax_rate.inclusive),
    )
    for name, value in amounts.__dict__.items():
        setattr(line, name, value)


def document_totals(lines) -> tuple[Decimal, Decimal, Decimal]:
    """(net, tax, gross) of a document: sums of its rounded lines."""
    net = sum((line.net for line in lines), ZERO)
    tax = sum((line.tax for line in lines), ZERO)
    return net, tax, net + tax
