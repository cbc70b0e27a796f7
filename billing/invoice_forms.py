"""Forms for draft invoices: the invoice's own fields and a formset of lines.

They parse what a person typed; billing.services prices the lines and decides the rest. The
catalogue (active products and tax rates) is read once per request and shared by every line
form, so a page with many lines does not query once per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from billing.models import Invoice, Product, TaxRate
from billing.services import LineInput

LINE_PREFIX = "lines"
MAX_LINES = 100


@dataclass(frozen=True)
class Catalogue:
    products: dict[int, Product]
    tax_rates: dict[int, TaxRate]

    @classmethod
    def load(cls, *, lines=()) -> Catalogue:
        """Active products and tax rates (two queries), and any a draft's `lines` still use."""
        products = Product.objects.filter(Q(is_active=True) | Q(pk__in={line.product_id for line in lines}))
        rates = TaxRate.objects.filter(Q(is_active=True) | Q(pk__in={line.tax_rate_id for line in lines}))
        return cls(
            products={product.pk: product for product in products.select_related("tax_rate", "revenue_account")},
            tax_rates={rate.pk: rate for rate in rates},
        )


class ShowsErrorsMixin:
    """Marks the widgets of fields with errors (Bootstrap's is-invalid, aria-invalid)."""

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["class"] = f"{attrs.get('class', '')} is-invalid".strip()
                attrs["aria-invalid"] = "true"


class DraftInvoiceForm(ShowsErrorsMixin, forms.Form):
    due_date = forms.DateField(
        label="Due date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}),
        help_text="Leave empty to set it from the customer's payment terms when the invoice is issued.",
    )
    memo = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "class": "form-control"}),
        help_text="Printed on the invoice, e.g. a purchase order number.",
    )

    def clean_due_date(self):
        due_date = self.cleaned_data["due_date"]
        if due_date is not None and due_date < timezone.localdate():
            raise ValidationError("The due date cannot be in the past.")
        return due_date


class InvoiceLineForm(ShowsErrorsMixin, forms.Form):
    """One line: a product (which fills in what is left empty) or a description and a price."""

    product = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    description = forms.CharField(
        required=False,
        max_length=300,
        widget=forms.TextInput(
            attrs={"class": "form-control form-control-sm", "placeholder": "What was sold (or the product's name)"}
        ),
    )
    quantity = forms.DecimalField(
        max_digits=12,
        decimal_places=3,
        min_value=Decimal("0.001"),
        initial=Decimal(1),
        widget=forms.NumberInput(attrs={"class": "form-control form-control-sm text-end", "inputmode": "decimal"}),
    )
    unit_price = forms.DecimalField(
        label="Unit price",
        required=False,
        max_digits=14,
        decimal_places=4,
        min_value=0,
        widget=forms.NumberInput(
            attrs={
                "class": "form-control form-control-sm text-end",
                "inputmode": "decimal",
                "placeholder": "Product's price",
            }
        ),
    )
    tax_rate = forms.TypedChoiceField(
        label="Tax",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )

    def __init__(self, *args, catalogue: Catalogue, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalogue = catalogue
        self.fields["product"].choices = [("", "— No product —")] + [
            (product.pk, f"{product.sku} · {product.name} ({product.unit_price:,.2f})")
            for product in catalogue.products.values()
        ]
        self.fields["tax_rate"].choices = [("", "Product's rate, or none")] + [
            (rate.pk, str(rate)) for rate in catalogue.tax_rates.values()
        ]

    def clean(self):
        cleaned = super().clean()
        product_id, rate_id = cleaned.get("product"), cleaned.get("tax_rate")
        cleaned["product"] = self.catalogue.products.get(product_id) if product_id else None
        cleaned["tax_rate"] = self.catalogue.tax_rates.get(rate_id) if rate_id else None
        if cleaned["product"] is None:
            if not (cleaned.get("description") or "").strip() and "description" not in self.errors:
                self.add_error("description", "Describe the line, or pick a product.")
            if cleaned.get("unit_price") is None and "unit_price" not in self.errors:
                self.add_error("unit_price", "Enter a unit price, or pick a product.")
        return cleaned

    def line_input(self) -> LineInput:
        data = self.cleaned_data
        return LineInput(
            description=(data.get("description") or "").strip(),
            quantity=data["quantity"],
            unit_price=data.get("unit_price"),
            product=data.get("product"),
            tax_rate=data.get("tax_rate"),
        )


class BaseLineFormSet(forms.BaseFormSet):
    """Every row may be left blank (and is then ignored), existing lines included: the lines are
    written anew on each save, so there is no "initial" row that must stay."""

    def initial_form_count(self):
        return 0

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "catalogue": self.catalogue}

    def __init__(self, *args, catalogue: Catalogue, **kwargs):
        self.catalogue = catalogue
        super().__init__(*args, **kwargs)

    def filled_forms(self) -> list[InvoiceLineForm]:
        """The rows that make lines: changed and not marked for removal, in page order."""
        return [form for form in self.forms if form.has_changed() and not self._should_delete_form(form)]

    def clean(self):
        if any(self.errors):
            return
        if not self.filled_forms():
            raise ValidationError("Add at least one line: pick a product or describe the line and give its price.")

    def line_inputs(self) -> list[LineInput]:
        return [form.line_input() for form in self.filled_forms()]

    def blank_form(self, index: int) -> InvoiceLineForm:
        """An empty row numbered `index`, as the "Add a line" button adds to the page."""
        form = self.form(
            auto_id=self.auto_id,
            prefix=self.add_prefix(index),
            empty_permitted=True,
            use_required_attribute=False,
            renderer=self.renderer,
            **self.get_form_kwargs(None),
        )
        self.add_fields(form, None)
        return form


LineFormSet = forms.formset_factory(
    InvoiceLineForm,
    formset=BaseLineFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_LINES,
    validate_max=True,
    absolute_max=MAX_LINES,
)


def _plain(amount: Decimal) -> Decimal:
    """2.000 as 2 and 2.500 as 2.5, for a form field (never 1E+2)."""
    return amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount.normalize()


def line_formset(data=None, *, catalogue: Catalogue, invoice: Invoice | None = None, lines=None, add_rows: int = 0):
    """The lines formset: bound to `data`, or showing the invoice's `lines` (one empty row for a new
    invoice). `add_rows` more empty rows when the page is shown again after "Add a line" without
    JavaScript."""
    if data is not None:
        if add_rows:
            data = data.copy()
            total_key = f"{LINE_PREFIX}-TOTAL_FORMS"
            data[total_key] = str(min(int(data.get(total_key) or 0) + add_rows, MAX_LINES))
        return LineFormSet(data, prefix=LINE_PREFIX, catalogue=catalogue)
    initial = [
        {
            "product": line.product_id,
            "description": line.description,
            "quantity": _plain(line.quantity),
            "unit_price": _plain(line.unit_price),
            "tax_rate": line.tax_rate_id,
        }
        for line in (lines or [])
    ]
    formset = LineFormSet(initial=initial, prefix=LINE_PREFIX, catalogue=catalogue)
    formset.extra = len(initial) or 1
    return formset


def add_service_error(form: forms.Form, error: Exception) -> None:
    """A refused write (nothing was changed): a field's error where the service names a field of
    this form, otherwise above the form."""
    if hasattr(error, "error_dict"):
        for name, messages in error.message_dict.items():
            form.add_error(name if name in form.fields else None, messages)
    elif hasattr(error, "messages"):
        form.add_error(None, error.messages)
    else:
        form.add_error(None, str(error))
