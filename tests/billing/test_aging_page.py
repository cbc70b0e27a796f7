"""The aging report page (/ar/aging/): who has it, what it shows as of a day, its filters and sorts,
the drill-down to a customer's invoices open that day, and that its totals are the ledger's."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import aging, aging_views, selectors, services
from billing.models import Invoice
from billing.selectors import open_position
from config.databases import reports_database
from crm.models import Customer
from tests.billing.conftest import issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
PAST_DAY = date(2026, 6, 10)


@dataclass
class Receivables:
    """The customers and documents of `seed_receivables`, by what they are for."""

    northwind: Customer  # USD, owned by rep-own: partly paid, credited, a later invoice
    contoso: Customer  # USD, owned by rep-other: a write-off, credit on account, a later invoice
    lyon: Customer  # EUR, owned by rep-own: a foreign-currency invoice paid in part at another rate
    idle: Customer  # USD, owned by rep-other: never invoiced
    partly_paid: Invoice
    credited: Invoice
    bad_debt: Invoice
    foreign: Invoice


def seed_receivables(*, clerk, approver, rep, other_rep) -> Receivables:
    """A realistic mix, dated through 2026, written through the billing services: issues, partial
    payments, a credit note, a write-off, unapplied credit and a EUR invoice (rates as set by the
    caller's `eur_rates`: 1.10 from January, 1.20 from April, so the EUR payment realises FX)."""
    northwind = CustomerFactory(owner=rep, display_name="Northwind Traders", account_number="C-000001")
    contoso = CustomerFactory(owner=other_rep, display_name="Contoso Pharmaceuticals", account_number="C-000002")
    lyon = CustomerFactory(owner=rep, display_name="Lyon Optique", account_number="C-000003", currency="EUR")
    idle = CustomerFactory(owner=other_rep, display_name="Idle Industries", account_number="C-000004")

    # Northwind: 100.00 due 1 April, 40.00 paid mid-April; 250.00 due 19 June, 30.00 credited
    # in June; 75.00 issued in September.
    partly_paid = issue(clerk, northwind, "100.00", on=date(2026, 3, 2))
    services.record_payment(
        actor=clerk, customer=northwind, amount=Decimal(40), received_on=date(2026, 4, 15), method="bank_transfer"
    )
    credited = issue(clerk, northwind, "250.00", on=date(2026, 5, 20))
    services.issue_credit_note(
        actor=clerk,
        customer=northwind,
        invoice=credited,
        reason="Damaged goods",
        lines=[services.LineInput(description="Damaged goods", unit_price=Decimal(30))],
        issue_date=date(2026, 6, 1),
    )
    issue(clerk, northwind, "75.00", on=date(2026, 9, 1))

    # Contoso: 500.00 from February, written off on 1 July; 80.00 received on account in May
    # (unapplied credit); 60.00 issued in August.
    bad_debt = issue(clerk, contoso, "500.00", on=date(2026, 2, 1))
    write_off = services.request_write_off(actor=clerk, invoice=bad_debt, reason="Gone out of business")
    services.approve_write_off(actor=approver, write_off=write_off, written_off_on=date(2026, 7, 1))
    services.record_payment(
        actor=clerk,
        customer=contoso,
        amount=Decimal(80),
        received_on=date(2026, 5, 20),
        method="cheque",
        auto_apply=False,
    )
    issue(clerk, contoso, "60.00", on=date(2026, 8, 1))

    # Lyon: 200.00 EUR at 1.10 (220.00 USD), 50.00 EUR paid in May at 1.20.
    foreign = issue(clerk, lyon, "200.00", on=date(2026, 3, 2))
    services.record_payment(
        actor=clerk, customer=lyon, amount=Decimal(50), received_on=date(2026, 5, 4), method="bank_transfer"
    )
    return Receivables(northwind, contoso, lyon, idle, partly_paid, credited, bad_debt, foreign)


@pytest.fixture
def receivables(ar_clerk, finance_admin, sales_rep, other_rep, eur_rates) -> Receivables:
    return seed_receivables(clerk=ar_clerk, approver=finance_admin, rep=sales_rep, other_rep=other_rep)


def report_url(**params) -> str:
    from urllib.parse import urlencode

    return reverse("aging:report") + ("?" + urlencode(params) if params else "")


def ledger_check_net(as_of: date) -> str:
    """The "open invoices less unapplied credit" figure `manage.py ledger_check` prints."""
    out = io.StringIO()
    call_command("ledger_check", "--as-of", as_of.isoformat(), stdout=out)
    [line] = [line for line in out.getvalue().splitlines() if "Open invoices less unapplied credit" in line]
    return line.split()[-1]


# --- Who has the page --------------------------------------------------------------------------


def test_accounts_receivable_and_finance_admins_have_the_page(client, ar_clerk, finance_admin):
    for person in (ar_clerk, finance_admin):
        client.force_login(person)
        assert client.get(report_url()).status_code == 200


def test_a_sales_rep_has_no_aging_page_not_even_for_their_own_customer(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    assert client.get(report_url()).status_code == 403
    assert client.get(reverse("aging:customer", args=[own_customer.pk])).status_code == 403
    assert client.post(reverse("aging:export"), {"export_format": "csv"}).status_code == 403


def test_signing_in_is_asked_first(client):
    response = client.get(report_url())
    assert response.status_code == 302 and "login" in response.url


# --- Totals are the ledger's -------------------------------------------------------------------


@pytest.mark.parametrize("as_of", [PAST_DAY, date(2026, 8, 15), None], ids=["june", "august", "today"])
def test_the_totals_equal_the_open_position_that_ledger_check_reports(client, ar_clerk, receivables, as_of):
    as_of = as_of or timezone.localdate()
    client.force_login(ar_clerk)
    response = client.get(report_url(as_of=as_of.isoformat()))
    totals = response.context["report"].totals
    position = open_position(as_of=as_of)
    assert (totals.open_total, totals.unapplied, totals.total) == (
        position.open_invoices,
        position.unapplied_credit,
        position.net,
    )
    assert f"{totals.total:,.2f}" == ledger_check_net(as_of)
    assert f'id="aging-table-total">{totals.total:,.2f}<' in response.content.decode()


def test_a_past_day_shows_what_was_open_then_bucketed_by_days_overdue_then(client, ar_clerk, receivables):
    """On 10 June: Northwind's 60.00 left of March's invoice was 70 days overdue, May's 250.00
    not yet due (credited only on 1 June by 30.00: 220.00); Contoso's 500.00 from February was
    99 days overdue (written off only in July) less 80.00 of credit; Lyon's 150.00 EUR at the
    invoice's rate 1.10 (165.00 USD) was 70 days overdue."""
    client.force_login(ar_clerk)
    rows = {row.name: row for row in client.get(report_url(as_of=PAST_DAY.isoformat())).context["report"].rows}
    assert set(rows) == {"Northwind Traders", "Contoso Pharmaceuticals", "Lyon Optique"}
    northwind, contoso, lyon = rows["Northwind Traders"], rows["Contoso Pharmaceuticals"], rows["Lyon Optique"]
    assert (northwind.buckets["current"], northwind.buckets["61_90"], northwind.total) == (
        Decimal("220.00"),
        Decimal("60.00"),
        Decimal("280.00"),
    )
    assert (contoso.buckets["over_90"], contoso.unapplied, contoso.total) == (
        Decimal("500.00"),
        Decimal("80.00"),
        Decimal("420.00"),
    )
    assert (lyon.currency, lyon.buckets["61_90"]) == ("EUR", Decimal("165.00"))


def test_each_row_shows_the_customer_linked_its_owner_and_currency(client, ar_clerk, receivables, sales_rep):
    client.force_login(ar_clerk)
    response = client.get(report_url(as_of=PAST_DAY.isoformat()))
    html = response.content.decode()
    assert f'href="{reverse("crm:customer_detail", args=[receivables.lyon.pk])}"' in html
    lyon = next(row for row in response.context["report"].rows if row.customer_id == receivables.lyon.pk)
    assert (lyon.owner_name, lyon.currency) == (sales_rep.get_full_name(), "EUR")


def test_bucket_totals_are_on_the_page_as_text_beside_the_chart(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = client.get(report_url(as_of=PAST_DAY.isoformat()))
    html = response.content.decode()
    assert 'id="aging-summary"' in html and 'aria-describedby="aging-summary"' in html
    assert "90+ days overdue" in html and "500.00 USD" in html
    assert '<script id="aging-chart-data" type="application/json">' in html
    assert "vendor/chart.js/chart.umd.min.js" in html and "js/aging.js" in html


def test_the_chart_stacks_each_reps_open_invoices_by_bucket(client, ar_clerk, receivables, sales_rep, other_rep):
    client.force_login(ar_clerk)
    chart = client.get(report_url(as_of=PAST_DAY.isoformat())).context["report"].chart
    assert chart["labels"] == [other_rep.get_full_name(), sales_rep.get_full_name()]  # 500.00 before 445.00
    by_bucket = {dataset["key"]: dataset["data"] for dataset in chart["datasets"]}
    assert by_bucket["over_90"] == [500.0, 0.0]
    assert by_bucket["61_90"] == [0.0, 225.0]  # Northwind's 60.00 and Lyon's 165.00
    assert by_bucket["current"] == [0.0, 220.0]


def test_a_day_without_receivables_says_what_to_do(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = client.get(report_url(as_of="2026-01-15"))
    assert response.context["report"].rows == []
    assert "Nothing was owed and no credit was held" in response.content.decode()


def test_a_day_in_the_future_is_refused_next_to_the_date(client, ar_clerk):
    client.force_login(ar_clerk)
    response = client.get(report_url(as_of="2099-01-01"))
    assert response.status_code == 200 and response.context["report"] is None
    assert "Pick today or an earlier day" in response.content.decode()


def test_the_page_opens_on_today(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    assert client.get(report_url()).context["report"].as_of == timezone.localdate()


# --- Filters and sorting ---------------------------------------------------------------------


def test_filtering_by_rep_shows_their_customers_and_their_totals(client, ar_clerk, receivables, other_rep):
    client.force_login(ar_clerk)
    report = client.get(report_url(as_of=PAST_DAY.isoformat(), owner=other_rep.pk)).context["report"]
    assert [row.name for row in report.rows] == ["Contoso Pharmaceuticals"]
    assert report.totals.total == Decimal("420.00")


def test_customers_without_an_owner_can_be_picked(client, ar_clerk, receivables):
    unowned = CustomerFactory(owner=None, display_name="Orphan Ltd")
    issue(ar_clerk, unowned, "10.00", on=date(2026, 6, 1))
    client.force_login(ar_clerk)
    report = client.get(report_url(as_of=PAST_DAY.isoformat(), owner="none")).context["report"]
    assert [(row.name, row.owner_name) for row in report.rows] == [("Orphan Ltd", "")]


def test_filtering_by_currency_shows_the_customers_invoiced_in_it(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    report = client.get(report_url(as_of=PAST_DAY.isoformat(), currency="EUR")).context["report"]
    assert [row.name for row in report.rows] == ["Lyon Optique"]
    assert report.totals.total == Decimal("165.00")  # still in the base currency


def test_an_unknown_rep_is_refused_next_to_the_field(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = client.get(report_url(owner="999999"))
    assert response.context["report"] is None
    assert "That rep owns none of the customers" in response.content.decode()


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-total", ["Contoso Pharmaceuticals", "Northwind Traders", "Lyon Optique"]),  # 420, 280, 165
        ("-over_90", ["Contoso Pharmaceuticals", "Northwind Traders", "Lyon Optique"]),  # 500, then by total
        ("name", ["Contoso Pharmaceuticals", "Lyon Optique", "Northwind Traders"]),
    ],
)
def test_rows_sort_by_total_by_90_plus_or_by_name(client, ar_clerk, receivables, sort, expected):
    client.force_login(ar_clerk)
    report = client.get(report_url(as_of=PAST_DAY.isoformat(), sort=sort)).context["report"]
    assert [row.name for row in report.rows] == expected


def test_sorting_by_90_plus_puts_the_oldest_debt_first(client, ar_clerk, receivables):
    """By 15 August Lyon's March invoice is 106 days overdue (165.00) and Contoso's bad debt is
    written off: Lyon leads on 90+, Northwind (more owed in total) on the total."""
    client.force_login(ar_clerk)
    by_90 = client.get(report_url(as_of="2026-08-15", sort="-over_90")).context["report"].rows
    by_total = client.get(report_url(as_of="2026-08-15", sort="-total")).context["report"].rows
    assert by_90[0].name == "Lyon Optique" and by_total[0].name == "Northwind Traders"


def test_sortable_headers_keep_the_filters(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    html = client.get(report_url(as_of=PAST_DAY.isoformat(), currency="USD")).content.decode()
    assert 'href="?as_of=2026-06-10&amp;currency=USD&amp;sort=-over_90"' in html
    assert 'href="?as_of=2026-06-10&amp;currency=USD&amp;sort=-total"' in html


def test_the_totals_row_covers_every_page(client, ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(aging_views, "ROWS_PER_PAGE", 2)
    client.force_login(ar_clerk)
    response = client.get(report_url(as_of=PAST_DAY.isoformat(), page=2))
    assert len(response.context["page"].object_list) == 1
    assert response.context["report"].totals.total == open_position(as_of=PAST_DAY).net
    assert "(all pages)" in response.content.decode()


# --- Drill-down ------------------------------------------------------------------------------


def test_the_drilldown_lists_the_invoices_open_that_day_with_days_overdue_then(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    url = reverse("aging:customer", args=[receivables.northwind.pk])
    response = client.get(url, {"as_of": PAST_DAY.isoformat()}, headers=HTMX)
    assert response.templates[0].name == "billing/aging/_invoices.html"
    invoices = response.context["drilldown"].invoices
    assert [(i.number, i.days_overdue, i.open_amount, i.open_base) for i in invoices] == [
        (receivables.partly_paid.number, 70, Decimal("60.00"), Decimal("60.00")),
        (receivables.credited.number, 0, Decimal("220.00"), Decimal("220.00")),
    ]
    html = response.content.decode()
    assert "2026-04-01" in html and "not due" in html and "<html" not in html


def test_the_drilldown_shows_a_foreign_invoice_in_its_currency_and_the_base(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    url = reverse("aging:customer", args=[receivables.lyon.pk])
    response = client.get(url, {"as_of": PAST_DAY.isoformat()}, headers=HTMX)
    [invoice] = response.context["drilldown"].invoices
    assert (invoice.currency, invoice.open_amount, invoice.open_base) == ("EUR", Decimal("150.00"), Decimal("165.00"))
    assert "150.00 EUR" in response.content.decode()


def test_without_javascript_the_drilldown_is_a_page_with_the_way_back(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    url = reverse("aging:customer", args=[receivables.contoso.pk])
    response = client.get(url, {"as_of": PAST_DAY.isoformat(), "currency": "USD"})
    html = response.content.decode()
    assert "<html" in html and 'href="/ar/aging/?as_of=2026-06-10&amp;currency=USD&amp;sort=-total"' in html
    # Picking another day there keeps the report's other filters.
    assert '<input type="hidden" name="currency" value="USD">' in html
    assert response.context["drilldown"].row.unapplied == Decimal("80.00")
    assert "Less unapplied credit" in html


def test_the_page_links_each_row_to_its_drilldown_for_the_same_day(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    html = client.get(report_url(as_of=PAST_DAY.isoformat())).content.decode()
    url = reverse("aging:customer", args=[receivables.lyon.pk])
    assert f'href="{url}?as_of=2026-06-10&amp;sort=-total"' in html
    assert f'aria-controls="aging-detail-{receivables.lyon.pk}"' in html


def test_the_drilldown_of_a_customer_that_does_not_exist_is_404(client, ar_clerk):
    client.force_login(ar_clerk)
    assert client.get(reverse("aging:customer", args=[987654])).status_code == 404


# --- Queries ---------------------------------------------------------------------------------


def _customers_with_invoices(count: int, *, actor, owners) -> None:
    for number in range(count):
        customer = CustomerFactory(owner=owners[number % len(owners)])
        issue(actor, customer, "100.00", on=date(2026, 3, 2))


def _queries_for_page(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(report_url(as_of="2026-06-30"))
    assert response.status_code == 200
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_customers(
    client, ar_clerk, sales_rep, other_rep, django_assert_max_num_queries
):
    client.force_login(ar_clerk)
    _customers_with_invoices(3, actor=ar_clerk, owners=[sales_rep, other_rep])
    with_three = _queries_for_page(client)
    _customers_with_invoices(27, actor=ar_clerk, owners=[sales_rep, other_rep])
    with django_assert_max_num_queries(with_three):
        response = client.get(report_url(as_of="2026-06-30"))
    assert response.context["report"].totals.customers == 30


# --- Summed, sorted and paged by the database --------------------------------------------------


def test_each_page_holds_the_next_rows_in_the_chosen_order(client, ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(aging_views, "ROWS_PER_PAGE", 2)
    client.force_login(ar_clerk)
    first = client.get(report_url(as_of=PAST_DAY.isoformat(), sort="-total")).context["report"]
    second = client.get(report_url(as_of=PAST_DAY.isoformat(), sort="-total", page=2)).context["report"]
    assert [row.name for row in first.rows] == ["Contoso Pharmaceuticals", "Northwind Traders"]
    assert [row.name for row in second.rows] == ["Lyon Optique"]
    assert first.totals == second.totals and first.totals.customers == 3


def test_todays_aging_read_from_the_kept_balances_is_the_one_rebuilt_from_events(receivables):
    today = timezone.localdate()
    assert selectors.reads_kept_balances(today)
    assert selectors.aging(as_of=today).rows == selectors.aging(as_of=today, kept=False).rows


def test_a_payment_dated_after_the_day_is_not_in_that_days_aging(ar_clerk, receivables):
    today = timezone.localdate()
    before = selectors.aging(as_of=today).rows[receivables.northwind.pk]
    services.record_payment(
        actor=ar_clerk,
        customer=receivables.northwind,
        amount=Decimal(50),
        received_on=today + timedelta(days=3),
        method="bank_transfer",
    )
    # The balances kept on the invoices are now those of three days from now: rebuilt instead.
    assert not selectors.reads_kept_balances(today)
    assert selectors.aging(as_of=today).rows[receivables.northwind.pk] == before


@pytest.mark.parametrize("as_of", [date(2026, 6, 30), None], ids=["rebuilt from events", "kept balances"])
def test_each_bucket_holds_the_invoices_as_many_days_past_due(ar_clerk, as_of):
    """Due on the day: current; 1 and 30 days past due: 1–30; 31 and 60: 31–60; 61 and 90: 61–90;
    91: 90+ (invoices due on issue, a power of two each, so that each sum says which went where)."""
    as_of = as_of or timezone.localdate()
    customer = CustomerFactory(payment_terms_days=0)
    for power, days in enumerate((0, 1, 30, 31, 60, 61, 90, 91)):
        issue(ar_clerk, customer, f"{2**power}.00", on=as_of - timedelta(days=days))
    row = selectors.aging(as_of=as_of).rows[customer.pk]
    assert row.buckets == {
        "current": Decimal(1),
        "1_30": Decimal(2 + 4),
        "31_60": Decimal(8 + 16),
        "61_90": Decimal(32 + 64),
        "over_90": Decimal(128),
    }


def test_the_number_of_queries_does_not_grow_with_the_pages(
    client, ar_clerk, sales_rep, other_rep, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(aging_views, "ROWS_PER_PAGE", 5)
    client.force_login(ar_clerk)
    _customers_with_invoices(12, actor=ar_clerk, owners=[sales_rep, other_rep])
    first_page = _queries_for_page(client)
    with django_assert_max_num_queries(first_page):
        response = client.get(report_url(as_of="2026-06-30", page=3))
    assert [len(response.context["page"].object_list), response.context["page"].paginator.count] == [2, 12]


def test_an_invoice_paid_in_part_before_the_day_and_settled_after_it_shows_what_was_left_that_day(ar_clerk):
    """The invoice settled since had 40.00 paid before the day: 60.00 was open then; the one
    nothing was ever applied to counts in full (its look-ups are skipped, the figure is the same)."""
    customer = CustomerFactory(payment_terms_days=0)
    issue(ar_clerk, customer, "100.00", on=date(2026, 4, 1))
    issue(ar_clerk, customer, "8.00", on=date(2026, 6, 1))
    for amount, received_on in ((40, date(2026, 4, 15)), (60, date(2026, 7, 1))):
        services.record_payment(
            actor=ar_clerk, customer=customer, amount=Decimal(amount), received_on=received_on, method="cheque"
        )
    row = selectors.aging(as_of=date(2026, 6, 10)).rows[customer.pk]
    assert row.buckets == {
        "current": Decimal(0),
        "1_30": Decimal("8.00"),
        "31_60": Decimal(0),
        "61_90": Decimal("60.00"),
        "over_90": Decimal(0),
    }


def test_the_raw_sql_floor_agrees_with_the_aging_customer_by_customer(ar_clerk, receivables):
    """The bench's floor (bench/floor.py) computes the same figures by another road, on any day."""
    from bench.floor import aging_floor

    for as_of in (date(2026, 3, 10), PAST_DAY, date(2026, 7, 15), timezone.localdate()):
        report = selectors.aging(as_of=as_of).rows
        floor = aging_floor(as_of=as_of)
        assert {pk: (row.buckets, row.unapplied) for pk, row in report.items()} == {
            pk: (row.buckets, row.unapplied) for pk, row in floor.items() if any(row.buckets.values()) or row.unapplied
        }, as_of


def test_the_report_reads_from_the_reports_database(client, ar_clerk, receivables, monkeypatch):
    """The page, its drill-down and its exports read through config.databases.reports_database()
    (the read replica when one is configured)."""
    used = []

    def cursor_on(**kwargs):
        used.append(kwargs.get("using"))
        return selectors.report_cursor(**kwargs)

    def transaction_on(**kwargs):
        used.append(kwargs.get("using"))
        return selectors.report_transaction(**kwargs)

    monkeypatch.setattr(aging, "report_cursor", cursor_on)
    monkeypatch.setattr(aging, "report_transaction", transaction_on)
    client.force_login(ar_clerk)
    assert client.get(report_url(as_of=PAST_DAY.isoformat())).status_code == 200
    drilldown = reverse("aging:customer", args=[receivables.northwind.pk])
    assert client.get(drilldown, {"as_of": PAST_DAY.isoformat()}).status_code == 200
    assert len(used) >= 3
    assert set(used) == {reports_database()}
