"""Demo people and customers: the users of each role, and customers with contacts and activity.

Used by `manage.py seed_demo` (billing/management/commands/seed_demo.py), which then adds the
receivables. Deterministic (the same seed gives the same data) and idempotent (a second run adds
nothing): customers are keyed by account number, and one that exists already is left as it is.
Every write goes through crm.services, with the acting user given by the caller.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from faker import Faker

from crm import services
from crm.models import Activity, Customer
from crm.roles import Role

DEMO_PASSWORD = "concord-demo"  # noqa: S105 - published demo credential, documented in the README.

DEMO_USERS = [
    # username, first name, last name, role, superuser
    ("sales", "Sofia", "Marin", Role.SALES, False),
    ("sales2", "Daniel", "Okafor", Role.SALES, False),
    ("sales3", "Priya", "Raman", Role.SALES, False),
    ("ar", "Grace", "Lindqvist", Role.ACCOUNTS_RECEIVABLE, False),
    ("admin", "Tomas", "Weber", Role.FINANCE_ADMIN, True),
]
SALES_REPS = ["sales", "sales2", "sales3"]

# Where demo customers are, with the locale for realistic names and the currency they pay in.
MARKETS = [
    ("US", "en_US", "USD", 5),
    ("GB", "en_GB", "GBP", 2),
    ("DE", "de_DE", "EUR", 2),
    ("NL", "nl_NL", "EUR", 1),
    ("CA", "en_CA", "CAD", 1),
]
PAYMENT_TERMS = [15, 30, 30, 30, 30, 45, 60]
CREDIT_LIMITS = [None, Decimal("5000"), Decimal("10000"), Decimal("25000"), Decimal("50000"), Decimal("100000")]
CONTACT_ROLES = ["Accounts payable", "Controller", "CFO", "Purchasing", "Office manager", "Operations"]
ACTIVITY_TEXTS = {
    Activity.Kind.CALL: [
        "Called accounts payable about the open invoices; payment run is on the 15th.",
        "Spoke with {contact}: renewal likely next quarter, wants volume pricing.",
        "Left a voicemail for {contact} about the overdue balance.",
        "{contact} confirmed the remittance was sent by bank transfer yesterday.",
    ],
    Activity.Kind.EMAIL: [
        "Sent the updated price list and the new payment terms to {contact}.",
        "E-mailed a copy of last month's statement at {contact}'s request.",
        "{contact} asked for invoices to go to the shared AP mailbox from now on.",
    ],
    Activity.Kind.MEETING: [
        "Quarterly review on site with {contact}; they plan to expand to a second warehouse.",
        "Video call with {contact} and their controller to agree on consolidated invoicing.",
    ],
    Activity.Kind.NOTE: [
        "Customer prefers phone calls before 11:00 local time.",
        "PO number is mandatory on every invoice for this account.",
        "Moved to a new ERP in spring; expect delays in their payment runs.",
    ],
}


@dataclass(frozen=True)
class DemoPeople:
    users: dict  # username → user
    customers: list[Customer]  # the demo customers C-000001 … in account-number order
    created: int  # customers new in this run


def demo_account_number(number: int) -> str:
    return f"C-{number:06d}"


@transaction.atomic
def seed_people_and_customers(*, actor, seed: int = 7, customers: int = 240) -> DemoPeople:
    """Ensure the demo users (in their roles, with the published password) and the first
    `customers` demo customers, each with contacts and an activity timeline."""
    users = _ensure_users(actor)
    created = _ensure_customers(seed=seed, count=customers, users=users, actor=actor)
    numbers = [demo_account_number(number) for number in range(1, customers + 1)]
    demo_customers = list(Customer.objects.filter(account_number__in=numbers).order_by("account_number"))
    return DemoPeople(users=users, customers=demo_customers, created=created)


def _ensure_users(actor) -> dict:
    User = get_user_model()
    users = {}
    # All demo users share one password, so they get one hash, and a hash checked once in this
    # run is not checked again: password hashing is deliberately slow (a quarter second each).
    checked_hashes: set[str] = set()
    for username, first, last, role, superuser in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@concord.example"},
        )
        if superuser and not user.is_superuser:
            user.is_superuser = user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])
        if created or (user.password not in checked_hashes and not user.check_password(DEMO_PASSWORD)):
            if checked_hashes:
                user.password = next(iter(checked_hashes))
            else:
                user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        checked_hashes.add(user.password)
        services.assign_role(actor=actor, user=user, role=role)
        users[username] = user
    return users


def _ensure_customers(*, seed: int, count: int, users: dict, actor) -> int:
    rng = random.Random(seed)
    fakers = {}
    for country, locale, _currency, _weight in MARKETS:
        fakers[country] = Faker(locale)
        fakers[country].seed_instance(seed)
    today = timezone.localdate()
    existing = set(Customer.objects.filter(account_number__startswith="C-").values_list("account_number", flat=True))
    created = 0
    for number in range(1, count + 1):
        # Draw every value whether or not the customer exists, so each one is the same on
        # every run whatever was loaded before.
        country, _locale, currency, _weight = rng.choices(MARKETS, weights=[m[3] for m in MARKETS])[0]
        fake = fakers[country]
        company = fake.company()
        draft = {
            "account_number": demo_account_number(number),
            "display_name": company,
            "legal_name": company
            if rng.random() < 0.5
            else f"{company} {rng.choice(['Ltd', 'Inc', 'GmbH', 'B.V.', 'LLC'])}",
            "tax_id": f"{country}{rng.randrange(10**8, 10**9)}",
            "billing_line1": fake.street_address(),
            "billing_city": fake.city(),
            "billing_postal_code": fake.postcode(),
            "billing_country": country,
            "currency": currency,
            "payment_terms_days": rng.choice(PAYMENT_TERMS),
            "credit_limit": rng.choice(CREDIT_LIMITS),
            "status": rng.choices(["active", "on_hold", "archived"], weights=[90, 7, 3])[0],
            "owner": users[SALES_REPS[(number - 1) % len(SALES_REPS)]],
        }
        contacts = [
            {
                "name": fake.name(),
                "role": rng.choice(CONTACT_ROLES),
                "phone": fake.phone_number(),
                "is_primary": index == 0,
            }
            for index in range(rng.randint(1, 3))
        ]
        activities = [
            {
                "kind": (kind := rng.choice(list(ACTIVITY_TEXTS))),
                "template": rng.choice(ACTIVITY_TEXTS[kind]),
                "days_ago": rng.randint(0, 180),
                "minutes": rng.randint(8 * 60, 18 * 60),
                "by_ar": rng.random() < 0.25,
            }
            for _ in range(rng.randint(0, 8))
        ]
        if draft["account_number"] in existing:
            continue
        _create_customer(draft, contacts, activities, users=users, actor=actor, today=today)
        created += 1
    return created


@transaction.atomic
def _create_customer(draft, contacts, activities, *, users, actor, today) -> None:
    customer = services.create_customer(actor=actor, **draft)
    domain = _ascii_slug(draft["display_name"])[:20] or "example"
    for index, contact in enumerate(contacts):
        local = ".".join(filter(None, (_ascii_slug(part) for part in contact["name"].split()[-2:]))) or "contact"
        email = f"{local}{index or ''}@{domain}.example"
        services.add_contact(actor=actor, customer=customer, email=email, **contact)
    for activity in sorted(activities, key=lambda a: -a["days_ago"]):
        occurred_at = timezone.make_aware(
            datetime.combine(today - timedelta(days=activity["days_ago"]), time())
            + timedelta(minutes=activity["minutes"])
        )
        services.log_activity(
            actor=actor,
            performed_by=users["ar"] if activity["by_ar"] else customer.owner,
            customer=customer,
            kind=activity["kind"],
            text=activity["template"].format(contact=contacts[0]["name"]),
            occurred_at=min(occurred_at, timezone.now()),
        )


def _ascii_slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())
