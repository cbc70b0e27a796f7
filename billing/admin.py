"""Billing in the admin console, for Finance Admins.

Business documents are written only by billing.services, here as on the pages: an invoice or
credit note is created with its lines through the service, a payment is recorded, a refund paid
and a write-off requested through theirs, and issuing, voiding, clearing, failing and deciding on
write-offs are admin actions that call the service. Once a document exists the admin only shows
it (no service edits a posted document, and the ledger behind it is append-only). Reference data
without ledger effect (products, tax rates, recurring templates) is edited here directly; the
documents made from it copy what they use when a service creates them.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from billing import pricing, services
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    PaymentAllocation,
    Product,
    RecurringInvoice,
    RecurringInvoiceLine,
    Refund,
    TaxRate,
    WriteOff,
)
from ledger.admin import AuditedAdmin, ReadOnlyAdminMixin, ReadOnlyInline

LINE_INPUT_FIELDS = [
    "product",
    "description",
    "quantity",
    "unit_price",
    "discount_type",
    "discount_value",
    "tax_rate",
    "revenue_account",
]


def _new_key(prefix: str) -> str:
    return f"admin-{prefix}:{uuid.uuid4()}"


# --- Lines ------------------------------------------------------------------------------------


class LineForm(forms.ModelForm):
    """A line as typed; what is left out comes from the product (as billing.services does it).
    Priced here with billing.pricing so that a line the service would refuse is refused on the
    form, with the field to correct."""

    fill_from_product = ("description", "unit_price", "revenue_account")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.fill_from_product:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        cleaned = super().clean()
        product = cleaned.get("product")
        if product is None:
            if "unit_price" in self.fields and cleaned.get("unit_price") is None and "unit_price" not in self.errors:
                self.add_error("unit_price", "Give a unit price or pick a product.")
            if "description" in self.fields and not cleaned.get("description"):
                self.add_error("description", "Describe the line or pick a product.")
        unit_price = cleaned.get("unit_price")
        unit_price = unit_price if unit_price is not None else getattr(product, "unit_price", None)
        quantity = cleaned.get("quantity")
        if unit_price is None or quantity is None or self.errors:
            return cleaned
        tax_rate = cleaned.get("tax_rate") or getattr(product, "tax_rate", None)
        try:
            pricing.price_line(
                quantity=quantity,
                unit_price=unit_price,
                discount_type=cleaned.get("discount_type") or "none",
                discount_value=cleaned.get("discount_value") or 0,
                tax_rate=tax_rate.rate if tax_rate else None,
                tax_inclusive=bool(tax_rate and tax_rate.inclusive),
            )
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        return cleaned


class TemplateLineForm(LineForm):
    # A recurring template's line is copied as it is into each invoice, so it states everything.
    fill_from_product = ()


def _line_inputs(formset) -> list[services.LineInput]:
    lines = []
    for line_form in formset.forms:
        if not line_form.has_changed() or line_form in formset.deleted_forms:
            continue
        data = line_form.cleaned_data
        lines.append(
            services.LineInput(
                description=data.get("description") or "",
                quantity=data["quantity"],
                unit_price=data.get("unit_price"),
                product=data.get("product"),
                discount_type=data.get("discount_type") or "none",
                discount_value=data.get("discount_value") or 0,
                tax_rate=data.get("tax_rate"),
                revenue_account=data.get("revenue_account"),
            )
        )
    return lines


class DocumentLineInline(admin.TabularInline):
    """Lines are entered with a new document and shown read-only once it exists: no service
    changes the lines of an existing document."""

    form = LineForm
    extra = 0
    min_num = 1

    def get_formset(self, request, obj=None, **kwargs):
        # The admin shows min_num forms but does not hold a POST to it unless told to.
        return super().get_formset(request, obj, validate_min=obj is None, **kwargs)

    def get_fields(self, request, obj=None):
        return LINE_INPUT_FIELDS if obj is None else [*LINE_INPUT_FIELDS, "net", "tax", "gross"]

    def get_min_num(self, request, obj=None, **kwargs):
        return 0 if obj is not None else self.min_num

    def has_add_permission(self, request, obj=None):
        return obj is None and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return obj is None and super().has_delete_permission(request, obj)


class DocumentAdmin(AuditedAdmin):
    """A document created through its service together with its lines, then shown read-only.

    The admin saves the parent form before the inlines; the service needs both at once, so the
    parent is not saved in save_model but created in save_related, with the lines."""

    def save_model(self, request, obj, form, change):
        if change:
            raise NotImplementedError(f"{type(self).__name__} changes documents through services only.")

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            # The admin's change message reads these lists, which formset.save() would have filled.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if change:
            return
        lines = _line_inputs(next(formset for formset in formsets if formset.model is self.line_model))
        created = self.create_document(request, form.cleaned_data, lines)
        form.instance.pk = created.pk
        form.instance.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False


# --- Reference data ---------------------------------------------------------------------------


@admin.register(TaxRate)
class TaxRateAdmin(AuditedAdmin):
    """A rate in use keeps its percentage: invoice lines point at it, and reports group by it.
    For a new percentage add a new rate and deactivate the old one."""

    list_display = ["name", "rate", "inclusive", "liability_account", "is_active"]
    list_filter = ["inclusive", "is_active"]
    list_select_related = ["liability_account"]
    search_fields = ["name"]

    def get_fixed_fields(self, request, obj=None):
        return ["rate", "inclusive", "liability_account"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Product)
class ProductAdmin(AuditedAdmin):
    """A product's price is a default: each invoice line copies it when the line is created."""

    list_display = ["sku", "name", "unit_price", "tax_rate", "revenue_account", "unit_cost", "is_active"]
    list_filter = ["is_active", "tax_rate"]
    list_select_related = ["tax_rate", "revenue_account"]
    search_fields = ["sku", "name"]

    def has_delete_permission(self, request, obj=None):
        return False  # invoice lines refer to products; deactivate one instead


@admin.register(NumberSequence)
class NumberSequenceAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    """Gapless series, advanced only by the service that issues a document."""

    list_display = ["series", "prefix", "next_number"]


# --- Invoices ---------------------------------------------------------------------------------


class InvoiceLineInline(DocumentLineInline):
    model = InvoiceLine


class InvoiceForm(forms.ModelForm):
    class Meta:
        model = Invoice
        fields = ["customer", "due_date", "memo", "disputed", "dispute_reason"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("disputed") and not (cleaned.get("dispute_reason") or "").strip():
            self.add_error("dispute_reason", "Say what the customer disputes.")
        return cleaned


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdmin):
    """Invoices: created as drafts with their lines (billing.services.create_invoice), issued and
    voided by actions; on an existing invoice only the dispute flag changes (set_dispute)."""

    form = InvoiceForm
    line_model = InvoiceLine
    inlines = [InvoiceLineInline]
    list_display = [
        "__str__",
        "customer",
        "status",
        "issue_date",
        "due_date",
        "gross_total",
        "open_amount",
        "currency",
        "disputed",
    ]
    list_filter = ["status", "disputed", "currency", "source"]
    list_select_related = ["customer"]
    search_fields = ["number", "customer__display_name", "customer__account_number", "external_id"]
    date_hierarchy = "issue_date"
    autocomplete_fields = ["customer"]
    actions = ["issue_drafts", "void_invoices"]

    add_fieldsets = [(None, {"fields": ["customer", "due_date", "memo"]})]
    change_fieldsets = [
        (None, {"fields": ["number", "status", "customer", "currency", "issue_date", "due_date", "memo"]}),
        (
            "Amounts",
            {"fields": ["net_total", "tax_total", "gross_total", "open_amount", "exchange_rate", "open_base"]},
        ),
        ("Dispute", {"fields": ["disputed", "dispute_reason"]}),
        (
            "Origin",
            {
                "fields": ["source", "external_system", "external_id", "recurring_template", "period_start"],
                "classes": ["collapse"],
            },
        ),
        ("Record", {"fields": ["created_by", "created_at", "voided_on", "issue_entry"], "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        return self.change_fieldsets if obj is not None else self.add_fieldsets

    def get_fixed_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            name
            for _, options in self.change_fieldsets
            for name in options["fields"]
            if name not in ("disputed", "dispute_reason")
        ]

    def create_document(self, request, data, lines):
        return services.create_invoice(
            actor=request.user, customer=data["customer"], lines=lines, due_date=data["due_date"], memo=data["memo"]
        )

    def save_model(self, request, obj, form, change):
        if change and {"disputed", "dispute_reason"} & set(form.changed_data):
            services.set_dispute(
                actor=request.user,
                invoice=obj,
                disputed=form.cleaned_data["disputed"],
                reason=form.cleaned_data["dispute_reason"],
            )

    @admin.action(description="Issue the selected drafts (number and post them)", permissions=["issue"])
    def issue_drafts(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda invoice: services.issue_invoice(actor=request.user, invoice=invoice),
            "Invoices issued",
        )

    @admin.action(description="Void the selected invoices (reverse their posting)", permissions=["void"])
    def void_invoices(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda invoice: services.void_invoice(actor=request.user, invoice=invoice),
            "Invoices voided",
        )

    def has_issue_permission(self, request):
        return request.user.has_perm("billing.issue_invoice")

    def has_void_permission(self, request):
        return request.user.has_perm("billing.void_invoice")


# --- Payments and allocations -----------------------------------------------------------------


class PaymentAllocationInline(ReadOnlyInline):
    model = PaymentAllocation
    fields = ["invoice", "amount", "allocated_on", "invoice_base", "credit_base", "created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice", "created_by")


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["amount", "refunded_on", "method", "reference", "bank_base", "created_by"]
    fk_name = "payment"


class PaymentAddForm(forms.ModelForm):
    status = forms.ChoiceField(
        choices=[(Payment.Status.CLEARED, "Cleared (received)"), (Payment.Status.PENDING, "Pending (on its way)")],
        initial=Payment.Status.CLEARED,
    )
    auto_apply = forms.BooleanField(label="Apply automatically to the oldest invoices", required=False, initial=True)

    class Meta:
        model = Payment
        fields = ["customer", "amount", "received_on", "method", "reference", "status", "idempotency_key"]
        widgets = {"idempotency_key": forms.HiddenInput}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "idempotency_key" in self.fields:  # absent when the form only shows a saved payment
            self.fields["idempotency_key"].required = True
            if not self.is_bound:
                self.initial["idempotency_key"] = _new_key("payment")


@admin.register(Payment)
class PaymentAdmin(AuditedAdmin):
    """Payments are recorded through billing.services.record_payment and then only shown;
    clearing, failing and auto-applying are actions that call their services."""

    list_display = [
        "received_on",
        "customer",
        "amount",
        "currency",
        "method",
        "status",
        "unapplied_amount",
        "reference",
    ]
    list_filter = ["status", "method", "currency"]
    list_select_related = ["customer"]
    search_fields = ["reference", "customer__display_name", "customer__account_number", "external_id"]
    date_hierarchy = "received_on"
    autocomplete_fields = ["customer"]
    inlines = [PaymentAllocationInline, RefundInline]
    actions = ["clear_payments", "fail_payments", "auto_apply_payments"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PaymentAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return [
                "customer",
                "amount",
                "received_on",
                "method",
                "reference",
                "status",
                "auto_apply",
                "idempotency_key",
            ]
        return super().get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        payment = services.record_payment(
            actor=request.user,
            customer=data["customer"],
            amount=data["amount"],
            received_on=data["received_on"],
            method=data["method"],
            reference=data["reference"],
            status=data["status"],
            auto_apply=data["auto_apply"],
            idempotency_key=data["idempotency_key"],
        )
        obj.pk = payment.pk
        obj.refresh_from_db()

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_process_permission(self, request):
        return request.user.has_perm("billing.change_payment")

    def has_apply_permission(self, request):
        return request.user.has_perm("billing.add_paymentallocation")

    @admin.action(description="Mark the selected pending payments as cleared (post them)", permissions=["process"])
    def clear_payments(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda payment: services.clear_payment(actor=request.user, payment=payment),
            "Payments cleared",
        )

    @admin.action(description="Mark the selected payments as failed (bounced)", permissions=["process"])
    def fail_payments(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda payment: services.fail_payment(actor=request.user, payment=payment),
            "Payments marked failed",
        )

    @admin.action(description="Apply the selected payments' credit to the oldest invoices", permissions=["apply"])
    def auto_apply_payments(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda payment: services.auto_allocate(actor=request.user, payment=payment),
            "Payments applied",
        )


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    """Allocations are made by billing.services (on the customer page or by auto-apply)."""

    list_display = ["allocated_on", "payment", "invoice", "amount", "invoice_base", "credit_base"]
    list_select_related = ["payment", "invoice"]
    search_fields = ["invoice__number", "payment__reference"]
    date_hierarchy = "allocated_on"


# --- Credit notes, refunds, write-offs --------------------------------------------------------


class CreditNoteLineInline(DocumentLineInline):
    model = CreditNoteLine


class CreditNoteAllocationInline(ReadOnlyInline):
    model = CreditNoteAllocation
    fields = ["invoice", "amount", "allocated_on", "invoice_base", "credit_base", "created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice", "created_by")


class CreditNoteForm(forms.ModelForm):
    class Meta:
        model = CreditNote
        fields = ["customer", "invoice", "reason", "issue_date"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "issue_date" in self.fields:
            self.fields["issue_date"].required = False
            self.fields["issue_date"].help_text = "Today if left empty."

    def clean(self):
        cleaned = super().clean()
        invoice, customer = cleaned.get("invoice"), cleaned.get("customer")
        if invoice is not None and customer is not None and invoice.customer_id != customer.pk:
            self.add_error("invoice", f"Invoice {invoice} belongs to another customer.")
        return cleaned


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAdmin):
    """Credit notes are issued with their lines by billing.services.issue_credit_note (against an
    invoice it is applied to what is open on it) and then only shown."""

    form = CreditNoteForm
    line_model = CreditNoteLine
    list_display = ["number", "customer", "invoice", "issue_date", "gross_total", "unapplied_amount", "currency"]
    list_filter = ["currency"]
    list_select_related = ["customer", "invoice"]
    search_fields = ["number", "customer__display_name", "invoice__number"]
    date_hierarchy = "issue_date"
    autocomplete_fields = ["customer", "invoice"]

    def get_inlines(self, request, obj):
        return [CreditNoteLineInline] if obj is None else [CreditNoteLineInline, CreditNoteAllocationInline]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["customer", "invoice", "reason", "issue_date"]
        return [
            "number",
            "customer",
            "invoice",
            "issue_date",
            "currency",
            "reason",
            "net_total",
            "tax_total",
            "gross_total",
            "unapplied_amount",
            "exchange_rate",
            "created_by",
            "created_at",
        ]

    def create_document(self, request, data, lines):
        return services.issue_credit_note(
            actor=request.user,
            customer=data["customer"],
            invoice=data["invoice"],
            reason=data["reason"],
            issue_date=data["issue_date"],
            lines=lines,
        )

    def has_change_permission(self, request, obj=None):
        return False


class RefundForm(forms.ModelForm):
    class Meta:
        model = Refund
        fields = ["payment", "credit_note", "amount", "refunded_on", "method", "reference", "idempotency_key"]
        widgets = {"idempotency_key": forms.HiddenInput}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "idempotency_key" in self.fields:  # absent when the form only shows a saved refund
            self.fields["idempotency_key"].required = True
            if not self.is_bound:
                self.initial["idempotency_key"] = _new_key("refund")


@admin.register(Refund)
class RefundAdmin(AuditedAdmin):
    """Refunds are paid out of one payment's or credit note's unapplied credit by
    billing.services.refund_credit, then only shown."""

    form = RefundForm
    list_display = ["refunded_on", "customer", "amount", "currency", "method", "payment", "credit_note"]
    list_filter = ["method", "currency"]
    list_select_related = ["customer", "payment", "credit_note"]
    search_fields = ["reference", "customer__display_name"]
    date_hierarchy = "refunded_on"
    autocomplete_fields = ["payment", "credit_note"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        refund = services.refund_credit(
            actor=request.user,
            payment=data["payment"],
            credit_note=data["credit_note"],
            amount=data["amount"],
            refunded_on=data["refunded_on"],
            method=data["method"],
            reference=data["reference"],
            idempotency_key=data["idempotency_key"],
        )
        obj.pk = refund.pk
        obj.refresh_from_db()

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WriteOff)
class WriteOffAdmin(AuditedAdmin):
    """Bad debt: requested here (billing.services.request_write_off) and approved or rejected by
    another Finance Admin with the actions, which post it through the services."""

    fields = ["invoice", "reason"]
    list_display = ["invoice", "status", "reason", "requested_by", "requested_at", "decided_by", "amount"]
    list_filter = ["status"]
    list_select_related = ["invoice", "requested_by", "decided_by"]
    search_fields = ["invoice__number", "reason"]
    autocomplete_fields = ["invoice"]
    actions = ["approve_write_offs", "reject_write_offs"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields
        return [
            "invoice",
            "reason",
            "status",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "written_off_on",
            "amount",
            "base_amount",
            "entry",
        ]

    def save_model(self, request, obj, form, change):
        write_off = services.request_write_off(
            actor=request.user, invoice=form.cleaned_data["invoice"], reason=form.cleaned_data["reason"]
        )
        obj.pk = write_off.pk
        obj.refresh_from_db()

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request):
        return request.user.has_perm("billing.approve_writeoff")

    @admin.action(description="Approve the selected write-offs (post them as bad debt)", permissions=["approve"])
    def approve_write_offs(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda write_off: services.approve_write_off(actor=request.user, write_off=write_off),
            "Write-offs approved",
        )

    @admin.action(description="Reject the selected write-offs", permissions=["approve"])
    def reject_write_offs(self, request, queryset):
        self.run_service_action(
            request,
            queryset.order_by("pk"),
            lambda write_off: services.reject_write_off(actor=request.user, write_off=write_off),
            "Write-offs rejected",
        )


# --- Recurring invoices -----------------------------------------------------------------------


class RecurringInvoiceLineInline(admin.TabularInline):
    model = RecurringInvoiceLine
    form = TemplateLineForm
    fields = LINE_INPUT_FIELDS
    extra = 1


@admin.register(RecurringInvoice)
class RecurringInvoiceAdmin(AuditedAdmin):
    """A template, edited here directly: it books nothing itself. Each period is billed by
    billing.services (create_invoice, issue_invoice), which copies the lines as they are then;
    the database allows one invoice per template and period whatever next_date says."""

    list_display = ["name", "customer", "interval", "next_date", "end_date", "is_active"]
    list_filter = ["interval", "is_active"]
    list_select_related = ["customer"]
    search_fields = ["name", "customer__display_name"]
    autocomplete_fields = ["customer"]
    fields = ["customer", "name", "interval", "next_date", "end_date", "is_active", "memo"]
    inlines = [RecurringInvoiceLineInline]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return False  # its invoices refer to it; deactivate it instead
