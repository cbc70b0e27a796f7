"""How billing's records read and are written in the REST API (billing/api.py).

Input serializers only validate: the viewsets hand their `validated_data` to billing's services.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone
from django.utils.functional import cached_property
from rest_framework import serializers

from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    Product,
    PromiseToPay,
    Refund,
    TaxRate,
)
from billing.services import LineInput
from crm.serializers import VisibleCustomerField

# --- Products -----------------------------------------------------------------------------------


class ProductSerializer(serializers.ModelSerializer):
    """A product as invoice lines use it. Its cost stays out: a price list is shared with
    programs such as a web shop, a margin is not."""

    tax_rate_name = serializers.CharField(source="tax_rate.name", read_only=True, allow_null=True, default=None)
    tax_rate_percent = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "sku", "name", "unit_price", "tax_rate", "tax_rate_name", "tax_rate_percent", "is_active"]
        read_only_fields = fields

    def get_tax_rate_percent(self, product) -> str | None:
        rate = product.tax_rate.rate if product.tax_rate_id else None
        return None if rate is None else f"{rate * 100:.2f}"


# --- Billing documents -----------------------------------------------------------------------------
#
# Invoices (with lines), payments (with allocations and refunds), credit notes, promises to pay
# and the aging. Output serializers render a document as the pages show it; input serializers
# parse what a program sends with the pages' form rules (no date in the future where a form
# refuses one, the same lengths and minimums) and give the view the service's arguments. Money is
# a decimal string to the cent ("1234.50"), always beside the document's `currency`.

INVOICE_MAX_LINES = 100  # billing.invoice_forms.MAX_LINES
CREDIT_NOTE_MAX_LINES = 20  # billing.forms.CREDIT_NOTE_MAX_LINES


class Money(serializers.DecimalField):
    """An amount in a document's currency: a decimal string to the cent, e.g. "1234.50"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 18)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(coerce_to_string=True, **kwargs)


def _not_in_future(day, what: str):
    if day is not None and day > timezone.localdate():
        raise serializers.ValidationError(f"{what} cannot be in the future.")
    return day


# --- Read: lines, allocations, refunds


class InvoiceLineSerializer(serializers.ModelSerializer):
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, read_only=True)
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=4, read_only=True)
    discount_value = serializers.DecimalField(max_digits=14, decimal_places=4, read_only=True)
    subtotal = Money(read_only=True)
    discount = Money(read_only=True)
    net = Money(read_only=True)
    tax = Money(read_only=True)
    gross = Money(read_only=True)

    class Meta:
        model = InvoiceLine
        fields = [
            "position",
            "product",
            "description",
            "quantity",
            "unit_price",
            "discount_type",
            "discount_value",
            "tax_rate",
            "subtotal",
            "discount",
            "net",
            "tax",
            "gross",
        ]
        read_only_fields = fields


class CreditNoteLineSerializer(InvoiceLineSerializer):
    class Meta(InvoiceLineSerializer.Meta):
        model = CreditNoteLine


class PaymentAllocationSerializer(serializers.ModelSerializer):
    """Credit from a payment applied to an invoice."""

    amount = Money(read_only=True)
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)

    class Meta:
        model = PaymentAllocation
        fields = ["id", "payment", "invoice", "invoice_number", "amount", "allocated_on", "created_at"]
        read_only_fields = fields


class CreditNoteAllocationSerializer(serializers.ModelSerializer):
    """Credit from a credit note applied to an invoice."""

    amount = Money(read_only=True)
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)

    class Meta:
        model = CreditNoteAllocation
        fields = ["id", "credit_note", "invoice", "invoice_number", "amount", "allocated_on", "created_at"]
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):
    amount = Money(read_only=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "customer",
            "payment",
            "credit_note",
            "amount",
            "currency",
            "refunded_on",
            "method",
            "reference",
            "created_at",
        ]
        read_only_fields = fields


# --- Read: documents


class InvoiceSerializer(serializers.ModelSerializer):
    """An invoice as the invoice page shows it; `number` and `issue_date` are null on a draft."""

    net_total = Money(read_only=True)
    tax_total = Money(read_only=True)
    gross_total = Money(read_only=True)
    open_amount = Money(read_only=True, help_text="What is still owed on it, in its currency.")
    exchange_rate = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True, allow_null=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "status",
            "customer",
            "currency",
            "issue_date",
            "due_date",
            "exchange_rate",
            "net_total",
            "tax_total",
            "gross_total",
            "open_amount",
            "disputed",
            "dispute_reason",
            "disputed_at",
            "memo",
            "source",
            "voided_on",
            "settled_on",
            "created_at",
            "updated_at",
            "lines",
        ]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    """Money received, what it was applied to, and what of it was refunded."""

    amount = Money(read_only=True)
    unapplied_amount = Money(read_only=True, help_text="The customer's credit left from it.")
    exchange_rate = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True, allow_null=True)
    allocations = PaymentAllocationSerializer(many=True, read_only=True)
    refunds = RefundSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "customer",
            "received_on",
            "amount",
            "currency",
            "method",
            "reference",
            "status",
            "exchange_rate",
            "unapplied_amount",
            "failed_on",
            "created_at",
            "allocations",
            "refunds",
        ]
        read_only_fields = fields


class CreditNoteSerializer(serializers.ModelSerializer):
    net_total = Money(read_only=True)
    tax_total = Money(read_only=True)
    gross_total = Money(read_only=True)
    unapplied_amount = Money(read_only=True, help_text="The customer's credit left from it.")
    exchange_rate = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True)
    lines = CreditNoteLineSerializer(many=True, read_only=True)
    allocations = CreditNoteAllocationSerializer(many=True, read_only=True)
    refunds = RefundSerializer(many=True, read_only=True)

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "number",
            "customer",
            "invoice",
            "issue_date",
            "currency",
            "exchange_rate",
            "reason",
            "net_total",
            "tax_total",
            "gross_total",
            "unapplied_amount",
            "created_at",
            "lines",
            "allocations",
            "refunds",
        ]
        read_only_fields = fields


class PromiseToPaySerializer(serializers.ModelSerializer):
    amount = Money(read_only=True)
    paid_amount = Money(read_only=True, help_text="Paid on its invoices in time (set when it is settled).")
    invoices = serializers.SerializerMethodField(help_text="The ids of the invoices it covers.")

    class Meta:
        model = PromiseToPay
        fields = [
            "id",
            "customer",
            "invoices",
            "amount",
            "currency",
            "made_on",
            "promised_on",
            "status",
            "paid_amount",
            "settled_on",
            "note",
            "created_at",
        ]
        read_only_fields = fields

    def get_invoices(self, promise: PromiseToPay) -> list[int]:
        # From the prefetched rows (the viewset prefetches `promised_invoices`), not a query each.
        return sorted(line.invoice_id for line in promise.promised_invoices.all())


# --- Write: invoices


class LineInputSerializer(serializers.Serializer):
    """One line as a program gives it: a product (which fills in what is left out) or a
    description and a unit price, as on the invoice form."""

    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all(), required=False, allow_null=True)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=Decimal("0.001"), default=Decimal(1))
    unit_price = serializers.DecimalField(
        max_digits=14, decimal_places=4, min_value=Decimal(0), required=False, allow_null=True
    )
    discount_type = serializers.ChoiceField(choices=InvoiceLine.DiscountType.choices, default="none")
    discount_value = serializers.DecimalField(
        max_digits=14, decimal_places=4, min_value=Decimal(0), default=Decimal("0")
    )
    tax_rate = serializers.PrimaryKeyRelatedField(
        queryset=TaxRate.objects.all(),
        required=False,
        allow_null=True,
        help_text="Left out: the product's rate, or none.",
    )

    def validate(self, data):
        # An inactive product or rate stays usable on a draft that already has it (as on the page).
        kept = getattr(self.root, "kept_on_draft", {"product": set(), "tax_rate": set()})
        for name in ("product", "tax_rate"):
            chosen = data.get(name)
            if chosen is not None and not chosen.is_active and chosen.pk not in kept[name]:
                raise serializers.ValidationError({name: f"{chosen} is no longer in use; pick another."})
        if data.get("product") is None:
            errors = {}
            if not (data.get("description") or "").strip():
                errors["description"] = "Describe the line, or pick a product."
            if data.get("unit_price") is None:
                errors["unit_price"] = "Enter a unit price, or pick a product."
            if errors:
                raise serializers.ValidationError(errors)
        return data

    @staticmethod
    def line_input(data: dict) -> LineInput:
        return LineInput(
            description=(data.get("description") or "").strip(),
            quantity=data["quantity"],
            unit_price=data.get("unit_price"),
            product=data.get("product"),
            discount_type=data.get("discount_type", "none"),
            discount_value=data.get("discount_value", Decimal(0)),
            tax_rate=data.get("tax_rate"),
        )


class DraftInvoiceInputSerializer(serializers.Serializer):
    """A draft invoice: created for a customer in its currency, or a draft's new fields. A PATCH
    keeps what it leaves out (the lines as a whole); a PUT leaves the due date and memo empty."""

    customer = VisibleCustomerField(help_text="Only on create; a draft stays with its customer.")
    due_date = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="Left empty, it is set from the customer's payment terms when the invoice is issued.",
    )
    memo = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    lines = LineInputSerializer(many=True, min_length=1, max_length=INVOICE_MAX_LINES)

    def __init__(self, *args, draft: Invoice | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.draft = draft
        if draft is not None:
            self.fields.pop("customer")

    @cached_property
    def kept_on_draft(self) -> dict[str, set[int]]:
        """The products and tax rates the draft's lines use: still allowed once deactivated."""
        if self.draft is None:
            return {"product": set(), "tax_rate": set()}
        lines = list(self.draft.lines.all())
        return {
            "product": {line.product_id for line in lines if line.product_id},
            "tax_rate": {line.tax_rate_id for line in lines if line.tax_rate_id},
        }

    def validate_due_date(self, due_date):
        if due_date is not None and due_date < timezone.localdate():
            raise serializers.ValidationError("The due date cannot be in the past.")
        return due_date

    def service_arguments(self) -> dict:
        """The keyword arguments of services.create_invoice / update_draft_invoice."""
        data, draft = self.validated_data, self.draft
        kept = draft if (draft is not None and self.partial) else None
        arguments = {
            "due_date": data.get("due_date", kept.due_date if kept else None),
            "memo": data.get("memo", kept.memo if kept else ""),
        }
        if "lines" in data:
            arguments["lines"] = [LineInputSerializer.line_input(line) for line in data["lines"]]
        else:  # only a PATCH may leave the lines out (they are required otherwise)
            arguments["lines"] = [_line_input_of(line) for line in draft.lines.all()]
        if draft is None:
            arguments["customer"] = data["customer"]
        return arguments


def _line_input_of(line: InvoiceLine) -> LineInput:
    return LineInput(
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        product=line.product,
        discount_type=line.discount_type,
        discount_value=line.discount_value,
        tax_rate=line.tax_rate,
        revenue_account=line.revenue_account,
    )


class IssueInvoiceInputSerializer(serializers.Serializer):
    issue_date = serializers.DateField(
        required=False, allow_null=True, help_text="Today when left out; never in the future."
    )

    def validate_issue_date(self, day):
        return _not_in_future(day, "An issue date")


class VoidInvoiceInputSerializer(serializers.Serializer):
    voided_on = serializers.DateField(required=False, allow_null=True, help_text="Today when left out.")

    def validate_voided_on(self, day):
        return _not_in_future(day, "A void date")


class DisputeInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="What the customer disputes.")


class ResolveDisputeInputSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=2000, help_text="How the dispute was resolved.")


# --- Write: payments, credit notes, refunds


class RecordPaymentInputSerializer(serializers.Serializer):
    customer = VisibleCustomerField()
    amount = Money(min_value=Decimal("0.01"))
    currency = serializers.CharField(
        max_length=3, required=False, help_text="The customer's currency; another one is refused."
    )
    received_on = serializers.DateField()
    method = serializers.ChoiceField(choices=Payment.Method.choices)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    auto_apply = serializers.BooleanField(
        default=True, help_text="Apply it to the oldest open invoices (disputed ones are skipped)."
    )

    def validate_received_on(self, day):
        if day > timezone.localdate():
            raise serializers.ValidationError("A payment cannot have been received in the future.")
        return day


class AllocateInputSerializer(serializers.Serializer):
    """Apply credit to one open invoice of the same customer. Without an amount, as much as both
    allow: the smaller of what is open on the invoice and the credit left."""

    invoice = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.none())
    amount = Money(min_value=Decimal("0.01"), required=False, allow_null=True)

    def __init__(self, *args, credit: Payment | CreditNote | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.credit = credit
        if credit is not None:
            # The credit's customer's invoices: any other id "does not exist", as an unknown one.
            self.fields["invoice"].queryset = Invoice.objects.filter(customer_id=credit.customer_id)

    def validate(self, data):
        if data.get("amount") is None:
            data["amount"] = min(data["invoice"].open_amount, self.credit.unapplied_amount)
        return data


class RefundInputSerializer(serializers.Serializer):
    amount = Money(min_value=Decimal("0.01"))
    refunded_on = serializers.DateField(required=False, help_text="Today when left out.")
    method = serializers.ChoiceField(choices=Payment.Method.choices)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def validate_refunded_on(self, day):
        return _not_in_future(day, "A refund date")

    def validate(self, data):
        data.setdefault("refunded_on", timezone.localdate())
        return data


class CreditNoteLineInputSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=300)
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=Decimal("0.001"), default=Decimal(1))
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=4, min_value=Decimal(0))
    tax_rate = serializers.PrimaryKeyRelatedField(
        queryset=TaxRate.objects.filter(is_active=True), required=False, allow_null=True
    )


class CreditNoteInputSerializer(serializers.Serializer):
    """A credit note, issued at once: against one of the customer's issued invoices (applied to
    what is open on it) or on the customer's account."""

    customer = VisibleCustomerField()
    invoice = serializers.PrimaryKeyRelatedField(
        queryset=Invoice.objects.exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID]),
        required=False,
        allow_null=True,
        help_text="One of the customer's issued invoices (not a draft, not void).",
    )
    reason = serializers.CharField(max_length=300)
    issue_date = serializers.DateField(required=False, help_text="Today when left out.")
    lines = CreditNoteLineInputSerializer(many=True, min_length=1, max_length=CREDIT_NOTE_MAX_LINES)

    def validate_issue_date(self, day):
        return _not_in_future(day, "A credit note's date")

    def validate(self, data):
        invoice = data.get("invoice")
        if invoice is not None and invoice.customer_id != data["customer"].pk:
            raise serializers.ValidationError({"invoice": "That invoice is not this customer's."})
        return data

    def service_arguments(self) -> dict:
        data = self.validated_data
        return {
            "customer": data["customer"],
            "invoice": data.get("invoice"),
            "reason": data["reason"],
            "issue_date": data.get("issue_date") or timezone.localdate(),
            "lines": [
                LineInput(
                    description=line["description"],
                    quantity=line["quantity"],
                    unit_price=line["unit_price"],
                    tax_rate=line.get("tax_rate"),
                )
                for line in data["lines"]
            ],
        }


# --- Write: promises to pay


class PromiseInputSerializer(serializers.Serializer):
    customer = VisibleCustomerField()
    invoices = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all(), many=True, allow_empty=False)
    amount = Money(
        min_value=Decimal("0.01"),
        required=False,
        allow_null=True,
        help_text="Everything open on the invoices when left out.",
    )
    promised_on = serializers.DateField()
    made_on = serializers.DateField(required=False, allow_null=True, help_text="Today when left out.")
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def service_arguments(self) -> dict:
        data = self.validated_data
        invoices = list(data["invoices"])
        return {
            "customer": data["customer"],
            "invoices": invoices,
            "amount": data.get("amount") or sum((invoice.open_amount for invoice in invoices), Decimal("0.00")),
            "promised_on": data["promised_on"],
            "made_on": data.get("made_on"),
            "note": data["note"],
        }


class CancelPromiseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why the promise is withdrawn.")


# --- Read: the aging


class AgingBucketsSerializer(serializers.Serializer):
    current = Money(help_text="Not yet due.")
    days_1_30 = Money(source="1_30", help_text="1–30 days past due.")
    days_31_60 = Money(source="31_60", help_text="31–60 days past due.")
    days_61_90 = Money(source="61_90", help_text="61–90 days past due.")
    over_90 = Money(help_text="More than 90 days past due.")


class AgingRowSerializer(serializers.Serializer):
    """One customer's receivables on the day, in the base currency (billing.aging.CustomerAging)."""

    customer = serializers.IntegerField(source="customer_id")
    account_number = serializers.CharField()
    name = serializers.CharField()
    owner = serializers.IntegerField(source="owner_id", allow_null=True)
    owner_name = serializers.CharField()
    customer_currency = serializers.CharField(source="currency", help_text="What the customer is invoiced in.")
    buckets = AgingBucketsSerializer()
    open_total = Money()
    unapplied = Money(help_text="Unapplied credit (payments and credit notes) on the day.")
    total = Money(help_text="Open invoices less unapplied credit.")


class AgingTotalsSerializer(serializers.Serializer):
    customers = serializers.IntegerField()
    buckets = AgingBucketsSerializer()
    open_total = Money()
    unapplied = Money()
    total = Money()
