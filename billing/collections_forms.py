"""Forms of the collections pages: they parse what a person typed; billing.collections decides.

A form checks what it can see on its own (a required reason, a date not in the past); the rules
that need the database (open invoices, one open promise per invoice, amounts within what is open)
are the services', whose refusals come back onto the form (billing.forms.add_service_error).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.collections_selectors import WORKLIST_TABS
from billing.models import Invoice
from crm.models import Activity

MONEY_FIELD = {"max_digits": 18, "decimal_places": 2, "min_value": Decimal("0.01")}
DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class PromiseDateMixin:
    def clean_promised_on(self):
        promised_on = self.cleaned_data["promised_on"]
        if promised_on < timezone.localdate():
            raise ValidationError("The promised date has passed; enter the day the customer will pay.")
        return promised_on


class InvoicePromiseForm(PromiseDateMixin, forms.Form):
    """A promise on the one invoice of a worklist row. Left empty, the amount is all that is open."""

    amount = forms.DecimalField(required=False, **MONEY_FIELD)
    promised_on = forms.DateField(label="Will pay by", widget=DATE_INPUT)
    note = forms.CharField(max_length=300, required=False)


class CustomerPromiseForm(PromiseDateMixin, forms.Form):
    """A promise on one or more of the customer's open invoices (the panel's form). Left empty,
    the amount is all that is open on the chosen invoices."""

    invoices = forms.ModelMultipleChoiceField(
        queryset=Invoice.objects.none(),
        error_messages={
            "required": "Choose at least one open invoice the promise covers.",
            "invalid_choice": "One of the chosen invoices is no longer open; choose again.",
        },
    )
    amount = forms.DecimalField(required=False, **MONEY_FIELD)
    promised_on = forms.DateField(label="Will pay by", widget=DATE_INPUT)
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, open_invoices=None, **kwargs):
        super().__init__(*args, **kwargs)
        if open_invoices is not None:
            self.fields["invoices"].queryset = open_invoices

    def selected_pks(self) -> set[str]:
        """The invoice ids ticked when the form was posted (to tick them again after an error)."""
        return set(self.data.getlist("invoices")) if self.is_bound else set()


class CallForm(forms.Form):
    outcome = forms.ChoiceField(choices=Activity.Outcome.choices, label="How did the call go?")
    text = forms.CharField(max_length=5000, required=False, label="Note", widget=forms.Textarea(attrs={"rows": 2}))


class DisputeForm(forms.Form):
    reason = forms.CharField(max_length=300, label="What does the customer dispute?")


class CustomerDisputeForm(DisputeForm):
    invoice = forms.ModelChoiceField(
        queryset=Invoice.objects.none(),
        error_messages={"invalid_choice": "That invoice is no longer open or is disputed already; choose again."},
    )

    field_order = ["invoice", "reason"]

    def __init__(self, *args, open_invoices=None, **kwargs):
        super().__init__(*args, **kwargs)
        if open_invoices is not None:
            self.fields["invoice"].queryset = open_invoices


class ResolveDisputeForm(forms.Form):
    resolution = forms.CharField(max_length=1000, label="How was it resolved?")


class CancelPromiseForm(forms.Form):
    reason = forms.CharField(max_length=1000, label="Why cancel it?")


class CollectorForm(forms.Form):
    collector = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="Nobody (unassigned)",
        error_messages={"invalid_choice": "Choose someone in accounts receivable."},
    )

    def __init__(self, *args, collectors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collector"].queryset = collectors


class WorklistFilterForm(forms.Form):
    tab = forms.ChoiceField(choices=[(tab, tab) for tab in WORKLIST_TABS], required=False)
    collector = forms.ChoiceField(
        choices=[("", "Anyone's"), ("me", "Mine"), ("unassigned", "Unassigned")], required=False
    )
    currency = forms.ChoiceField(choices=[("", "Any currency")], required=False)
    min_amount = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=18, decimal_places=2, label="Open at least"
    )

    def __init__(self, *args, currencies=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [("", "Any currency")] + [(code, code) for code in currencies]
