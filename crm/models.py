"""Customers, their contacts and the activity logged against them.

Writes go through `crm.services`; who may see a customer is decided in `crm.access`.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from config.audit import audit_history
from ledger.currency import validate_currency_code

MAX_PAYMENT_TERMS_DAYS = 365


# Written only by their owners, with queryset.update(): a customer saved from a form must never
# put back the figures it read before a payment moved them.
DERIVED_FIELDS = ("last_activity_at", "activity_count", "ar_open", "ar_unapplied", "ar_balance")


class Customer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ON_HOLD = "on_hold", "On hold"
        ARCHIVED = "archived", "Archived"

    account_number = models.CharField(
        max_length=20, unique=True, help_text="Concord's own customer number, e.g. C-000123."
    )
    display_name = models.CharField(max_length=200)
    legal_name = models.CharField(max_length=200, blank=True)
    tax_id = models.CharField("tax ID", max_length=50, blank=True)

    billing_line1 = models.CharField("address line 1", max_length=200, blank=True)
    billing_line2 = models.CharField("address line 2", max_length=200, blank=True)
    billing_city = models.CharField("city", max_length=100, blank=True)
    billing_region = models.CharField("region / state", max_length=100, blank=True)
    billing_postal_code = models.CharField("postal code", max_length=20, blank=True)
    billing_country = models.CharField("country", max_length=2, blank=True, help_text="ISO 3166 alpha-2, e.g. US.")

    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    payment_terms_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(0), MaxValueValidator(MAX_PAYMENT_TERMS_DAYS)]
    )
    credit_limit = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="In the customer's currency. Empty means no limit has been set.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="owned_customers",
        help_text="The responsible sales rep; they (and whoever an admin grants) can see this customer.",
    )
    collector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="collected_customers",
        help_text="The AR colleague chasing this customer's overdue invoices.",
    )

    # Filled by the sync engine: which accounting package this customer mirrors, and its id there.
    external_system = models.CharField(max_length=30, blank=True)
    external_id = models.CharField(max_length=100, blank=True)

    # Derived from Activity, kept in step by crm.services and repaired by a periodic task.
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)
    activity_count = models.PositiveIntegerField(default=0, editable=False)

    # Receivables in the customer's currency, kept exact by billing.services inside each money
    # operation's transaction (under the customer's row lock) and checked by `ledger_check`: so
    # that a list of 100,000 customers sorts and filters by balance through an index.
    ar_open = models.DecimalField(max_digits=18, decimal_places=2, default=0, editable=False)
    ar_unapplied = models.DecimalField(max_digits=18, decimal_places=2, default=0, editable=False)
    ar_balance = models.DecimalField(max_digits=18, decimal_places=2, default=0, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history(excluded_fields=[*DERIVED_FIELDS, "updated_at"])

    class Meta:
        ordering = ["display_name", "id"]
        permissions = [
            ("view_all_customers", "Can see every customer, whoever owns it"),
            ("reassign_customer", "Can change a customer's owner"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "on_hold", "archived"]), name="customer_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(payment_terms_days__lte=MAX_PAYMENT_TERMS_DAYS),
                name="customer_payment_terms_at_most_a_year",
            ),
            models.CheckConstraint(
                condition=Q(credit_limit__isnull=True) | Q(credit_limit__gte=0),
                name="customer_credit_limit_not_negative",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="customer_currency_iso_code"),
            # The same record of the accounting package must never be mirrored by two customers.
            models.UniqueConstraint(
                fields=["external_system", "external_id"],
                condition=~Q(external_id=""),
                name="customer_unique_external_ref",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "display_name"], name="customer_owner_name_idx"),
            models.Index(Lower("display_name"), name="customer_lower_name_idx"),
            models.Index(fields=["tax_id"], name="customer_tax_id_idx", condition=~Q(tax_id="")),
            # The all-customers list, by name: its pages are read along this index (keyset).
            models.Index(fields=["display_name", "id"], name="customer_name_id_idx"),
            models.Index(fields=["ar_balance", "id"], name="customer_ar_balance_idx"),
            models.Index(fields=["owner", "ar_balance"], name="customer_owner_balance_idx"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in DERIVED_FIELDS
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("crm:customer_detail", args=[self.pk])


class Contact(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    role = models.CharField(max_length=100, blank=True, help_text="e.g. Accounts payable, CFO, Buyer.")
    is_primary = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-is_primary", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=Q(is_primary=True), name="contact_one_primary_per_customer"
            ),
            models.UniqueConstraint(
                "customer", Lower("email"), condition=~Q(email=""), name="contact_unique_email_per_customer"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Activity(models.Model):
    class Kind(models.TextChoices):
        CALL = "call", "Call"
        EMAIL = "email", "E-mail"
        MEETING = "meeting", "Meeting"
        NOTE = "note", "Note"
        # Written by Concord itself: a dunning letter sent, a promise kept or broken.
        LETTER = "letter", "Letter"
        PROMISE = "promise", "Promise to pay"

    class Outcome(models.TextChoices):
        """How a collections call went (calls only)."""

        REACHED = "reached", "Reached, discussed"
        PROMISED = "promised", "Promised to pay"
        DISPUTED = "disputed", "Disputes the invoice"
        VOICEMAIL = "voicemail", "Left a voicemail"
        NO_ANSWER = "no_answer", "No answer"
        CALL_BACK = "call_back", "Asked to call back"
        WRONG_NUMBER = "wrong_number", "Wrong number"

    # Kinds a person logs by hand; the others are written by the system.
    LOGGED_KINDS = (Kind.CALL, Kind.EMAIL, Kind.MEETING, Kind.NOTE)

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="activities")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="activities"
    )
    occurred_at = models.DateTimeField(default=timezone.now)
    text = models.TextField()
    outcome = models.CharField(max_length=15, choices=Outcome.choices, blank=True)
    # What the activity was about, in words a person recognises (e.g. an invoice number).
    subject = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name_plural = "activities"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["call", "email", "meeting", "note", "letter", "promise"]),
                name="activity_kind_valid",
            ),
            models.CheckConstraint(condition=Q(outcome="") | Q(kind="call"), name="activity_outcome_only_for_calls"),
            models.CheckConstraint(condition=~Q(text=""), name="activity_text_not_empty"),
        ]
        indexes = [models.Index(fields=["customer", "-occurred_at"], name="activity_customer_recent_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.occurred_at:%Y-%m-%d}"


class Notification(models.Model):
    """Something a person should know, shown in the navigation bar until read (e.g. a customer of
    theirs broke a promise to pay). Not audited: it records no business fact of its own."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    text = models.CharField(max_length=300)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread_idx")]

    def __str__(self) -> str:
        return self.text


class AccessChange(models.Model):
    """Who gave or took whose role or access to a customer, and when.

    Role memberships and guardian's grants are rows of other apps' tables without history of
    their own; crm.services writes one of these for each change, so the audit viewer can show
    access changes beside every other change. Append-only: written once, never edited."""

    class Kind(models.TextChoices):
        ROLE_ADDED = "role_added", "Role given"
        ROLE_REMOVED = "role_removed", "Role taken away"
        ACCESS_GRANTED = "granted", "Access granted"
        ACCESS_REVOKED = "revoked", "Access revoked"

    kind = models.CharField(max_length=15, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_changes")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    role = models.CharField(max_length=50, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["-changed_at"], name="access_change_recent_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.user} {self.role or self.customer or ''}".strip()


# Per-customer grants as direct foreign keys rather than guardian's generic (content type, text
# id) rows, so "customers this rep may see" is an indexed join, not a cast over a generic table.
class CustomerUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Customer, on_delete=models.CASCADE)


class CustomerGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Customer, on_delete=models.CASCADE)
