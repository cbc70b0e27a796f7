"""Products, invoices, payments, credit notes, refunds and write-offs.

Amounts are stored twice where the ledger needs it: in the document's currency (what the
customer sees) and in the base currency at the document's booking rate (what the ledger holds).
Open balances and unapplied credit are kept exact by billing.services inside the transaction that
changes them, and checked against the ledger by `manage.py ledger_check`.

Rounding rule (docs/ledger.md): each line is rounded on its own, half up to the cent —
subtotal = quantity × unit price; discount; tax on the discounted amount — and document totals
are the sums of the rounded lines, never rounded again.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from config.audit import audit_history
from ledger.currency import validate_currency_code

MONEY = {"max_digits": 18, "decimal_places": 2}
ZERO = Decimal("0.00")


class TaxRate(models.Model):
    name = models.CharField(max_length=100, unique=True)
    rate = models.DecimalField(max_digits=7, decimal_places=4, help_text="As a fraction: 0.2000 for 20%.")
    inclusive = models.BooleanField(default=False, help_text="Prices already include this tax.")
    liability_account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="+")
    is_active = models.BooleanField(default=True)

    history = audit_history()

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(rate__gte=0, rate__lt=1), name="tax_rate_between_0_and_1")]

    def __str__(self) -> str:
        return f"{self.name} ({self.rate * 100:.2f}%{' incl.' if self.inclusive else ''})"


class Product(models.Model):
    sku = models.CharField("SKU", max_length=50, unique=True)
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=14, decimal_places=4, help_text="Default price, base currency.")
    revenue_account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="+")
    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, null=True, blank=True)
    unit_cost = models.DecimalField(
        max_digits=14, decimal_places=4, null=True, blank=True, help_text="Base currency; books COGS when set."
    )
    is_active = models.BooleanField(default=True)

    history = audit_history()

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="product_price_not_negative"),
            models.CheckConstraint(
                condition=Q(unit_cost__isnull=True) | Q(unit_cost__gte=0), name="product_cost_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class NumberSequence(models.Model):
    """A gapless document number series. The row is locked while a number is drawn, and the
    draw commits or rolls back with the document, so a number is neither skipped nor reused."""

    series = models.CharField(max_length=10, primary_key=True)
    prefix = models.CharField(max_length=10)
    next_number = models.PositiveIntegerField(default=1)

    history = audit_history()

    def __str__(self) -> str:
        return f"{self.series}: next {self.prefix}{self.next_number:06d}"


class Source(models.TextChoices):
    MANUAL = "manual", "Entered in Concord"
    RECURRING = "recurring", "Recurring template"
    IMPORT = "import", "Imported"
    SYNC = "sync", "Accounting package"


class LineAmounts(models.Model):
    """The priced line shared by invoices, credit notes and recurring templates."""

    class DiscountType(models.TextChoices):
        NONE = "none", "No discount"
        PERCENT = "percent", "Percent"
        AMOUNT = "amount", "Amount"

    position = models.PositiveSmallIntegerField(default=1)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    unit_price = models.DecimalField(max_digits=14, decimal_places=4)
    discount_type = models.CharField(max_length=10, choices=DiscountType.choices, default=DiscountType.NONE)
    discount_value = models.DecimalField(max_digits=14, decimal_places=4, default=ZERO)
    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    revenue_account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.description


class PricedLine(LineAmounts):
    """A line whose amounts have been computed (billing.pricing) and stored."""

    subtotal = models.DecimalField(**MONEY, default=ZERO)  # quantity × unit price
    discount = models.DecimalField(**MONEY, default=ZERO)  # in the line's own terms (incl. tax if inclusive)
    discount_net = models.DecimalField(**MONEY, default=ZERO)  # the discount without tax
    net = models.DecimalField(**MONEY, default=ZERO)
    tax = models.DecimalField(**MONEY, default=ZERO)
    gross = models.DecimalField(**MONEY, default=ZERO)

    class Meta(LineAmounts.Meta):
        abstract = True


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ISSUED = "issued", "Issued"
        PARTIALLY_PAID = "partially_paid", "Partially paid"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        WRITTEN_OFF = "written_off", "Written off"

    OPEN_STATUSES = (Status.ISSUED, Status.PARTIALLY_PAID)

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="invoices")
    series = models.CharField(max_length=10, default="INV")
    # NULL, not "", until issued: the unique (series, number) constraint must ignore drafts.
    number = models.CharField(  # noqa: DJ001
        max_length=30, null=True, blank=True, help_text="Assigned when the invoice is issued."
    )
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    exchange_rate = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)

    net_total = models.DecimalField(**MONEY, default=ZERO)
    tax_total = models.DecimalField(**MONEY, default=ZERO)
    gross_total = models.DecimalField(**MONEY, default=ZERO)
    # What the ledger carries for this invoice (base currency), and what is still owed.
    base_gross = models.DecimalField(**MONEY, default=ZERO)
    open_amount = models.DecimalField(**MONEY, default=ZERO)
    open_base = models.DecimalField(**MONEY, default=ZERO)

    # A disputed invoice leaves dunning until the dispute is resolved; the history keeps each one.
    disputed = models.BooleanField(default=False)
    dispute_reason = models.CharField(max_length=300, blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    memo = models.TextField(blank=True)

    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    external_system = models.CharField(max_length=30, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    recurring_template = models.ForeignKey(
        "RecurringInvoice", on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    period_start = models.DateField(null=True, blank=True, help_text="The period a recurring invoice bills.")

    issue_entry = models.OneToOneField(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    voided_on = models.DateField(null=True, blank=True)
    # The latest date among the allocations and write-off that brought the open amount to zero:
    # from that day on nothing was open on it, so an aging as of a later day skips it unread.
    settled_on = models.DateField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["-issue_date", "-id"]
        permissions = [("issue_invoice", "Can issue invoices"), ("void_invoice", "Can void invoices")]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "number"], condition=Q(number__isnull=False), name="invoice_unique_number"
            ),
            models.UniqueConstraint(
                fields=["recurring_template", "period_start"],
                condition=Q(recurring_template__isnull=False),
                name="invoice_one_per_recurring_period",
            ),
            models.UniqueConstraint(
                fields=["external_system", "external_id"],
                condition=~Q(external_id=""),
                name="invoice_unique_external_ref",
            ),
            models.CheckConstraint(
                condition=Q(open_amount__gte=0) & Q(open_amount__lte=F("gross_total")),
                name="invoice_open_within_total",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False, issue_date__isnull=False),
                name="invoice_issued_has_number_and_date",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "status"], name="invoice_customer_status_idx"),
            models.Index(fields=["due_date"], name="invoice_open_due_idx", condition=Q(open_amount__gt=0)),
            # The aging (billing.selectors.aging_statement) reads the invoices not settled by its
            # day from these alone (index-only scans, so every column it reads is in them): those
            # not settled yet, and those settled after the day.
            models.Index(
                fields=["issue_date", "customer", "due_date", "status", "voided_on", "open_base", "base_gross", "id"],
                name="invoice_unsettled_aging_idx",
                condition=Q(settled_on__isnull=True),
            ),
            models.Index(
                fields=["settled_on", "issue_date", "customer", "due_date", "voided_on", "base_gross", "id"],
                name="invoice_settled_aging_idx",
                condition=Q(settled_on__isnull=False),
            ),
            # Whether anything was voided after a day (the aging's "nothing dated later" probe).
            models.Index(fields=["voided_on"], name="invoice_voided_idx", condition=Q(voided_on__isnull=False)),
            # The customer page and list: what is overdue (open invoices by due date), credit sales
            # for DSO (by issue date), days late (paid invoices by settlement day), disputes.
            models.Index(
                fields=["customer", "due_date"],
                include=["open_amount"],
                name="invoice_customer_open_due_idx",
                condition=Q(status__in=["issued", "partially_paid"]),
            ),
            models.Index(
                fields=["customer", "issue_date"],
                include=["base_gross", "voided_on"],
                name="invoice_customer_issue_idx",
            ),
            models.Index(
                fields=["customer", "settled_on"],
                include=["due_date", "base_gross"],
                name="invoice_customer_settled_idx",
                condition=Q(status="paid"),
            ),
            models.Index(fields=["customer"], name="invoice_customer_disputed_idx", condition=Q(disputed=True)),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft invoice {self.pk}"


class InvoiceLine(PricedLine):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    unit_cost = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)

    history = audit_history()

    class Meta(PricedLine.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="invoice_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="invoice_line_price_not_negative"),
        ]


class Payment(models.Model):
    class Method(models.TextChoices):
        CARD = "card", "Card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CASH = "cash", "Cash"
        CHEQUE = "cheque", "Cheque"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CLEARED = "cleared", "Cleared"
        FAILED = "failed", "Failed"
        REFUNDED = "refunded", "Refunded"

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="payments")
    received_on = models.DateField()
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    method = models.CharField(max_length=15, choices=Method.choices)
    reference = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CLEARED)
    exchange_rate = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    base_amount = models.DecimalField(**MONEY, default=ZERO)
    # The customer's credit from this payment: not yet applied to an invoice or refunded.
    unapplied_amount = models.DecimalField(**MONEY, default=ZERO)
    unapplied_base = models.DecimalField(**MONEY, default=ZERO)
    # The latest date among the allocations and refunds that used all of it: an aging as of a
    # later day skips it unread (a failed payment is skipped by `failed_on` instead).
    used_up_on = models.DateField(null=True, blank=True, editable=False)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    entry = models.OneToOneField(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    failed_on = models.DateField(null=True, blank=True)
    external_system = models.CharField(max_length=30, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(unapplied_amount__gte=0) & Q(unapplied_amount__lte=F("amount")),
                name="payment_unapplied_within_amount",
            ),
            models.UniqueConstraint(
                fields=["external_system", "external_id"],
                condition=~Q(external_id=""),
                name="payment_unique_external_ref",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "received_on"], name="payment_customer_date_idx"),
            models.Index(
                fields=["customer"], name="payment_customer_unapplied_idx", condition=Q(unapplied_amount__gt=0)
            ),
            # The aging's unapplied credit: payments not used up (index-only), those used up after
            # its day, and whether any failed after it.
            models.Index(
                fields=["received_on", "customer", "unapplied_base", "base_amount", "failed_on", "entry", "id"],
                name="payment_unused_aging_idx",
                condition=Q(used_up_on__isnull=True),
            ),
            models.Index(
                fields=["used_up_on", "received_on"], name="payment_used_up_idx", condition=Q(used_up_on__isnull=False)
            ),
            models.Index(fields=["failed_on"], name="payment_failed_idx", condition=Q(failed_on__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.received_on} ({self.get_method_display()})"


class AllocationBase(models.Model):
    """Credit applied to an invoice. `invoice_base` is the part of the invoice's carrying value it
    settles and `credit_base` the part of the credit's; their difference is realised FX."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(**MONEY)
    allocated_on = models.DateField()
    invoice_base = models.DecimalField(**MONEY)
    credit_base = models.DecimalField(**MONEY)
    fx_entry = models.OneToOneField(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["allocated_on", "id"]

    def __str__(self) -> str:
        return f"{self.amount} to {self.invoice} on {self.allocated_on}"


class PaymentAllocation(AllocationBase):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")

    history = audit_history()

    class Meta(AllocationBase.Meta):
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_allocation_positive")]
        # What was applied to an invoice by a day, read from the index alone (the aging); and
        # whether anything was applied after a day.
        indexes = [
            models.Index(fields=["invoice", "allocated_on", "invoice_base"], name="payalloc_invoice_date_base_idx"),
            models.Index(fields=["allocated_on"], name="payalloc_date_idx"),
            # What a payment had used by a past day (the as-of aging's unapplied credit).
            models.Index(fields=["payment", "allocated_on", "credit_base"], name="payalloc_payment_date_base_idx"),
        ]


class CreditNote(models.Model):
    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="credit_notes")
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_notes",
        help_text="The invoice it corrects; empty for a standalone credit.",
    )
    series = models.CharField(max_length=10, default="CN")
    number = models.CharField(max_length=30)
    issue_date = models.DateField()
    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    exchange_rate = models.DecimalField(max_digits=18, decimal_places=8)
    reason = models.CharField(max_length=300)
    net_total = models.DecimalField(**MONEY, default=ZERO)
    tax_total = models.DecimalField(**MONEY, default=ZERO)
    gross_total = models.DecimalField(**MONEY, default=ZERO)
    base_gross = models.DecimalField(**MONEY, default=ZERO)
    unapplied_amount = models.DecimalField(**MONEY, default=ZERO)
    unapplied_base = models.DecimalField(**MONEY, default=ZERO)
    # As on Payment: the latest date among the allocations and refunds that used all of it.
    used_up_on = models.DateField(null=True, blank=True, editable=False)
    entry = models.OneToOneField(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    external_system = models.CharField(max_length=30, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["series", "number"], name="credit_note_unique_number"),
            models.CheckConstraint(
                condition=Q(unapplied_amount__gte=0) & Q(unapplied_amount__lte=F("gross_total")),
                name="credit_note_unapplied_within_total",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(PricedLine):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")

    history = audit_history()

    class Meta(PricedLine.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="credit_note_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="credit_note_line_price_not_negative"),
        ]


class CreditNoteAllocation(AllocationBase):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="allocations")
    # Accounting packages such as QuickBooks apply a credit memo through a payment that links the
    # credit and the invoice; a credit applied that way remembers the payment it came with.
    applied_with = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_allocations"
    )

    history = audit_history()

    class Meta(AllocationBase.Meta):
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="credit_allocation_positive")]
        # What was applied to an invoice by a day, read from the index alone (the aging); and
        # whether anything was applied after a day.
        indexes = [
            models.Index(fields=["invoice", "allocated_on", "invoice_base"], name="cnalloc_invoice_date_base_idx"),
            models.Index(fields=["allocated_on"], name="cnalloc_date_idx"),
        ]


class Refund(models.Model):
    """Money paid back to a customer out of their credit (a payment's or a credit note's)."""

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    refunded_on = models.DateField()
    method = models.CharField(max_length=15, choices=Payment.Method.choices)
    reference = models.CharField(max_length=100, blank=True)
    exchange_rate = models.DecimalField(max_digits=18, decimal_places=8)
    carrying_base = models.DecimalField(**MONEY, help_text="The credit's carrying value it uses up.")
    bank_base = models.DecimalField(**MONEY, help_text="What left the bank, at the refund date's rate.")
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    entry = models.OneToOneField(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-refunded_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(
                condition=Q(payment__isnull=False, credit_note__isnull=True)
                | Q(payment__isnull=True, credit_note__isnull=False),
                name="refund_from_exactly_one_credit",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund of {self.amount} {self.currency} on {self.refunded_on}"


class WriteOff(models.Model):
    """Bad debt: an invoice's open balance, written off once a Finance Admin approves."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Awaiting approval"
        APPROVED = "approved", "Approved and posted"
        REJECTED = "rejected", "Rejected"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="write_offs")
    reason = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    written_off_on = models.DateField(null=True, blank=True)
    amount = models.DecimalField(**MONEY, default=ZERO)
    base_amount = models.DecimalField(**MONEY, default=ZERO)
    entry = models.OneToOneField(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    history = audit_history()

    class Meta:
        ordering = ["-requested_at"]
        permissions = [
            ("request_writeoff", "Can ask for an invoice to be written off"),
            ("approve_writeoff", "Can approve a write-off"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(status__in=["requested", "approved"]),
                name="writeoff_one_live_per_invoice",
            )
        ]

    def __str__(self) -> str:
        return f"Write-off of {self.invoice} ({self.get_status_display()})"


class RecurringInvoice(models.Model):
    class Interval(models.TextChoices):
        WEEK = "week", "Weekly"
        MONTH = "month", "Monthly"
        QUARTER = "quarter", "Quarterly"
        YEAR = "year", "Yearly"

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="recurring_invoices")
    name = models.CharField(max_length=200)
    interval = models.CharField(max_length=10, choices=Interval.choices, default=Interval.MONTH)
    next_date = models.DateField(help_text="The next period to bill; each invoice is issued on its period's date.")
    end_date = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    memo = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")

    history = audit_history()

    class Meta:
        ordering = ["next_date", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_interval_display()})"


class RecurringInvoiceLine(LineAmounts):
    template = models.ForeignKey(RecurringInvoice, on_delete=models.CASCADE, related_name="lines")

    history = audit_history()

    class Meta(LineAmounts.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="recurring_line_quantity_positive"),
        ]


class PromiseToPay(models.Model):
    """A customer's word that `amount` will be paid on one or more invoices by `promised_on`.

    While open and not yet due it keeps those invoices out of dunning. The day after
    `promised_on` a daily job settles it: kept when payments applied to its invoices since it was
    made reach the amount, broken otherwise (`paid_amount` records how much came, so a partial
    payment counts pro rata in the customer's record of keeping promises)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        KEPT = "kept", "Kept"
        BROKEN = "broken", "Broken"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="promises")
    invoices = models.ManyToManyField(Invoice, through="PromiseInvoice", related_name="promises")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    promised_on = models.DateField()
    made_on = models.DateField(help_text="The day the customer promised; payments from then count.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    paid_amount = models.DecimalField(**MONEY, default=ZERO, help_text="Paid on its invoices in time.")
    settled_on = models.DateField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-promised_on", "-id"]
        verbose_name = "promise to pay"
        verbose_name_plural = "promises to pay"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="promise_amount_positive"),
            models.CheckConstraint(condition=Q(promised_on__gte=F("made_on")), name="promise_not_before_made"),
            models.CheckConstraint(
                condition=Q(status__in=["open", "kept", "broken", "cancelled"]), name="promise_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="open", settled_on__isnull=True) | ~Q(status="open"),
                name="promise_open_not_settled",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "promised_on"], name="promise_status_due_idx"),
            # The customer list's per-row figures (billing.customer_list): the next open promise,
            # a recently broken one, and a newer open or kept one that clears it — each a probe of
            # the customer's own promises rather than a scan of every open or broken one.
            models.Index(
                fields=["customer", "promised_on", "id"],
                condition=Q(status="open"),
                include=["amount", "currency"],
                name="promise_customer_open_idx",
            ),
            models.Index(
                fields=["customer", "settled_on"], condition=Q(status="broken"), name="promise_customer_broken_idx"
            ),
            models.Index(
                fields=["customer", "made_on"],
                condition=Q(status__in=["open", "kept"]),
                name="promise_customer_made_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Promise of {self.amount} {self.currency} by {self.promised_on}"

    @property
    def kept_ratio(self) -> Decimal:
        """How much of the promise was kept, 0–1 (pro rata for a partial payment)."""
        if not self.amount:
            return Decimal(0)
        return min(Decimal(1), self.paid_amount / self.amount)


class PromiseInvoice(models.Model):
    promise = models.ForeignKey(PromiseToPay, on_delete=models.CASCADE, related_name="promised_invoices")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")
    open_when_promised = models.DecimalField(**MONEY, help_text="The invoice's open amount when promised.")

    history = audit_history()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["promise", "invoice"], name="promise_invoice_once")]

    def __str__(self) -> str:
        return f"{self.invoice} in {self.promise}"


class DunningLevel(models.Model):
    """A step of the reminder ladder: sent once an invoice is `days_overdue` days past due.

    `subject` and `body` are Django templates rendered with the customer, the invoice, its open
    amount and days overdue, the company and the level (docs/collections.md lists the names)."""

    level = models.PositiveSmallIntegerField(unique=True, help_text="1 for the first reminder, 2 for the next, …")
    name = models.CharField(max_length=100)
    days_overdue = models.PositiveSmallIntegerField(unique=True, help_text="Days past the due date.")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    attach_statement = models.BooleanField(default=True, help_text="Attach the customer's statement as a PDF.")
    is_active = models.BooleanField(default=True)

    history = audit_history()

    class Meta:
        ordering = ["level"]
        constraints = [
            models.CheckConstraint(condition=Q(level__gte=1), name="dunning_level_from_one"),
            models.CheckConstraint(condition=Q(days_overdue__gte=1), name="dunning_level_after_due"),
        ]

    def __str__(self) -> str:
        return f"{self.level}. {self.name} (+{self.days_overdue} days)"


class DunningLetter(models.Model):
    """One letter about one invoice at one level: sent at most once (the unique constraint is
    what a rerun of the daily job collides with, whatever else went wrong)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    # No index of their own on invoice and customer: the unique (invoice, level) and the
    # (customer, sent_at) indexes lead with them, and a dunning run inserts 100k letters at once.
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_letters", db_index=False)
    customer = models.ForeignKey(
        "crm.Customer", on_delete=models.PROTECT, related_name="dunning_letters", db_index=False
    )
    level = models.ForeignKey(DunningLevel, on_delete=models.PROTECT, related_name="letters")
    status = models.CharField(max_length=10, choices=Status.choices)
    recipient = models.EmailField(blank=True)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    open_amount = models.DecimalField(**MONEY, help_text="What the letter asked for.")
    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    days_overdue = models.PositiveIntegerField()
    error = models.CharField(max_length=300, blank=True)
    job = models.ForeignKey("jobs.BackgroundJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sent_at = models.DateTimeField()
    # The run that wrote the row last: how a run reads back, after inserting its letters with ON
    # CONFLICT DO NOTHING, which rows are its own and not a concurrent run's (billing.dunning).
    run_id = models.UUIDField(null=True, blank=True, editable=False)

    history = audit_history()

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "level"], name="dunning_letter_once_per_level"),
            models.CheckConstraint(condition=Q(status__in=["sent", "failed"]), name="dunning_letter_status_valid"),
        ]
        indexes = [models.Index(fields=["customer", "-sent_at"], name="dunning_letter_customer_idx")]

    def __str__(self) -> str:
        return f"{self.level.name} for {self.invoice}"
