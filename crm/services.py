"""Every write to customers, contacts and activities: one function per use case, one transaction.

Each function takes keyword arguments and the acting user, validates before its first write,
and records that user in the audit history.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from config.audit import save_as
from crm import access
from crm.models import AccessChange, Activity, Contact, Customer, Notification
from crm.roles import Role

CUSTOMER_EDITABLE_FIELDS = frozenset(
    {
        "display_name",
        "legal_name",
        "tax_id",
        "billing_line1",
        "billing_line2",
        "billing_city",
        "billing_region",
        "billing_postal_code",
        "billing_country",
        "currency",
        "payment_terms_days",
        "credit_limit",
        "status",
        "external_system",
        "external_id",
    }
)


def _grant_owner_access(*, customer: Customer, owner) -> None:
    for codename in access.OWNER_PERMISSIONS:
        assign_perm(codename, owner, customer)


def _revoke_owner_access(*, customer: Customer, owner) -> None:
    for codename in access.OWNER_PERMISSIONS:
        remove_perm(codename, owner, customer)


def _check_owner_is_eligible(owner) -> None:
    if owner is not None and not owner.is_active:
        raise ValidationError({"owner": f"{owner.get_username()} is not an active user and cannot own customers."})


ACCOUNT_NUMBER_ATTEMPTS = 5


def next_account_number() -> str:
    last = Customer.objects.filter(account_number__startswith="C-").order_by("-account_number").first()
    following = int(last.account_number[2:]) + 1 if last and last.account_number[2:].isdigit() else 1
    return f"C-{following:06d}"


@transaction.atomic
def create_customer(
    *, actor, display_name: str, currency: str, owner=None, account_number: str = "", **fields
) -> Customer:
    """Create a customer; its owner is granted access to it in the same transaction."""
    unknown = set(fields) - CUSTOMER_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"create_customer() got unexpected fields: {', '.join(sorted(unknown))}")
    _check_owner_is_eligible(owner)
    customer = Customer(
        account_number=account_number or next_account_number(),
        display_name=display_name,
        currency=currency,
        owner=owner,
        **fields,
    )
    # A generated number's uniqueness is settled by the insert below, not by a racy pre-check.
    customer.full_clean(exclude=None if account_number else ["account_number"])
    for attempt in range(1, ACCOUNT_NUMBER_ATTEMPTS + 1):
        try:
            # A savepoint, because a concurrent create may take the same generated number first.
            with transaction.atomic():
                save_as(customer, actor=actor)
            break
        except IntegrityError:
            taken = Customer.objects.filter(account_number=customer.account_number).exists()
            if account_number or not taken or attempt == ACCOUNT_NUMBER_ATTEMPTS:
                raise
            customer.account_number = next_account_number()
    if owner is not None:
        _grant_owner_access(customer=customer, owner=owner)
    return customer


@transaction.atomic
def update_customer(*, actor, customer: Customer, **changes) -> Customer:
    """Change a customer's details (not its owner: see `reassign_customer`)."""
    unknown = set(changes) - CUSTOMER_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"update_customer() got unexpected fields: {', '.join(sorted(unknown))}")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    changes = {name: value for name, value in changes.items() if getattr(customer, name) != value}
    if not changes:
        return customer  # nothing to record: no empty entry in the history
    for name, value in changes.items():
        setattr(customer, name, value)
    customer.full_clean()
    save_as(customer, actor=actor)
    return customer


@transaction.atomic
def reassign_customer(*, actor, customer: Customer, new_owner) -> Customer:
    """Give a customer to another rep: the previous owner's access moves to the new one.

    Grants an admin made to other users or groups are left as they are.
    """
    if not (actor.is_superuser or actor.has_perm("crm.reassign_customer")):
        raise PermissionDenied("Only a Finance Admin may change a customer's owner.")
    _check_owner_is_eligible(new_owner)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    previous_owner = customer.owner
    if previous_owner == new_owner:
        return customer
    if previous_owner is not None:
        _revoke_owner_access(customer=customer, owner=previous_owner)
    if new_owner is not None:
        _grant_owner_access(customer=customer, owner=new_owner)
    customer.owner = new_owner
    save_as(customer, actor=actor, update_fields=["owner", "updated_at"])
    return customer


@transaction.atomic
def add_contact(
    *,
    actor,
    customer: Customer,
    name: str,
    email: str = "",
    phone: str = "",
    role: str = "",
    is_primary: bool = False,
) -> Contact:
    """Add a contact; making it primary demotes the customer's previous primary contact."""
    contact = Contact(customer=customer, name=name, email=email, phone=phone, role=role, is_primary=is_primary)
    contact.full_clean(validate_constraints=False)
    if email and customer.contacts.filter(email__iexact=email).exists():
        raise ValidationError({"email": f"{customer} already has a contact with the e-mail {email}."})
    if is_primary:
        Customer.objects.select_for_update().filter(pk=customer.pk).get()
        _demote_primary_contacts(actor=actor, customer_id=customer.pk)
    save_as(contact, actor=actor)
    return contact


CONTACT_EDITABLE_FIELDS = frozenset({"name", "email", "phone", "role", "is_primary"})


@transaction.atomic
def update_contact(*, actor, contact: Contact, **changes) -> Contact:
    """Change a contact; making it primary demotes the customer's previous primary contact."""
    unknown = set(changes) - CONTACT_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"update_contact() got unexpected fields: {', '.join(sorted(unknown))}")
    Customer.objects.select_for_update().filter(pk=contact.customer_id).get()
    contact = Contact.objects.get(pk=contact.pk)
    for name, value in changes.items():
        setattr(contact, name, value)
    contact.full_clean(validate_constraints=False)
    if contact.email and contact.customer.contacts.exclude(pk=contact.pk).filter(email__iexact=contact.email).exists():
        raise ValidationError({"email": f"{contact.customer} already has a contact with the e-mail {contact.email}."})
    if contact.is_primary:
        _demote_primary_contacts(actor=actor, customer_id=contact.customer_id, keep=contact)
    save_as(contact, actor=actor)
    return contact


@transaction.atomic
def delete_contact(*, actor, contact: Contact) -> None:
    contact._history_user = actor
    contact.delete()


def _demote_primary_contacts(*, actor, customer_id: int, keep: Contact | None = None) -> None:
    for previous in Contact.objects.filter(customer_id=customer_id, is_primary=True).exclude(
        pk=getattr(keep, "pk", None)
    ):
        previous.is_primary = False
        save_as(previous, actor=actor, update_fields=["is_primary"])


@transaction.atomic
def log_activity(
    *,
    actor,
    customer: Customer,
    kind: str,
    text: str,
    occurred_at: datetime | None = None,
    performed_by=None,
    outcome: str = "",
    subject: str = "",
) -> Activity:
    """Record a call, e-mail, meeting or note on the customer's timeline (or, for the system, a
    letter sent or a promise settled). A call may say how it went (`outcome`).

    `performed_by` is the person who had the call or meeting (the actor by default); the actor
    is who recorded it, as the audit history shows.
    """
    text = (text or "").strip()
    if outcome and kind != Activity.Kind.CALL:
        raise ValidationError({"outcome": "Only a call has an outcome."})
    activity = Activity(
        customer=customer,
        kind=kind,
        text=text,
        outcome=outcome or "",
        subject=(subject or "").strip(),
        actor=performed_by or actor,
        occurred_at=occurred_at or timezone.now(),
    )
    activity.full_clean()
    if activity.occurred_at > timezone.now() + timedelta(minutes=5):
        raise ValidationError({"occurred_at": "An activity cannot be logged in the future."})
    save_as(activity, actor=actor)
    # The customer's cached stats move in the same transaction, so lists never show them stale.
    locked = Customer.objects.select_for_update().only("pk", "last_activity_at").get(pk=customer.pk)
    newest = max(filter(None, [locked.last_activity_at, activity.occurred_at]))
    Customer.objects.filter(pk=customer.pk).update(activity_count=F("activity_count") + 1, last_activity_at=newest)
    return activity


@transaction.atomic
def delete_activity(*, actor, activity: Activity) -> None:
    """Remove an activity logged by mistake; the customer's cached stats follow at once."""
    customer_id = activity.customer_id
    Customer.objects.select_for_update().filter(pk=customer_id).get()
    activity._history_user = actor
    activity.delete()
    refresh_activity_stats(customer_ids=[customer_id])


def refresh_activity_stats(*, customer_ids: list[int] | None = None) -> int:
    """Recompute every customer's cached activity count and last-activity time from Activity.

    The cache is kept exact by `log_activity`; this repairs drift left by anything that wrote
    activities another way (bulk loads, deletions in the admin). Returns how many were repaired.
    """
    activities = Activity.objects.filter(customer=OuterRef("pk")).order_by().values("customer")
    actual = Customer.objects.annotate(
        actual_count=Coalesce(Subquery(activities.annotate(n=Count("pk")).values("n")), 0),
        actual_last=Subquery(activities.annotate(last=Max("occurred_at")).values("last")),
    )
    if customer_ids is not None:
        actual = actual.filter(pk__in=customer_ids)
    # NULL-safe "differs": SQL's `a <> b` is unknown, not true, when either side is NULL.
    both_set = Q(last_activity_at__isnull=False, actual_last__isnull=False)
    drifted = actual.filter(
        ~Q(activity_count=F("actual_count"))
        | Q(last_activity_at__isnull=True, actual_last__isnull=False)
        | Q(last_activity_at__isnull=False, actual_last__isnull=True)
        | (both_set & ~Q(last_activity_at=F("actual_last")))
    ).values_list("pk", "actual_count", "actual_last")
    repaired = 0
    for pk, count, last in drifted.iterator(chunk_size=2000):
        with transaction.atomic():
            repaired += Customer.objects.filter(pk=pk).update(activity_count=count, last_activity_at=last)
    return repaired


def _check_may_administer(actor) -> None:
    if not access.may_administer(actor):
        raise PermissionDenied("Only a Finance Admin may change roles and access.")


@transaction.atomic
def assign_role(*, actor, user, role: Role) -> None:
    """Put `user` in a role's group; Finance Admins also get into the admin site."""
    _check_may_administer(actor)
    group = Group.objects.get(name=role.value)
    if user.groups.filter(pk=group.pk).exists():
        return
    user.groups.add(group)
    if role == Role.FINANCE_ADMIN and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    AccessChange.objects.create(kind=AccessChange.Kind.ROLE_ADDED, user=user, role=role.value, changed_by=actor)


@transaction.atomic
def remove_role(*, actor, user, role: Role) -> None:
    """Take `user` out of a role's group. A Finance Admin cannot remove their own admin role (the
    last person able to give it back could lock everyone out)."""
    _check_may_administer(actor)
    if role == Role.FINANCE_ADMIN and user.pk == actor.pk:
        raise ValidationError({"role": "You cannot remove your own Finance Admin role; ask another admin."})
    group = Group.objects.get(name=role.value)
    if not user.groups.filter(pk=group.pk).exists():
        return
    user.groups.remove(group)
    if role == Role.FINANCE_ADMIN and user.is_staff and not user.is_superuser:
        user.is_staff = False
        user.save(update_fields=["is_staff"])
    AccessChange.objects.create(kind=AccessChange.Kind.ROLE_REMOVED, user=user, role=role.value, changed_by=actor)


@transaction.atomic
def grant_customer_access(*, actor, user, customers, detail: str = "") -> int:
    """Let `user` see (not change) each of `customers`; returns how many were new grants.
    Takes effect on the user's next page: access is read per request (crm.access)."""
    _check_may_administer(actor)
    if not user.is_active:
        raise ValidationError({"user": f"{user.get_username()} is not an active user."})
    granted = 0
    for customer in customers:
        if user.has_perm(access.VIEW_CUSTOMER, customer):
            continue
        assign_perm("view_customer", user, customer)
        AccessChange.objects.create(
            kind=AccessChange.Kind.ACCESS_GRANTED, user=user, customer=customer, detail=detail, changed_by=actor
        )
        granted += 1
    return granted


@transaction.atomic
def revoke_customer_access(*, actor, user, customers, detail: str = "") -> int:
    """Take back grants of `customers` from `user`; an owner keeps access to their own customers
    (reassign the customer instead). Returns how many grants were taken back."""
    _check_may_administer(actor)
    revoked = 0
    for customer in customers:
        if customer.owner_id == user.pk:
            raise ValidationError(
                {"customer": f"{user.get_username()} owns {customer}; reassign the customer to take it away."}
            )
        if not user.has_perm(access.VIEW_CUSTOMER, customer):
            continue
        remove_perm("view_customer", user, customer)
        remove_perm("change_customer", user, customer)
        AccessChange.objects.create(
            kind=AccessChange.Kind.ACCESS_REVOKED, user=user, customer=customer, detail=detail, changed_by=actor
        )
        revoked += 1
    return revoked


@transaction.atomic
def assign_collector(*, actor, customer: Customer, collector) -> Customer:
    """Make `collector` (an AR colleague, or None) the one chasing this customer's overdue invoices."""
    if collector is not None and not (collector.is_active and access.sees_all_customers(collector)):
        raise ValidationError({"collector": f"{collector.get_username()} is not in accounts receivable."})
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    customer.collector = collector
    save_as(customer, actor=actor, update_fields=["collector", "updated_at"])
    return customer


def notify(*, recipient, text: str, url: str = "", customer: Customer | None = None) -> Notification:
    """Tell someone something in the navigation bar (and nothing else: e-mail is the caller's)."""
    return Notification.objects.create(recipient=recipient, text=text[:300], url=url, customer=customer)


def mark_notifications_read(*, user, ids: list[int] | None = None) -> int:
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    return unread.update(read_at=timezone.now())
