"""The receivables dashboard: its figures against a constructed book, the cash forecast's rules,
and the page (who may open it, what it shows, a query count that does not grow with the data)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import dashboard, services
from billing.dashboard import ForecastInvoice, ForecastPromise, build_forecast, month_ends
from billing.models import PromiseInvoice, PromiseToPay
from config import audit
from config.audit import save_as
from ledger.money import ZERO
from tests.billing.conftest import issue
from tests.factories import CustomerFactory

D = Decimal

# --- A constructed book ------------------------------------------------------------------------
#
# Own customer (terms 30 days):
#   INV-1 1 000.00 issued 2 Mar, due 1 Apr; 400.00 paid 10 Apr          → 600.00 open, 61–90 on 15 Jun
#   INV-2   500.00 issued 1 Jun, due 1 Jul                              → current
#   100.00 received 10 Jun, bounced 12 Jun                               → not collected
#   10.00 received 20 Jun (after the as-of date)                         → not collected
# Other customer:
#   INV-3   300.00 issued 1 May, due 31 May; 50.00 paid 20 May           → 250.00 open, 1–30 on 15 Jun
#   250.00 received 5 Jun, not applied                                   → collected; unapplied credit
AS_OF = date(2026, 6, 15)


@pytest.fixture
def actor(db):
    return audit.system_actor("tests")


def pay(actor, customer, amount, on, *, auto_apply=True):
    return services.record_payment(
        actor=actor, customer=customer, amount=D(amount), received_on=on, method="bank_transfer", auto_apply=auto_apply
    )


@pytest.fixture
def book(actor, own_customer, others_customer):
    inv1 = issue(actor, own_customer, "1000.00", on=date(2026, 3, 2))
    pay(actor, own_customer, "400.00", date(2026, 4, 10))
    inv2 = issue(actor, own_customer, "500.00", on=date(2026, 6, 1))
    bounced = pay(actor, own_customer, "100.00", date(2026, 6, 10), auto_apply=False)
    services.fail_payment(actor=actor, payment=bounced, failed_on=date(2026, 6, 12))
    pay(actor, own_customer, "10.00", date(2026, 6, 20), auto_apply=False)
    inv3 = issue(actor, others_customer, "300.00", on=date(2026, 5, 1))
    pay(actor, others_customer, "50.00", date(2026, 5, 20))
    pay(actor, others_customer, "250.00", date(2026, 6, 5), auto_apply=False)
    return {"inv1": inv1, "inv2": inv2, "inv3": inv3}


def test_kpis_add_up_to_the_cent(book):
    kpis = dashboard.kpis(as_of=AS_OF)

    assert kpis.position.open_invoices == D("1350.00")
    assert kpis.position.unapplied_credit == D("250.00")
    assert kpis.total_ar == D("1100.00")
    assert kpis.aging.buckets == {
        "current": D("500.00"),
        "1_30": D("250.00"),
        "31_60": D("0.00"),
        "61_90": D("600.00"),
        "over_90": D("0.00"),
    }
    assert kpis.overdue == D("850.00")
    assert kpis.overdue_percent == D("63.0")  # 850 / 1 350


def test_dso_shows_the_numbers_in_its_formula(book):
    dso = dashboard.kpis(as_of=AS_OF).dso

    # Sales of the 90 days to 15 Jun: INV-2 and INV-3 (INV-1 was issued on 2 Mar, before them).
    assert (dso.receivables, dso.credit_sales, dso.period_days) == (D("1350.00"), D("800.00"), 90)
    assert dso.days == D("151.9")  # 1 350 ÷ 800 × 90 = 151.875
    assert "credit sales of the last 90 days" in dso.formula


def test_collected_this_month_counts_payments_received_since_the_first(book):
    kpis = dashboard.kpis(as_of=AS_OF)

    # 250.00 on 5 Jun; not the bounced 100.00, not May's 50.00, not the 10.00 of 20 Jun.
    assert kpis.collected_from == date(2026, 6, 1)
    assert kpis.collected == D("250.00")


def test_collected_leaves_out_a_payment_that_bounced_later_only_from_that_day(book):
    assert dashboard.collected(start=date(2026, 6, 1), end=date(2026, 6, 11)) == D("350.00")
    assert dashboard.collected(start=date(2026, 6, 1), end=date(2026, 6, 12)) == D("250.00")


def test_trend_gives_dso_and_overdue_share_at_each_of_the_last_six_month_ends(book):
    points = {point.month_end: point for point in dashboard.trend(as_of=AS_OF)}

    assert list(points) == [
        date(2025, 12, 31),
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
    ]
    may = points[date(2026, 5, 31)]
    # INV-1 (600.00, overdue) and INV-3 (250.00, due that very day: not yet overdue).
    assert (may.open_invoices, may.overdue, may.overdue_percent) == (D("850.00"), D("600.00"), D("70.6"))
    # INV-1 issued on 2 Mar is just outside the 90 days to 31 May: only INV-3's 300.00 counts.
    assert (may.dso.credit_sales, may.dso.days) == (D("300.00"), D("255.0"))
    april = points[date(2026, 4, 30)]
    assert (april.overdue_percent, april.dso.days) == (D("100.0"), D("54.0"))
    march = points[date(2026, 3, 31)]
    assert (march.overdue_percent, march.dso.days) == (D("0.0"), D("90.0"))
    february = points[date(2026, 2, 28)]
    assert (february.overdue_percent, february.dso.days) == (None, None)


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2026, 6, 15), [date(2025, 12, 31), date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]),
        (date(2026, 6, 30), [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]),
        (date(2024, 3, 1), [date(2023, 9, 30), date(2023, 10, 31), date(2023, 11, 30), date(2023, 12, 31)]),
    ],
)
def test_month_ends_are_the_last_six_on_or_before_the_as_of_date(as_of, expected):
    ends = month_ends(as_of)
    assert len(ends) == 6
    assert ends[:4] == expected
    assert ends[-1] <= as_of and (ends[-1] + timedelta(days=1)).day == 1


# --- The cash forecast, pure ---------------------------------------------------------------------
#
# Today is Wednesday 17 Jun 2026: week 1 runs Monday 15 – Sunday 21 Jun, week 8 3 – 9 Aug.
TODAY = date(2026, 6, 17)


def week_of(forecast, day: date):
    [week] = [week for week in forecast.weeks if week.starts_on <= day <= week.ends_on]
    return week


def invoice(invoice_id, due, open_amount, *, customer=1, base=None, disputed=False):
    return ForecastInvoice(
        invoice_id=invoice_id,
        customer_id=customer,
        due_date=due,
        open_amount=D(open_amount),
        open_base=D(base if base is not None else open_amount),
        disputed=disputed,
    )


def forecast(invoices, promises=(), days_late=None, default=ZERO):
    return build_forecast(
        invoices=invoices, promises=promises, days_late=days_late or {}, default_days_late=default, today=TODAY
    )


def test_weeks_run_monday_to_sunday_from_this_week():
    result = forecast([])

    assert [(week.number, week.starts_on, week.ends_on) for week in result.weeks[:2]] == [
        (1, date(2026, 6, 15), date(2026, 6, 21)),
        (2, date(2026, 6, 22), date(2026, 6, 28)),
    ]
    assert len(result.weeks) == 8
    assert result.weeks[-1].ends_on == date(2026, 8, 9)


def test_an_invoice_is_expected_in_the_week_of_its_due_date_when_paid_on_time():
    result = forecast([invoice(1, date(2026, 6, 21), "100.00"), invoice(2, date(2026, 6, 22), "40.00")])

    assert week_of(result, date(2026, 6, 21)).expected == D("100.00")  # Sunday: still week 1
    assert week_of(result, date(2026, 6, 22)).expected == D("40.00")  # Monday: week 2


def test_the_due_date_moves_by_the_customers_average_days_late():
    result = forecast(
        [
            invoice(1, date(2026, 6, 20), "100.00", customer=1),  # +10.4 → 30 Jun
            invoice(2, date(2026, 7, 10), "50.00", customer=2),  # −5 (pays early) → 5 Jul
            invoice(3, date(2026, 6, 25), "30.00", customer=3),  # no history: company's 2.5 → 3 → 28 Jun
        ],
        days_late={1: D("10.4"), 2: D("-5")},
        default=D("2.5"),
    )

    assert result.parts[1] == [(date(2026, 6, 30), D("100.00"), "expected")]
    assert result.parts[2] == [(date(2026, 7, 5), D("50.00"), "expected")]
    assert result.parts[3] == [(date(2026, 6, 28), D("30.00"), "expected")]
    assert week_of(result, date(2026, 6, 28)).expected == D("30.00")  # Sunday of week 2
    assert week_of(result, date(2026, 6, 29)).expected == D("150.00")  # 30 Jun and Sunday 5 Jul


def test_an_invoice_later_than_its_customer_usually_pays_is_expected_soon_in_week_one():
    result = forecast(
        [invoice(1, date(2026, 5, 1), "80.00"), invoice(2, date(2026, 6, 10), "20.00")],
        days_late={1: D(10)},
    )

    # 1 May + 10 = 11 May and 10 Jun + 10 = 20 Jun: the first is past, the second still to come.
    assert result.weeks[0].overdue == D("80.00")
    assert result.weeks[0].expected == D("20.00")
    assert result.weeks[0].total == D("100.00")


def test_an_open_promise_sets_the_date_and_amount_and_history_takes_the_rest():
    result = forecast(
        [invoice(1, date(2026, 6, 30), "600.00"), invoice(2, date(2026, 6, 30), "400.00")],
        [ForecastPromise(promise_id=9, promised_on=date(2026, 7, 8), amount=D("500.00"), invoice_ids=(1, 2))],
        days_late={1: D(14)},
    )

    # Split by what is open: 300.00 and 200.00 on 8 Jul; the rest on 30 Jun + 14 = 14 Jul.
    assert result.parts[1] == [
        (date(2026, 7, 8), D("300.00"), "promised"),
        (date(2026, 7, 14), D("300.00"), "expected"),
    ]
    assert result.parts[2] == [
        (date(2026, 7, 8), D("200.00"), "promised"),
        (date(2026, 7, 14), D("200.00"), "expected"),
    ]
    assert week_of(result, date(2026, 7, 8)).promised == D("500.00")
    assert week_of(result, date(2026, 7, 14)).expected == D("500.00")


def test_a_promise_counts_only_what_is_still_to_come_and_never_more_than_is_open():
    partly_paid = ForecastPromise(
        promise_id=1, promised_on=date(2026, 6, 26), amount=D("500.00"), invoice_ids=(1,), paid_since_made=D("450.00")
    )
    too_big = ForecastPromise(promise_id=2, promised_on=date(2026, 7, 3), amount=D("900.00"), invoice_ids=(2,))
    result = forecast(
        [invoice(1, date(2026, 7, 31), "300.00"), invoice(2, date(2026, 7, 31), "100.00")], [partly_paid, too_big]
    )

    assert result.parts[1][0] == (date(2026, 6, 26), D("50.00"), "promised")
    assert result.parts[2] == [(date(2026, 7, 3), D("100.00"), "promised")]


def test_a_promise_whose_date_has_passed_is_expected_today():
    result = forecast(
        [invoice(1, date(2026, 5, 1), "70.00")],
        [ForecastPromise(promise_id=1, promised_on=date(2026, 6, 16), amount=D("70.00"), invoice_ids=(1,))],
    )

    assert result.parts[1] == [(TODAY, D("70.00"), "promised")]
    assert (result.weeks[0].promised, result.weeks[0].overdue) == (D("70.00"), D("0.00"))


def test_a_promise_is_carried_in_base_currency_at_the_invoices_value():
    result = forecast(
        [invoice(1, date(2026, 6, 30), "100.00", base="110.00")],
        [ForecastPromise(promise_id=1, promised_on=date(2026, 7, 1), amount=D("33.33"), invoice_ids=(1,))],
    )

    [(_, promised, _), (_, rest, _)] = result.parts[1]
    assert (promised, rest) == (D("36.66"), D("73.34"))  # the parts add up to the 110.00


def test_a_disputed_invoice_is_at_risk_not_expected_and_takes_no_part_of_a_promise():
    result = forecast(
        [invoice(1, date(2026, 6, 30), "250.00", disputed=True), invoice(2, date(2026, 6, 30), "100.00")],
        [ForecastPromise(promise_id=1, promised_on=date(2026, 7, 1), amount=D("80.00"), invoice_ids=(1, 2))],
    )

    assert (result.disputed, result.disputed_invoices) == (D("250.00"), 1)
    assert 1 not in result.parts
    assert result.parts[2] == [(date(2026, 7, 1), D("80.00"), "promised"), (date(2026, 6, 30), D("20.00"), "expected")]
    assert result.within_horizon == D("100.00")


def test_beyond_eight_weeks_is_later():
    result = forecast(
        [
            invoice(1, date(2026, 8, 9), "10.00"),
            invoice(2, date(2026, 8, 10), "20.00"),
            invoice(3, date(2026, 9, 1), "5"),
        ],
        [ForecastPromise(promise_id=1, promised_on=date(2026, 8, 20), amount=D("5"), invoice_ids=(3,))],
    )

    assert result.weeks[-1].expected == D("10.00")  # Sunday 9 Aug closes week 8
    assert (result.later_expected, result.later_promised, result.later) == (D("20.00"), D("5"), D("25.00"))
    assert result.total_expected == D("35.00")


def test_cumulative_cash_runs_over_the_weeks():
    result = forecast(
        [
            invoice(1, date(2026, 6, 18), "10.00"),
            invoice(2, date(2026, 7, 1), "5.00"),
            invoice(3, date(2026, 7, 2), "1"),
        ]
    )

    assert [week.cumulative for week in result.weeks] == [D("10.00"), D("10.00"), D("16.00"), *[D("16.00")] * 5]


def test_a_promise_split_over_many_invoices_adds_up_to_the_cent():
    invoices = [invoice(n, date(2026, 7, 31), "33.33") for n in range(1, 4)]
    result = forecast(
        invoices,
        [ForecastPromise(promise_id=1, promised_on=date(2026, 7, 1), amount=D("50.00"), invoice_ids=(1, 2, 3))],
    )

    promised = [part for parts in result.parts.values() for part in parts if part[2] == "promised"]
    assert sum(amount for _, amount, _ in promised) == D("50.00")
    assert week_of(result, date(2026, 7, 1)).promised == D("50.00")


# --- The cash forecast, from the database ---------------------------------------------------------


def make_promise(actor, customer, invoices, amount, *, promised_on, made_on, status=PromiseToPay.Status.OPEN):
    """A promise as collections records it (test data: the recording service is another page's)."""
    promise = PromiseToPay(
        customer=customer,
        amount=D(amount),
        currency=customer.currency,
        promised_on=promised_on,
        made_on=made_on,
        status=status,
        settled_on=None if status == PromiseToPay.Status.OPEN else promised_on + timedelta(days=1),
    )
    save_as(promise, actor=actor)
    for promised in invoices:
        save_as(PromiseInvoice(promise=promise, invoice=promised, open_when_promised=promised.open_amount), actor=actor)
    return promise


@pytest.fixture
def histories(actor, own_customer, others_customer):
    """Own customer paid 100.00 ten days late; a third customer paid 300.00 two days early:
    the company-wide average is (100 × 10 − 300 × 2) / 400 = 1.0 day late."""
    late = issue(actor, own_customer, "100.00", on=date(2026, 4, 1))  # due 1 May
    pay(actor, own_customer, "100.00", date(2026, 5, 11))
    early_payer = CustomerFactory(owner=own_customer.owner)
    issue(actor, early_payer, "300.00", on=date(2026, 4, 1))
    pay(actor, early_payer, "300.00", date(2026, 4, 29))
    return {"late": late, "early_payer": early_payer}


def test_cash_forecast_reads_history_promises_and_disputes_from_the_books(
    actor, histories, own_customer, others_customer
):
    own = issue(actor, own_customer, "200.00", on=date(2026, 6, 1))  # due 1 Jul + 10 → 11 Jul
    others = issue(actor, others_customer, "400.00", on=date(2026, 6, 1))  # no history: +1 → 2 Jul
    promised = issue(actor, others_customer, "150.00", on=date(2026, 6, 2))
    disputed = issue(actor, histories["early_payer"], "90.00", on=date(2026, 6, 1))
    services.set_dispute(actor=actor, invoice=disputed, disputed=True, reason="Wrong quantity")
    make_promise(actor, others_customer, [promised], "100.00", promised_on=date(2026, 6, 24), made_on=date(2026, 6, 10))
    payment = pay(actor, others_customer, "30.00", date(2026, 6, 12), auto_apply=False)
    services.allocate_payment(
        actor=actor, payment=payment, invoice=promised, amount=D("30.00"), allocated_on=date(2026, 6, 12)
    )
    # A promise no longer open does not count.
    make_promise(
        actor,
        own_customer,
        [own],
        "200.00",
        promised_on=date(2026, 6, 15),
        made_on=date(2026, 6, 5),
        status=PromiseToPay.Status.BROKEN,
    )

    result = dashboard.cash_forecast(today=TODAY)

    assert result.default_days_late == D("1.0")
    assert result.parts[own.pk] == [(date(2026, 7, 11), D("200.00"), "expected")]
    assert result.parts[others.pk] == [(date(2026, 7, 2), D("400.00"), "expected")]
    # 100.00 promised, 30.00 of it paid since: 70.00 on 24 Jun; the 50.00 left follows history
    # (due 2 Jul + 1 → 3 Jul).
    assert result.parts[promised.pk] == [
        (date(2026, 6, 24), D("70.00"), "promised"),
        (date(2026, 7, 3), D("50.00"), "expected"),
    ]
    assert (result.disputed, result.disputed_invoices) == (D("90.00"), 1)
    assert result.within_horizon == D("720.00")


def test_without_any_history_invoices_are_expected_on_their_due_date(actor, own_customer):
    own = issue(actor, own_customer, "200.00", on=date(2026, 6, 1))

    result = dashboard.cash_forecast(today=TODAY)

    assert result.default_days_late == D("0")
    assert result.parts[own.pk] == [(date(2026, 7, 1), D("200.00"), "expected")]


# --- The page ----------------------------------------------------------------------------------

URL = reverse("dashboard:index")


def test_the_page_shows_the_figures_to_accounts_receivable(client, ar_clerk, book):
    client.force_login(ar_clerk)

    response = client.get(URL, {"as_of": AS_OF.isoformat()})

    assert response.status_code == 200
    page = response.content.decode()
    assert "1,100.00" in page  # total receivables
    assert "63.0%" in page
    assert "= 1,350.00 ÷ 800.00 × 90 = 151.9" in page
    assert "credit sales of the last 90 days" in page
    assert 'id="dashboard-charts"' in page
    assert "vendor/chart.js/chart.umd.min.js" in page
    # Readable without JavaScript: each chart's figures are in a table on the page.
    for table in ("forecast-figures", "aging-figures", "trend-figures"):
        assert f'id="{table}"' in page


def test_finance_admins_may_open_the_page(client, finance_admin):
    client.force_login(finance_admin)

    response = client.get(URL)

    assert response.status_code == 200
    assert "Nothing is owed" in response.content.decode()


def test_a_sales_rep_is_refused(client, sales_rep):
    client.force_login(sales_rep)

    assert client.get(URL).status_code == 403


def test_an_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert "login" in response.url


def test_an_as_of_date_in_the_future_is_refused_next_to_the_field(client, ar_clerk):
    client.force_login(ar_clerk)
    tomorrow = timezone.localdate() + timedelta(days=1)

    response = client.get(URL, {"as_of": tomorrow.isoformat()})

    assert response.status_code == 200
    assert response.context["board"].as_of == timezone.localdate()
    assert "pick today or an earlier day" in response.content.decode()


def _grow(actor, owner, count, today):
    for n in range(count):
        customer = CustomerFactory(owner=owner)
        paid = issue(actor, customer, "120.00", on=today - timedelta(days=80))
        pay(actor, customer, "120.00", today - timedelta(days=40 + n % 7))
        assert paid.pk
        open_invoice = issue(actor, customer, f"{50 + n}.00", on=today - timedelta(days=n % 45))
        if n % 3 == 0:
            make_promise(actor, customer, [open_invoice], "20.00", promised_on=today + timedelta(days=7), made_on=today)
        if n % 5 == 0:
            services.set_dispute(actor=actor, invoice=open_invoice, disputed=True, reason="Quality")


def _count_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL)
    assert response.status_code == 200
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_customers_and_invoices(
    client, ar_clerk, actor, sales_rep, django_assert_max_num_queries
):
    client.force_login(ar_clerk)
    today = timezone.localdate()
    _grow(actor, sales_rep, 3, today)
    few = _count_queries(client)

    _grow(actor, sales_rep, 27, today)
    with django_assert_max_num_queries(few):
        many = _count_queries(client)

    assert many == few
    # A fixed budget: each aging on the page first probes (a few indexed look-ups) whether anything
    # is dated after its day, to read the stored balances when nothing is.
    assert few <= 50


def test_the_charts_get_one_value_per_bucket_week_and_month_end(book):
    board = dashboard.dashboard(as_of=AS_OF, today=TODAY)

    charts = json.loads(json.dumps(board.chart_data()))

    assert charts["currency"] == "USD"
    assert charts["aging"]["values"] == [500.0, 250.0, 0.0, 600.0, 0.0]
    assert len(charts["forecast"]["labels"]) == len(charts["forecast"]["cumulative"]) == 8
    assert charts["trend"]["dso"][-1] == 255.0
    assert charts["trend"]["overdue_percent"][-3:] == [0.0, 100.0, 70.6]
