"""Measures 1 and 2: the rep's "my customers" page, the AR all-customers list, and the customer
360 page of the customer with the most invoices — server time through Django's test client
(middleware, view, selectors, template), at page sizes 25 and 100 for the lists."""

from __future__ import annotations

import re
from contextlib import contextmanager
from unittest import mock

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count
from django.test import Client
from django.urls import reverse

from bench.stats import timed
from billing.models import Invoice
from crm import views as crm_views
from crm.models import Customer
from crm.roles import Role

PAGE_SIZES = (25, 100)
# A row of the customer list links its name to the customer's page.
ROW_LINK = re.compile(r'<td><a href="/customers/(\d+)/"')


def busiest_rep():
    """The rep who owns the most customers (seed_scale gives one of them 2 000)."""
    top = (
        Customer.objects.filter(owner__isnull=False)
        .values("owner")
        .annotate(customers=Count("pk"))
        .order_by("-customers", "owner")
        .first()
    )
    if top is None:
        raise LookupError("no customer has an owner: seed the database first")
    return get_user_model().objects.get(pk=top["owner"]), top["customers"]


def ar_user():
    """An active Accounts Receivable user; one is made when the seed has none (the read measures
    run inside a transaction that is rolled back, so nothing stays)."""
    user = (
        get_user_model()
        .objects.filter(is_active=True, groups__name=Role.ACCOUNTS_RECEIVABLE.value)
        .order_by("pk")
        .first()
    )
    if user is None:
        user = get_user_model().objects.create_user("bench-ar", email="bench-ar@example.com")
        user.groups.add(Group.objects.get(name=Role.ACCOUNTS_RECEIVABLE.value))
    return user


@contextmanager
def _page_size(size: int):
    """The customer list shows CUSTOMERS_PER_PAGE rows; the bench sets it to compare the query
    counts of two page sizes (also passed as ?per_page= for a view that reads it)."""
    if hasattr(crm_views, "CUSTOMERS_PER_PAGE"):
        with mock.patch.object(crm_views, "CUSTOMERS_PER_PAGE", size):
            yield
    else:
        yield


def _get(client: Client, url: str) -> str:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return response.content.decode()


def _list_page(user, *, size: int, repeat: int, warmup: int) -> dict:
    client = Client()
    client.force_login(user)
    url = f"{reverse('crm:customer_list')}?per_page={size}"
    with _page_size(size):
        measured = timed(lambda: _get(client, url), repeat=repeat, warmup=warmup)
    return {**measured.as_dict(), "url": url, "page_size": size, "rows": len(ROW_LINK.findall(measured.last))}


def measure_lists(*, repeat: int, warmup: int) -> dict:
    rep, rep_customers = busiest_rep()
    ar = ar_user()
    results = {}
    for size in PAGE_SIZES:
        results[f"my_customers_{size}"] = {
            **_list_page(rep, size=size, repeat=repeat, warmup=warmup),
            "user": rep.get_username(),
            "customers_visible": rep_customers,
        }
    for size in PAGE_SIZES:
        results[f"ar_list_{size}"] = {
            **_list_page(ar, size=size, repeat=repeat, warmup=warmup),
            "user": ar.get_username(),
            "customers_visible": Customer.objects.count(),
        }
    return results


def measure_customer_360(*, repeat: int, warmup: int) -> dict:
    """The whole page (every panel is in its one response; none loads afterwards), as two people
    open it: the rep who owns the customer, and Accounts Receivable, whose page also carries the
    money, promise and dispute forms."""
    top = Invoice.objects.values("customer").annotate(invoices=Count("pk")).order_by("-invoices", "customer").first()
    if top is None:
        raise LookupError("no invoices: seed the database first")
    customer = Customer.objects.select_related("owner").get(pk=top["customer"])
    url = reverse("crm:customer_detail", args=[customer.pk])
    results = {}
    for name, user in (("customer_360", customer.owner or ar_user()), ("customer_360_ar", ar_user())):
        client = Client()
        client.force_login(user)
        measured = timed(lambda client=client: _get(client, url), repeat=repeat, warmup=warmup)
        results[name] = {
            **measured.as_dict(),
            "url": url,
            "user": user.get_username(),
            "customer_id": customer.pk,
            "invoices": top["invoices"],
            "bytes": len(measured.last),
        }
    return results
