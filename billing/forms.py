"""Forms for the billing panel: they parse what a person typed; billing.services decides the rest."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.errors import IdempotencyConflict
from billing.models import Invoice, Payment
from ledger.errors import LedgerError

MONEY_FIELD = {"max_digits": 18, "decimal_places": 2, "min_value": Decimal("0.01")}


def new_idempotency_key() -> str:
    return f"payment-form:{uuid.uuid4()}"


class RecordPaymentForm(forms.Form):
    """Money received from the customer. The hidden key is drawn when the form is shown, so a
    second submission of the same form (a double click, a resent POST) records nothing new."""

    amount = forms.DecimalField(**MONEY_FIELD)
    received_on = forms.DateField(label="Received on", widget=forms.DateInput(attrs={"type": "date"}))
    method = forms.ChoiceField(choices=Payment.Method.choices, initial=Payment.Method.BANK_TRANSFER)
    reference = forms.CharField(max_length=100, required=False)
    auto_apply = forms.BooleanField(label="Apply automatically to the oldest invoices", required=False, initial=True)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("received_on", timezone.localdate())
            self.initial.setdefault("idempotency_key", new_idempotency_key())

    def clean_received_on(self):
        received_on = self.cleaned_data["received_on"]
        if received_on > timezone.localdate():
            raise ValidationError("A payment cannot have been received in the future.")
        return received_on


class AllocatePaymentForm(forms.Form):
    """Apply some of a payment's unapplied credit to one open invoice. Left empty, the amount is
    as much as both allow: the smaller of the invoice's open amount and the payment's credit."""

    invoice = forms.ModelChoiceField(queryset=Invoice.objects.none())
    amount = forms.DecimalField(required=False, **MONEY_FIELD)

    def __init__(self, *args, payment: Payment, invoices, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment = payment
        self.fields["invoice"].queryset = invoices
        self.fields["invoice"].error_messages["invalid_choice"] = (
            "That invoice is no longer open for this payment; pick one from the list."
        )

    def clean(self):
        cleaned = super().clean()
        invoice = cleaned.get("invoice")
        if invoice is not None and cleaned.get("amount") is None:
            cleaned["amount"] = min(invoice.open_amount, self.payment.unapplied_amount)
        return cleaned


def add_service_error(form: forms.Form, error: Exception) -> None:
    """Show a refused write (nothing was changed) on the form: a field's error where the service
    names a field of this form, otherwise above the form."""
    if isinstance(error, IdempotencyConflict):
        form.add_error(
            None,
            "This form was already used to record a different payment. Check the payments below; "
            "submitting again records a new payment.",
        )
        return
    if isinstance(error, LedgerError):
        form.add_error(None, str(error))
    elif hasattr(error, "error_dict"):
        for name, messages in error.message_dict.items():
            form.add_error(name if name in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)
