"""Forms for the billing panel and the write-off desk: they parse what a person typed;
billing.services decides the rest."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.errors import IdempotencyConflict
from billing.models import CreditNote, Invoice, Payment, TaxRate, WriteOff
from billing.services import LineInput
from ledger.errors import LedgerError, PeriodLocked

MONEY_FIELD = {"max_digits": 18, "decimal_places": 2, "min_value": Decimal("0.01")}
REASON_LENGTH = WriteOff._meta.get_field("reason").max_length
CREDIT_NOTE_REASON_LENGTH = CreditNote._meta.get_field("reason").max_length
CREDIT_NOTE_LINE_PREFIX = "lines"
CREDIT_NOTE_LINES_SHOWN = 3
CREDIT_NOTE_MAX_LINES = 20


def new_idempotency_key(kind: str = "payment") -> str:
    return f"{kind}-form:{uuid.uuid4()}"


def _not_in_future(day, what: str):
    if day > timezone.localdate():
        raise ValidationError(f"{what} cannot be in the future.")
    return day


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


class AllocateCreditForm(forms.Form):
    """Apply some of a payment's or a credit note's unapplied credit to one open invoice. Left
    empty, the amount is as much as both allow: the smaller of the invoice's open amount and the
    credit left."""

    invoice = forms.ModelChoiceField(queryset=Invoice.objects.none())
    amount = forms.DecimalField(required=False, **MONEY_FIELD)

    def __init__(self, *args, credit: Payment | CreditNote, invoices, **kwargs):
        super().__init__(*args, **kwargs)
        self.credit = credit
        self.fields["invoice"].queryset = invoices
        self.fields["invoice"].error_messages["invalid_choice"] = (
            f"That invoice is no longer open for this {self.credit_kind}; pick one from the list."
        )

    @property
    def credit_kind(self) -> str:
        return "payment" if isinstance(self.credit, Payment) else "credit note"

    def clean(self):
        cleaned = super().clean()
        invoice = cleaned.get("invoice")
        if invoice is not None and cleaned.get("amount") is None:
            cleaned["amount"] = min(invoice.open_amount, self.credit.unapplied_amount)
        return cleaned


class AllocatePaymentForm(AllocateCreditForm):
    def __init__(self, *args, payment: Payment, invoices, **kwargs):
        super().__init__(*args, credit=payment, invoices=invoices, **kwargs)

    @property
    def payment(self) -> Payment:
        return self.credit


class RefundForm(forms.Form):
    """Pay back unapplied credit of one payment or credit note. The hidden key makes a resent
    form pay nothing twice (billing.services.refund_credit returns the first refund)."""

    amount = forms.DecimalField(**MONEY_FIELD)
    refunded_on = forms.DateField(label="Refunded on", widget=forms.DateInput(attrs={"type": "date"}))
    method = forms.ChoiceField(choices=Payment.Method.choices, initial=Payment.Method.BANK_TRANSFER)
    reference = forms.CharField(max_length=100, required=False)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, credit: Payment | CreditNote, **kwargs):
        super().__init__(*args, **kwargs)
        self.credit = credit
        if not self.is_bound:
            self.initial.setdefault("amount", credit.unapplied_amount)
            self.initial.setdefault("refunded_on", timezone.localdate())
            self.initial.setdefault("idempotency_key", new_idempotency_key("refund"))

    def clean_refunded_on(self):
        return _not_in_future(self.cleaned_data["refunded_on"], "A refund date")


class CreditNoteForm(forms.Form):
    """A credit note's own fields; its lines are a CreditNoteLineFormSet. The hidden token lets
    the view tell a resent form from a new credit note (issue_credit_note takes no key)."""

    invoice = forms.ModelChoiceField(
        queryset=Invoice.objects.none(),
        required=False,
        empty_label="None: a credit on the customer's account",
        label="Against invoice",
    )
    reason = forms.CharField(max_length=CREDIT_NOTE_REASON_LENGTH)
    issue_date = forms.DateField(label="Issue date", widget=forms.DateInput(attrs={"type": "date"}))
    form_token = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, invoices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invoice"].queryset = invoices
        self.fields["invoice"].error_messages["invalid_choice"] = (
            "That invoice cannot be credited (a draft, void or another customer's); pick one from the list."
        )
        if not self.is_bound:
            self.initial.setdefault("issue_date", timezone.localdate())
            self.initial.setdefault("form_token", new_idempotency_key("credit-note"))

    def clean_issue_date(self):
        return _not_in_future(self.cleaned_data["issue_date"], "A credit note's date")


class CreditNoteLineForm(forms.Form):
    description = forms.CharField(max_length=300)
    quantity = forms.DecimalField(max_digits=12, decimal_places=3, min_value=Decimal("0.001"), initial=Decimal(1))
    unit_price = forms.DecimalField(label="Unit price", max_digits=14, decimal_places=4, min_value=Decimal(0))
    tax_rate = forms.ModelChoiceField(
        queryset=TaxRate.objects.none(), required=False, empty_label="No tax", label="Tax rate"
    )

    def __init__(self, *args, tax_rates=None, **kwargs):
        super().__init__(*args, **kwargs)
        if tax_rates is not None:
            self.fields["tax_rate"].queryset = tax_rates

    def has_changed(self) -> bool:
        # A row left as shown (quantity 1, nothing else) is a spare row, not a line.
        return any(self[name].value() not in (None, "") for name in ("description", "unit_price", "tax_rate"))

    def line_input(self) -> LineInput:
        data = self.cleaned_data
        return LineInput(
            description=data["description"],
            quantity=data["quantity"],
            unit_price=data["unit_price"],
            tax_rate=data["tax_rate"],
        )


class BaseCreditNoteLineFormSet(forms.BaseFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        if not self.lines():
            raise ValidationError("Enter at least one line: what is credited and for how much.")

    def lines(self) -> list[CreditNoteLineForm]:
        return [form for form in self.forms if form.has_changed() and form.is_valid()]

    def line_inputs(self) -> list[LineInput]:
        return [form.line_input() for form in self.lines()]


CreditNoteLineFormSet = forms.formset_factory(
    CreditNoteLineForm,
    formset=BaseCreditNoteLineFormSet,
    extra=CREDIT_NOTE_LINES_SHOWN,
    max_num=CREDIT_NOTE_MAX_LINES,
    validate_max=True,
    absolute_max=CREDIT_NOTE_MAX_LINES,
)


def credit_note_lines(data=None, *, tax_rates, add_row: bool = False) -> BaseCreditNoteLineFormSet:
    """The line formset, bound to `data` if given; `add_row` shows one more empty row (the
    "Another line" button, with or without JavaScript)."""
    formset = CreditNoteLineFormSet(data, prefix=CREDIT_NOTE_LINE_PREFIX, form_kwargs={"tax_rates": tax_rates})
    if add_row and data is not None:
        total = min(formset.total_form_count() + 1, CREDIT_NOTE_MAX_LINES)
        data = data.copy()
        data[f"{CREDIT_NOTE_LINE_PREFIX}-TOTAL_FORMS"] = str(total)
        data.setdefault(f"{CREDIT_NOTE_LINE_PREFIX}-{total - 1}-quantity", "1")  # as a new row shows it
        formset = CreditNoteLineFormSet(data, prefix=CREDIT_NOTE_LINE_PREFIX, form_kwargs={"tax_rates": tax_rates})
    return formset


class WriteOffRequestForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the debt is bad, for the Finance Admin who decides.",
    )


class VoidInvoiceForm(forms.Form):
    voided_on = forms.DateField(label="Void date", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("voided_on", timezone.localdate())

    def clean_voided_on(self):
        return _not_in_future(self.cleaned_data["voided_on"], "A void date")


class InvoiceTermsForm(forms.Form):
    """An issued invoice's due date and memo, shown as they stand. Whether the new due date fits
    the invoice (not before its issue date, not a void invoice) is billing.services'
    update_issued_invoice's to say."""

    due_date = forms.DateField(label="Due date", widget=forms.DateInput(attrs={"type": "date"}))
    # Left empty, the memo is cleared: the field always says what the memo is to be. Not stripped,
    # so that saving a memo as shown (one synced from a package may end in a newline) changes
    # nothing and sends nothing back to the package.
    memo = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, invoice: Invoice, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("due_date", invoice.due_date)
            self.initial.setdefault("memo", invoice.memo)

    def clean_memo(self) -> str:
        # Browsers send a textarea's line breaks as CRLF whatever the memo was stored with.
        return self.cleaned_data["memo"].replace("\r\n", "\n")


class ApproveWriteOffForm(forms.Form):
    written_off_on = forms.DateField(label="Write-off date", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("written_off_on", timezone.localdate())

    def clean_written_off_on(self):
        return _not_in_future(self.cleaned_data["written_off_on"], "A write-off date")


class RejectWriteOffForm(forms.Form):
    # Kept as the change reason of the write-off's history row (the write-off has no field for it),
    # so as long as that holds.
    reason = forms.CharField(
        max_length=WriteOff.history.model._meta.get_field("history_change_reason").max_length,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Told to whoever asked, and kept on the customer's timeline.",
    )


def add_service_error(
    form: forms.Form, error: Exception, *, period_field: str | None = None, document: str = "payment"
) -> None:
    """Show a refused write (nothing was changed) on the form: a field's error where the service
    names a field of this form, otherwise above the form. A locked period is the date's fault, so
    with `period_field` its reason goes next to that date field."""
    if isinstance(error, IdempotencyConflict):
        form.add_error(
            None,
            f"This form was already used to record a different {document}. Check the {document}s below; "
            f"submitting again records a new {document}.",
        )
        return
    if isinstance(error, PeriodLocked) and period_field in form.fields:
        form.add_error(period_field, str(error))
    elif isinstance(error, LedgerError):
        form.add_error(None, str(error))
    elif hasattr(error, "error_dict"):
        for name, messages in error.message_dict.items():
            form.add_error(name if name in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)
