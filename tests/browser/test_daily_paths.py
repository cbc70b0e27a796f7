"""Each role's daily path, in a real browser."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import Payment
from crm.models import Activity
from crm.roles import Role
from tests.billing.conftest import issue
from tests.browser.conftest import log_in, screenshot
from tests.factories import ActivityFactory, ContactFactory, CustomerFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_sales_rep_finds_a_customer_and_adds_a_note_in_place(
    page, sales_rep, ar_clerk, own_customer, others_customer
):
    ContactFactory(customer=own_customer, name="Ana Lopez", is_primary=True)
    today = timezone.localdate()
    issue(ar_clerk, own_customer, "1200.00", on=today - timedelta(days=50))
    issue(ar_clerk, own_customer, "300.00", on=today - timedelta(days=5))
    for customer in CustomerFactory.create_batch(3, owner=sales_rep):
        issue(ar_clerk, customer, "450.00", on=today - timedelta(days=20))

    log_in(page, sales_rep.username)
    expect(page.get_by_role("heading", name="My customers")).to_be_visible()
    screenshot(page, "rep-my-customers")
    expect(page.get_by_text(others_customer.display_name)).to_have_count(0)

    page.get_by_label("Search").fill("Northwind")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name=own_customer.display_name).click()
    expect(page.get_by_role("heading", name=own_customer.display_name)).to_be_visible()
    expect(page.get_by_text("Ana Lopez")).to_be_visible()

    detail_url = page.url
    page.get_by_label("Type").select_option("call")
    page.get_by_label("What happened").fill("Called Ana: payment run on Friday.")
    page.get_by_role("button", name="Add to timeline").click()

    timeline = page.get_by_role("list", name="Activity timeline")
    expect(timeline.get_by_text("Called Ana: payment run on Friday.")).to_be_visible()
    expect(page.get_by_label("What happened")).to_have_value("")  # a fresh form, swapped in place
    assert page.url == detail_url
    assert Activity.objects.get().actor == sales_rep
    screenshot(page, "rep-customer-360")


def test_a_sales_rep_cannot_open_another_reps_customer(page, sales_rep, others_customer):
    log_in(page, sales_rep.username)
    response = page.goto(f"/customers/{others_customer.pk}/")
    assert response.status == 404
    expect(page.get_by_text(others_customer.display_name)).to_have_count(0)


def test_an_ar_clerk_narrows_all_customers_to_one_rep_and_logs_a_call(page, ar_clerk, other_rep, others_customer):
    CustomerFactory.create_batch(2, owner=UserFactory(role=Role.SALES))
    ActivityFactory(customer=others_customer, text="Promised to pay by the 30th.")

    log_in(page, ar_clerk.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="All customers")).to_be_visible()
    page.get_by_label("Owner").select_option(str(other_rep.pk))
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)

    page.get_by_role("link", name=others_customer.display_name).click()
    expect(page.get_by_text("Promised to pay by the 30th.")).to_be_visible()
    page.get_by_label("Type").select_option("call")
    page.get_by_label("What happened").fill("Chased the overdue balance; no answer.")
    page.get_by_role("button", name="Add to timeline").click()
    expect(page.get_by_text("Chased the overdue balance; no answer.")).to_be_visible()


def test_a_finance_admin_reassigns_a_customer_and_reads_who_changed_it(
    page, finance_admin, sales_rep, other_rep, own_customer
):
    log_in(page, finance_admin.username)
    expect(page).to_have_url(re.compile(r"/console/$"))

    page.goto(f"/admin/crm/customer/{own_customer.pk}/change/")
    # The owner field is an autocomplete (select2): open it, type, pick the match.
    page.locator("#id_owner + .select2").click()
    page.locator(".select2-search__field").fill(other_rep.username)
    page.locator(".select2-results__option", has_text=other_rep.username).click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("was changed successfully")).to_be_visible()

    page.goto(f"/customers/{own_customer.pk}/")
    page.get_by_role("navigation", name="Sections of this page").get_by_role("link", name="History").click()
    latest_change = page.locator("#history tbody tr").first
    expect(latest_change).to_contain_text(f"Owner: {sales_rep.username} → {other_rep.username}")
    expect(latest_change).to_contain_text(finance_admin.get_full_name())
    assert not sales_rep.has_perm("crm.view_customer", own_customer)


def test_an_ar_clerk_records_a_payment_and_sees_the_invoices_settle_in_place(page, ar_clerk, own_customer):
    today = timezone.localdate()
    older = issue(ar_clerk, own_customer, "100.00", on=today - timedelta(days=45))
    newer = issue(ar_clerk, own_customer, "80.00", on=today - timedelta(days=10))

    log_in(page, ar_clerk.username)
    page.goto(f"/customers/{own_customer.pk}/")
    billing = page.get_by_role("region", name="Billing")
    expect(page.locator("#billing-balance")).to_have_text("180.00")
    expect(page.locator("#billing-overdue")).to_have_text("100.00")
    page.evaluate("window.notReloaded = true")

    billing.get_by_text("Record a payment").click()
    billing.get_by_label("Amount", exact=True).fill("150.00")
    billing.get_by_label("Method").select_option("bank_transfer")
    billing.get_by_label("Reference").fill("BT-2026-118")
    expect(billing.get_by_label("Apply automatically to the oldest invoices")).to_be_checked()
    billing.get_by_role("button", name="Record payment").click()

    expect(billing.get_by_role("status")).to_contain_text(f"Applied 100.00 USD to {older.number}")
    expect(page.locator(f"#invoice-{older.pk} .badge")).to_have_text("Paid")
    expect(page.locator(f"#invoice-{newer.pk} .badge")).to_have_text("Partially paid")
    expect(page.locator(f"#invoice-{newer.pk}")).to_contain_text("30.00")
    expect(page.locator("#billing-balance")).to_have_text("30.00")
    expect(page.locator("#billing-overdue")).to_have_text("0.00")
    assert page.evaluate("window.notReloaded") is True  # swapped in place, not a new page
    payment = Payment.objects.get()
    assert (payment.amount, payment.reference, payment.created_by) == (150, "BT-2026-118", ar_clerk)
