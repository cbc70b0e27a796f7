"""The daily paths the collections desk and the admin console were built for, in a real browser,
and the main pages at laptop and tablet widths (screenshots: `make screenshots`)."""

import csv
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import Invoice, PromiseToPay
from tests.billing.conftest import issue
from tests.browser.conftest import TABLET, log_in, screenshot
from tests.factories import ContactFactory, CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def overdue_book(ar_clerk, sales_rep, other_rep, own_customer, others_customer):
    """Two customers with overdue invoices (the owner's is the bigger debt), one not yet due."""
    today = timezone.localdate()
    ContactFactory(customer=own_customer, name="Ana Lopez", email="ana@northwind.example", is_primary=True)
    ContactFactory(customer=others_customer, name="Li Wei", email="li@contoso.example", is_primary=True)
    old = issue(ar_clerk, own_customer, "1000.00", on=today - timedelta(days=75))
    newer = issue(ar_clerk, own_customer, "400.00", on=today - timedelta(days=40))
    issue(ar_clerk, others_customer, "250.00", on=today - timedelta(days=45))
    issue(ar_clerk, CustomerFactory(owner=other_rep), "90.00", on=today - timedelta(days=3))
    return {"old": old, "newer": newer}


def test_ar_runs_the_aging_exports_it_records_a_promise_and_a_payment(page, ar_clerk, own_customer, overdue_book):
    old, newer = overdue_book["old"], overdue_book["newer"]
    log_in(page, ar_clerk.username)

    # The day starts on the worklist: the biggest, oldest debt first.
    expect(page.get_by_role("heading", name="Collections worklist")).to_be_visible()
    worklist = page.get_by_role("table", name="Overdue invoices to chase")
    expect(worklist.locator("tbody").first).to_contain_text(old.number)
    screenshot(page, "ar-worklist")

    # The aging as of today, then exported.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Aging").click()
    page.get_by_label("As of").fill(timezone.localdate().isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#aging-total")).to_contain_text("1,740.00")
    screenshot(page, "ar-aging")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="CSV, one row per customer").click()
    with open(download_info.value.path(), encoding="utf-8-sig") as exported:
        rows = list(csv.reader(exported))
    assert any(own_customer.display_name in row for row in rows)

    # Back to the worklist: Ana promises to pay the oldest invoice within a week.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    page.get_by_role("button", name=f"Act on {old.number}").click()
    actions = page.locator(f"#worklist-actions-{old.pk}")
    promised_on = timezone.localdate() + timedelta(days=7)
    actions.get_by_label("Amount").fill("1000.00")
    actions.get_by_label("Will pay by").fill(promised_on.isoformat())
    actions.get_by_role("button", name="Record promise").click()
    expect(page.locator(f"#worklist-item-{old.pk}")).to_contain_text(f"by {promised_on:%Y-%m-%d}")
    assert PromiseToPay.objects.get().invoices.get() == old

    # The money arrives: recorded on the customer's page, applied to the oldest invoice.
    page.get_by_role("link", name=own_customer.display_name).first.click()
    billing = page.get_by_role("region", name="Billing")
    expect(page.locator("#billing-balance")).to_have_text("1,400.00")
    billing.get_by_text("Record a payment").click()
    billing.get_by_label("Amount", exact=True).fill("1000.00")
    billing.get_by_label("Method").select_option("bank_transfer")
    billing.get_by_role("button", name="Record payment").click()
    expect(page.locator("#billing-balance")).to_have_text("400.00")
    expect(page.locator(f"#invoice-{old.pk} .badge")).to_have_text("Paid")

    # The paid invoice has left the worklist; the other one is still there.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    expect(page.locator(f"#worklist-item-{old.pk}")).to_have_count(0)
    expect(page.locator(f"#worklist-item-{newer.pk}")).to_be_visible()
    assert Invoice.objects.get(pk=old.pk).status == Invoice.Status.PAID


def test_the_collections_pages_open_for_ar(page, ar_clerk, overdue_book):
    log_in(page, ar_clerk.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Receivables dashboard")).to_be_visible()
    screenshot(page, "ar-dashboard")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dunning").click()
    expect(page.get_by_text(overdue_book["old"].number).first).to_be_visible()
    screenshot(page, "ar-dunning")


def test_an_admin_grants_a_customer_to_a_rep_who_then_sees_it(
    browser, live_server, finance_admin, sales_rep, others_customer
):
    admin = browser.new_context(base_url=live_server.url).new_page()
    log_in(admin, finance_admin.username)
    expect(admin.get_by_role("heading", name="Admin console")).to_be_visible()
    screenshot(admin, "admin-console")
    admin.get_by_role("link", name="Manage users, roles and access").click()
    admin.get_by_role("link", name=sales_rep.get_full_name()).click()
    admin.get_by_label("Find a customer by name or account number").fill("Contoso")
    admin.get_by_role("button", name=f"Grant {others_customer.display_name}").click()
    granted = admin.get_by_role("region", name="Granted (1)")
    expect(granted).to_contain_text(others_customer.display_name)
    screenshot(admin, "admin-user-access")

    rep = browser.new_context(base_url=live_server.url).new_page()
    log_in(rep, sales_rep.username)
    expect(rep.get_by_role("link", name=others_customer.display_name)).to_be_visible()

    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Console").click()
    admin.get_by_role("link", name="See who changed what").click()
    expect(admin.get_by_text("Access granted").first).to_be_visible()
    screenshot(admin, "admin-audit")


@pytest.mark.parametrize(
    ("username_fixture", "path_names"),
    [
        ("sales_rep", ["/customers/", "customer"]),
        ("ar_clerk", ["/ar/worklist/", "/ar/aging/", "/ar/dashboard/", "/ar/dunning/", "customer"]),
        ("finance_admin", ["/console/", "/console/users/", "/console/audit/", "/ar/write-offs/"]),
    ],
)
def test_the_main_pages_fit_a_tablet_without_scrolling_sideways(
    request, browser, live_server, own_customer, overdue_book, username_fixture, path_names
):
    user = request.getfixturevalue(username_fixture)
    page = browser.new_context(base_url=live_server.url, viewport=TABLET).new_page()
    log_in(page, user.username)
    for path in path_names:
        page.goto(own_customer.get_absolute_url() if path == "customer" else path)
        expect(page.locator("main")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {TABLET['width']}px"
