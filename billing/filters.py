"""List filters of the billing API (/api/v1/): django-filter FilterSets over querysets that
crm.access has already narrowed to the customers the user may see.

`?customer=<id>` names a customer: one out of reach answers 404, as its page would, rather than
an empty list — the same answer as for an id that does not exist, so nothing leaks either way.
"""

from __future__ import annotations

import django_filters
from django import forms
from rest_framework.exceptions import NotFound

from billing.models import CreditNote, Invoice, Payment, PromiseToPay
from crm import access


class IdFilter(django_filters.NumberFilter):
    """A row's id: a whole number (so the schema says integer)."""

    field_class = forms.IntegerField


class TrueOrFalseField(forms.NullBooleanField):
    """`true` or `false` (the schema's boolean); anything else is refused, not read as "any"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise forms.ValidationError("Use true or false.", code="invalid")
        return text == "true"

    def validate(self, value):
        pass


class TrueOrFalseFilter(django_filters.BooleanFilter):
    field_class = TrueOrFalseField

    def __init__(self, *args, **kwargs):
        # The text as sent: a select widget would read anything unknown as "any" before the field.
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class CustomerFilter(IdFilter):
    """The documents of one customer the user may see; 404 for any other id."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "A customer's id; one out of reach answers 404.")
        super().__init__(field_name="customer", **kwargs)

    def filter(self, queryset, value):
        if value in (None, ""):
            return queryset
        request = self.parent.request
        if not access.visible_customers(request.user).filter(pk=value).exists():
            raise NotFound("No customer matches the given query.")
        return queryset.filter(customer_id=value)


def _currency(queryset, name, value):
    return queryset.filter(**{name: value.upper()}) if value else queryset


class InvoiceFilter(django_filters.FilterSet):
    customer = CustomerFilter()
    status = django_filters.MultipleChoiceFilter(choices=Invoice.Status.choices, help_text="Repeat for several.")
    currency = django_filters.CharFilter(method=_currency, help_text="ISO 4217 code, e.g. EUR.")
    number = django_filters.CharFilter(field_name="number")
    disputed = TrueOrFalseFilter()
    issued_from = django_filters.DateFilter(field_name="issue_date", lookup_expr="gte")
    issued_to = django_filters.DateFilter(field_name="issue_date", lookup_expr="lte")
    due_from = django_filters.DateFilter(field_name="due_date", lookup_expr="gte")
    due_to = django_filters.DateFilter(field_name="due_date", lookup_expr="lte")
    gross_total_min = django_filters.NumberFilter(field_name="gross_total", lookup_expr="gte")
    gross_total_max = django_filters.NumberFilter(field_name="gross_total", lookup_expr="lte")
    open_amount_min = django_filters.NumberFilter(field_name="open_amount", lookup_expr="gte")
    open_amount_max = django_filters.NumberFilter(field_name="open_amount", lookup_expr="lte")

    class Meta:
        model = Invoice
        fields = []


class PaymentFilter(django_filters.FilterSet):
    customer = CustomerFilter()
    status = django_filters.MultipleChoiceFilter(choices=Payment.Status.choices, help_text="Repeat for several.")
    method = django_filters.MultipleChoiceFilter(choices=Payment.Method.choices, help_text="Repeat for several.")
    currency = django_filters.CharFilter(method=_currency, help_text="ISO 4217 code, e.g. EUR.")
    received_from = django_filters.DateFilter(field_name="received_on", lookup_expr="gte")
    received_to = django_filters.DateFilter(field_name="received_on", lookup_expr="lte")
    amount_min = django_filters.NumberFilter(field_name="amount", lookup_expr="gte")
    amount_max = django_filters.NumberFilter(field_name="amount", lookup_expr="lte")
    unapplied = TrueOrFalseFilter(
        method="filter_unapplied", help_text="true: only payments with credit left to apply or refund."
    )

    class Meta:
        model = Payment
        fields = []

    def filter_unapplied(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(unapplied_amount__gt=0) if value else queryset.filter(unapplied_amount=0)


class CreditNoteFilter(django_filters.FilterSet):
    customer = CustomerFilter()
    invoice = IdFilter(field_name="invoice_id")
    currency = django_filters.CharFilter(method=_currency, help_text="ISO 4217 code, e.g. EUR.")
    issued_from = django_filters.DateFilter(field_name="issue_date", lookup_expr="gte")
    issued_to = django_filters.DateFilter(field_name="issue_date", lookup_expr="lte")
    gross_total_min = django_filters.NumberFilter(field_name="gross_total", lookup_expr="gte")
    gross_total_max = django_filters.NumberFilter(field_name="gross_total", lookup_expr="lte")
    unapplied = TrueOrFalseFilter(
        method="filter_unapplied", help_text="true: only credit notes with credit left to apply or refund."
    )

    class Meta:
        model = CreditNote
        fields = []

    def filter_unapplied(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(unapplied_amount__gt=0) if value else queryset.filter(unapplied_amount=0)


class PromiseFilter(django_filters.FilterSet):
    customer = CustomerFilter()
    status = django_filters.MultipleChoiceFilter(choices=PromiseToPay.Status.choices, help_text="Repeat for several.")
    invoice = IdFilter(field_name="promised_invoices__invoice_id", distinct=True)
    promised_from = django_filters.DateFilter(field_name="promised_on", lookup_expr="gte")
    promised_to = django_filters.DateFilter(field_name="promised_on", lookup_expr="lte")

    class Meta:
        model = PromiseToPay
        fields = []
