"""The customer page's quick figures, dates and links (billing.templatetags.billing_format) show
exactly what the built-in filters and tags they stand for show."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.template import Context, Template
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat
from django.test import override_settings
from django.urls import reverse
from django.utils import translation
from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.templatetags.billing_format import amount, format_amount, iso_date

# Money as the database returns it (up to 18 digits, 2 to 4 places) and figures computed from it.
money = st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), allow_nan=False, places=4)


@settings(max_examples=400, deadline=None)
@given(value=money)
@example(value=Decimal("-0.004"))
@example(value=Decimal("0.005"))
@example(value=Decimal("-0.005"))
@example(value=Decimal("999.995"))
@example(value=Decimal("1E+3"))
@example(value=Decimal("0E-10"))
def test_an_amount_reads_as_floatformat_2g_shows_it(value):
    assert format_amount(value) == floatformat(value, "2g")
    assert amount(value) == floatformat(value, "2g")


@given(value=st.integers(min_value=-(10**18), max_value=10**18))
def test_a_whole_number_reads_as_floatformat_2g_shows_it(value):
    assert amount(value) == floatformat(value, "2g")


def test_what_is_not_a_plain_number_is_left_to_floatformat():
    for value in (None, "", "abc", "12.345", 1.005, Decimal("NaN"), Decimal("-Infinity"), Decimal("1E+40")):
        assert amount(value) == floatformat(value, "2g")


def test_a_language_that_writes_numbers_differently_gets_floatformat():
    with translation.override("de"):
        assert amount(Decimal("1234567.891")) == floatformat(Decimal("1234567.891"), "2g") == "1.234.567,89"


def test_the_amount_filter_is_safe_in_a_template():
    html = Template("{% load billing_format %}{{ value|amount }}").render(Context({"value": Decimal("-1234.5")}))
    assert html == "-1,234.50"


def test_an_iso_date_reads_as_the_date_filter_shows_it():
    assert iso_date(date(2026, 3, 9)) == date_filter(date(2026, 3, 9), "Y-m-d") == "2026-03-09"
    assert iso_date(None) == date_filter(None, "Y-m-d") == ""


@override_settings(TIME_ZONE="America/New_York")
def test_a_moment_is_dated_in_local_time_as_the_date_filter_dates_it():
    # 02:00 UTC on the 10th is still the 9th in New York.
    moment = datetime(2026, 3, 10, 2, 0, tzinfo=ZoneInfo("UTC"))
    template = Template('{% load billing_format %}{{ moment|iso_date }} {{ moment|date:"Y-m-d" }}')
    assert template.render(Context({"moment": moment})) == "2026-03-09 2026-03-09"


def test_a_row_url_is_the_url_tag_s_address_for_each_row():
    template = Template(
        "{% load billing_format %}{% for pk in pks %}"
        "{% row_url 'invoices:detail' customer pk %}|{% url 'invoices:detail' customer pk %};"
        "{% endfor %}"
    )
    rows = template.render(Context({"customer": 7, "pks": [1, 22, 987654321]})).rstrip(";").split(";")
    for row in rows:
        quick, url = row.split("|")
        assert quick == url
    assert rows[1].split("|")[0] == reverse("invoices:detail", args=[7, 22])


def test_a_row_url_can_be_kept_in_a_variable_and_takes_any_argument_the_url_tag_takes():
    template = Template(
        "{% load billing_format %}{% row_url 'billing:void_invoice' customer pk as void_url %}"
        "{{ void_url }} {% row_url 'crm:customer_detail' '12' %}"
    )
    html = template.render(Context({"customer": 3, "pk": 5}))
    assert html == f"{reverse('billing:void_invoice', args=[3, 5])} {reverse('crm:customer_detail', args=['12'])}"
