"""Configuring dunning levels in the admin console: billing.dunning_levels.save_dunning_level keeps
the ladder in order and refuses templates that do not render; the pages show refusals next to the
field and preview the letter against a sample invoice."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing.dunning_levels import preview_letter, save_dunning_level
from billing.models import DunningLevel
from tests.billing.conftest import issue

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# The three default levels (billing/migrations/0006_collections_setup.py): +7, +21, +45 days.
FOURTH = {
    "number": 4,
    "name": "Handed to collections",
    "days_overdue": 60,
    "subject": "Invoice {{ invoice.number }} goes to collections",
    "body": "Dear {{ contact_name|default:customer.display_name }}, {{ open_amount }} {{ currency }} is still open.",
    "attach_statement": True,
    "is_active": True,
}


def level(number: int) -> DunningLevel:
    return DunningLevel.objects.get(level=number)


def refusal(**fields) -> dict:
    with pytest.raises(ValidationError) as refused:
        save_dunning_level(**fields)
    return refused.value.message_dict


# --- The service -------------------------------------------------------------------------------


def test_a_new_level_is_saved_with_its_author_in_the_history(finance_admin):
    saved = save_dunning_level(actor=finance_admin, **FOURTH)
    assert (saved.level, saved.days_overdue, saved.name) == (4, 60, "Handed to collections")
    assert saved.history.get().history_user == finance_admin


def test_editing_a_level_keeps_one_row_and_records_the_change(finance_admin):
    second = level(2)
    save_dunning_level(actor=finance_admin, level=second, days_overdue=30, is_active=False)
    second.refresh_from_db()
    assert (second.days_overdue, second.is_active) == (30, False)
    assert DunningLevel.objects.count() == 3
    assert second.history.latest().history_user == finance_admin


@pytest.mark.parametrize(
    ("number", "days", "says"),
    [
        (4, 45, "must come later: more than 45 days"),  # the same day as level 3
        (4, 30, "must come later: more than 45 days"),
        (0, 3, "Levels are numbered from 1."),
    ],
)
def test_days_overdue_must_rise_strictly_with_the_level(finance_admin, number, days, says):
    errors = refusal(actor=finance_admin, **{**FOURTH, "number": number, "days_overdue": days})
    assert says in " ".join(errors.get("days_overdue", []) + errors.get("number", []))
    assert DunningLevel.objects.count() == 3


def test_moving_a_level_past_the_next_one_is_refused(finance_admin):
    errors = refusal(actor=finance_admin, level=level(1), days_overdue=21)
    assert errors == {
        "days_overdue": ["Level 2 (Firm reminder) goes out at +21 days; level 1 must come earlier: fewer than 21 days."]
    }
    assert level(1).days_overdue == 7


def test_a_number_taken_by_another_level_is_refused(finance_admin):
    errors = refusal(actor=finance_admin, **{**FOURTH, "number": 3, "days_overdue": 90})
    assert errors["number"] == ["Level 3 exists already (Final notice); choose another number."]


@pytest.mark.parametrize(
    ("field", "template", "says"),
    [
        ("subject", "Invoice {{ invoice.number ", "Template error"),
        ("body", "{% if open_amount %}unclosed", "Template error"),
        ("body", "{% include 'base.html' %}", "Letters cannot use {% include %}"),
        ("body", "{% load humanize %}{{ open_amount|intcomma }}", "Letters cannot use {% load %}"),
        ("subject", "{{ open_amount|no_such_filter }}", "Invalid filter"),
    ],
)
def test_a_template_that_does_not_render_is_refused_and_nothing_saved(finance_admin, field, template, says):
    errors = refusal(actor=finance_admin, level=level(1), **{field: template})
    assert list(errors) == [field]
    assert says in errors[field][0]
    assert getattr(level(1), field) != template


def test_unknown_fields_are_a_programming_error(finance_admin):
    with pytest.raises(TypeError):
        save_dunning_level(actor=finance_admin, level=level(1), letters=[])


# --- The preview -------------------------------------------------------------------------------


def test_the_preview_uses_the_open_invoice_longest_past_due(clerk, own_customer):
    invoice = issue(clerk, own_customer, "250.00")
    shown = preview_letter(
        number=1, name="Nudge", days_overdue=7, subject="Invoice {{ invoice.number }}", body="{{ open_amount }}"
    )
    assert (shown.subject, shown.body, shown.is_made_up) == (f"Invoice {invoice.number}", "250.00", False)


def test_without_invoices_the_preview_uses_a_made_up_one():
    shown = preview_letter(number=1, name="Nudge", days_overdue=9, subject="{{ days_overdue }} days", body="")
    assert (shown.subject, shown.is_made_up, shown.subject_error) == ("9 days", True, "")


def test_the_preview_reports_each_templates_error_apart():
    shown = preview_letter(number=1, name="", days_overdue=7, subject="{% if %}", body="Fine")
    assert shown.subject_error.startswith("Template error")
    assert (shown.body, shown.body_error) == ("Fine", "")


# --- The pages ---------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, finance_admin):
    client.force_login(finance_admin)
    return client


def test_the_list_shows_the_ladder_in_order(admin_client):
    response = admin_client.get(reverse("console:dunning_levels"))
    assert [shown.level for shown in response.context["levels"]] == [1, 2, 3]
    assert "Friendly reminder" in response.text


def test_adding_a_level_through_the_page(admin_client, finance_admin):
    data = {**FOURTH, "attach_statement": "on", "is_active": "on"}
    response = admin_client.post(reverse("console:dunning_level_add"), data)
    assert response.status_code == 302
    assert level(4).history.get().history_user == finance_admin


def test_the_add_form_suggests_the_next_level(admin_client):
    form = admin_client.get(reverse("console:dunning_level_add")).context["form"]
    assert (form.initial["number"], form.initial["days_overdue"]) == (4, 59)


def test_a_broken_template_is_shown_next_to_its_field_and_nothing_changes(admin_client):
    first = level(1)
    data = {
        "number": 1,
        "name": first.name,
        "days_overdue": 7,
        "subject": "Reminder {{ invoice.number",
        "body": first.body,
        "is_active": "on",
    }
    response = admin_client.post(reverse("console:dunning_level_edit", args=[first.pk]), data)
    assert response.status_code == 422
    assert response.context["form"].errors["subject"][0].startswith("Template error")
    assert 'id="subject-errors"' in response.text
    assert level(1).subject == first.subject


def test_an_out_of_order_level_is_shown_next_to_days_overdue(admin_client):
    data = {**FOURTH, "days_overdue": 10}
    response = admin_client.post(reverse("console:dunning_level_add"), data)
    assert response.status_code == 422
    assert "must come later" in response.context["form"].errors["days_overdue"][0]
    assert not DunningLevel.objects.filter(level=4).exists()


def test_the_edit_page_previews_the_saved_letter(admin_client, clerk, own_customer):
    invoice = issue(clerk, own_customer, "80.00")
    response = admin_client.get(reverse("console:dunning_level_edit", args=[level(1).pk]))
    assert f"Reminder: invoice {invoice.number} is overdue" in response.text


def test_the_live_preview_renders_what_is_typed(admin_client):
    response = admin_client.post(
        reverse("console:dunning_level_preview"),
        {"number": "2", "days_overdue": "21", "subject": "Now {{ days_overdue }} days", "body": "<b>{{ currency }}"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "Now 21 days" in response.text
    assert "&lt;b&gt;" in response.text  # shown as text, never as markup
    assert 'id="subject-live-error" hx-swap-oob="true"' in response.text


def test_the_live_preview_puts_a_syntax_error_next_to_the_field(admin_client):
    response = admin_client.post(
        reverse("console:dunning_level_preview"), {"subject": "{% for %}", "body": "ok"}, **HTMX
    )
    assert response.status_code == 200
    assert response.context["preview"].subject_error.startswith("Template error")
    assert "The subject does not render" in response.text


def test_accounts_receivable_cannot_change_levels(client, ar_clerk):
    client.force_login(ar_clerk)
    response = client.post(reverse("console:dunning_level_edit", args=[level(1).pk]), {**FOURTH, "number": 1})
    assert response.status_code == 403
    assert level(1).name == "Friendly reminder"
