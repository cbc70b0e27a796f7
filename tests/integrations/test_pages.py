"""The sync pages (/sync/) and the customer page's sync badge: what each role sees and can do.

Data is set up through integrations.services where one exists; links, conflicts and quarantine
items are written as the engine leaves them (tests/url_rules/sync.py). No test runs the engine:
a queued run's Celery task is replaced, and its progress is written as a worker would.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from integrations import access, services
from integrations.core.canonical import CUSTOMER, INVOICE
from integrations.core.errors import ReauthorizationRequired
from integrations.models import (
    Conflict,
    Connection,
    EntitySetting,
    MappingVersion,
    OutboxEntry,
    QuarantineItem,
    SyncRun,
)
from tests.factories import CustomerFactory
from tests.url_rules.sync import FakeConsent, connected, linked_customer, open_conflict, quarantined

pytestmark = pytest.mark.django_db


@pytest.fixture
def consent(monkeypatch) -> FakeConsent:
    fake = FakeConsent()
    monkeypatch.setattr("integrations.providers.authorization_module", lambda provider: fake)
    return fake


@pytest.fixture
def queued_tasks(monkeypatch) -> list[dict]:
    """Runs handed to Celery, without a broker or a worker."""
    sent: list[dict] = []
    monkeypatch.setattr("integrations.tasks.sync_connection.delay", lambda **kwargs: sent.append(kwargs))
    return sent


@pytest.fixture
def books(finance_admin) -> Connection:
    return connected(actor=finance_admin)


@pytest.fixture
def admin_client(client, finance_admin):
    client.force_login(finance_admin)
    return client


@pytest.fixture
def ar_client(client, ar_clerk):
    client.force_login(ar_clerk)
    return client


def url(name: str, **kwargs) -> str:
    return reverse(f"integrations:{name}", kwargs=kwargs or None)


def finished_run(connection, **fields) -> SyncRun:
    run = services.request_run(connection=connection, trigger=SyncRun.Trigger.SCHEDULE)
    now = timezone.now()
    values = {"status": SyncRun.Status.SUCCEEDED, "started_at": now - timedelta(seconds=12), "finished_at": now}
    SyncRun.objects.filter(pk=run.pk).update(**{**values, **fields})
    return SyncRun.objects.get(pk=run.pk)


# --- access --------------------------------------------------------------------------------------


def test_a_sales_rep_is_refused_the_sync_pages(client, sales_rep, books):
    client.force_login(sales_rep)

    assert client.get(url("connection_list")).status_code == 403


def test_ar_sees_a_connection_without_the_forms_that_change_it(ar_client, books):
    page = ar_client.get(url("connection_detail", connection_pk=books.pk)).content.decode()

    assert "Health, last 24 hours" in page
    assert url("connection_run", connection_pk=books.pk) not in page
    assert url("connection_schedule", connection_pk=books.pk) not in page
    assert url("mapping_list", connection_pk=books.pk) not in page


def test_the_navigation_links_to_sync_for_ar_and_not_for_a_rep(client, ar_clerk, sales_rep):
    client.force_login(ar_clerk)
    assert f'href="{url("connection_list")}">Sync</a>' in client.get(reverse("jobs:list")).content.decode()

    client.force_login(sales_rep)
    assert f'href="{url("connection_list")}">Sync</a>' not in client.get(reverse("jobs:list")).content.decode()


def test_only_finance_admins_may_manage_sync(sales_rep, ar_clerk, finance_admin):
    assert [access.may_manage_sync(user) for user in (sales_rep, ar_clerk, finance_admin)] == [False, False, True]


# --- the connection list ---------------------------------------------------------------------------


def test_a_connection_needing_reauthorisation_has_a_banner_with_reconnect(admin_client, books):
    services.mark_needs_reauthorization(connection_id=books.pk, reason="invalid_grant")

    page = admin_client.get(url("connection_list")).content.decode()

    assert "Books needs re-authorisation." in page
    assert "Access was refused: invalid_grant" in page
    assert f'action="{url("connection_connect", connection_pk=books.pk)}"' in page


def test_a_failing_connection_shows_its_last_error(admin_client, books):
    Connection.objects.filter(pk=books.pk).update(
        status=Connection.Status.FAILING, status_detail="QuickBooks answered 503 three times", consecutive_failures=3
    )

    page = admin_client.get(url("connection_list")).content.decode()

    assert "Books is failing:" in page
    assert "Last error: QuickBooks answered 503 three times" in page


def test_health_shows_latency_error_rate_and_backlog_of_the_last_day(
    admin_client, books, own_customer, others_customer
):
    finished_run(books, requests=40, request_ms=12_000, request_errors=2)
    finished_run(books, requests=60, request_ms=8_000, request_errors=3)
    # A run older than the window does not count.
    finished_run(books, requests=1000, request_ms=1_000_000, created_at=timezone.now() - timedelta(days=2))
    services.repush_with_latest_mapping(
        actor=None, connection=books, entity=CUSTOMER, local_ids=[own_customer.pk, others_customer.pk]
    )
    open_conflict(books, own_customer)
    quarantined(books, local_id=own_customer.pk)

    response = admin_client.get(url("connection_list"))
    row = response.context["rows"][0]

    assert (row.average_latency_ms, row.error_rate, row.window_runs) == (200, 5, 2)
    assert (row.pending_outbox, row.open_conflicts, row.open_quarantine) == (2, 1, 1)
    assert "200 ms" in response.content.decode()


def test_next_run_is_the_periodic_tasks_last_run_plus_its_interval(admin_client, books):
    last = timezone.now() - timedelta(minutes=5)
    PeriodicTask.objects.filter(pk=books.schedule_id).update(last_run_at=last)

    row = admin_client.get(url("connection_list")).context["rows"][0]

    assert row.schedule.every_minutes == services.DEFAULT_EVERY_MINUTES
    assert row.schedule.next_run_at == last + timedelta(minutes=services.DEFAULT_EVERY_MINUTES)


def test_the_connection_list_reads_in_the_same_queries_for_more_connections_and_runs(
    admin_client, finance_admin, django_assert_max_num_queries
):
    first = connected(actor=finance_admin, name="First", tenant_id="realm-first")
    finished_run(first, requests=3, request_ms=300)
    with CaptureQueriesContext(db_connection) as few:
        admin_client.get(url("connection_list"))
    for number in range(4):
        more = connected(actor=finance_admin, name=f"More {number}", tenant_id=f"realm-{number}")
        for _ in range(5):
            finished_run(more, requests=2, request_ms=100, request_errors=1)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(url("connection_list"))

    assert len(response.context["rows"]) == 5


# --- connecting --------------------------------------------------------------------------------------


def test_a_new_connection_opens_its_page_ready_to_connect(admin_client):
    response = admin_client.post(url("connection_create"), {"provider": "quickbooks", "name": "Acme US"}, follow=True)

    connection = Connection.objects.get(name="Acme US")
    assert response.redirect_chain[-1][0] == url("connection_detail", connection_pk=connection.pk)
    assert "Connect to QuickBooks Online" in response.content.decode()


def test_a_new_connection_without_a_name_is_refused_next_to_the_field(admin_client):
    response = admin_client.post(url("connection_create"), {"provider": "quickbooks", "name": ""})

    assert response.status_code == 422
    assert response.context["form"].errors["name"]


def test_connect_sends_the_browser_to_the_consent_page_with_the_callback_address(admin_client, finance_admin, consent):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Acme US")

    response = admin_client.post(url("connection_connect", connection_pk=connection.pk))

    state = Connection.objects.get(pk=connection.pk).oauth_state
    assert response.status_code == 302
    assert response.url == (
        f"https://consent.example/authorize?state={state}&redirect_uri=http://testserver{url('oauth_callback')}"
    )


def test_the_callback_connects_the_company_and_says_so(admin_client, finance_admin, consent):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Acme US")
    admin_client.post(url("connection_connect", connection_pk=connection.pk))
    state = Connection.objects.get(pk=connection.pk).oauth_state

    response = admin_client.get(
        url("oauth_callback"), {"code": "the-code", "state": state, "realmId": "9130"}, follow=True
    )

    connection.refresh_from_db()
    assert (connection.status, connection.tenant_id, connection.access_token) == ("active", "9130", "access-the-code")
    assert consent.exchanged == [("the-code", f"http://testserver{url('oauth_callback')}")]
    assert response.redirect_chain[-1][0] == url("connection_detail", connection_pk=connection.pk)
    assert "(company 9130)" in response.content.decode()


def test_the_callback_shows_the_packages_refusal_and_changes_nothing(admin_client, finance_admin, consent):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Acme US")
    admin_client.post(url("connection_connect", connection_pk=connection.pk))
    state = Connection.objects.get(pk=connection.pk).oauth_state

    response = admin_client.get(url("oauth_callback"), {"error": "access_denied", "state": state}, follow=True)

    assert "QuickBooks Online did not grant access (access_denied)" in response.content.decode()
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.CONNECTING
    assert consent.exchanged == []


def test_the_callback_with_an_unknown_state_says_why(admin_client, consent):
    response = admin_client.get(url("oauth_callback"), {"code": "c", "state": "forged", "realmId": "1"}, follow=True)

    assert response.redirect_chain[-1][0] == url("connection_list")
    assert "does not match a connection being connected" in response.content.decode()


def test_the_callback_shows_a_code_exchange_the_package_refused(admin_client, finance_admin, consent, monkeypatch):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Acme US")
    admin_client.post(url("connection_connect", connection_pk=connection.pk))
    state = Connection.objects.get(pk=connection.pk).oauth_state

    def refuse(*, code, redirect_uri):
        raise ReauthorizationRequired("invalid_grant: the code has expired")

    monkeypatch.setattr(consent, "exchange_code", refuse)
    response = admin_client.get(url("oauth_callback"), {"code": "old", "state": state, "realmId": "9130"}, follow=True)

    assert "the package refused the exchange (invalid_grant: the code has expired)" in response.content.decode()
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.CONNECTING


# --- the connection page ---------------------------------------------------------------------------


def test_run_now_queues_a_manual_run_and_opens_its_page(
    admin_client, finance_admin, books, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("connection_run", connection_pk=books.pk))

    run = SyncRun.objects.get(connection=books)
    assert (run.trigger, run.status, run.requested_by) == ("manual", "queued", finance_admin)
    assert response.url == url("run_detail", run_pk=run.pk)
    assert queued_tasks == [{"run_id": run.pk}]


def test_run_now_on_a_paused_connection_is_refused_with_a_message(admin_client, finance_admin, books):
    services.pause_connection(actor=finance_admin, connection=books)

    response = admin_client.post(url("connection_run", connection_pk=books.pk), follow=True)

    assert "is paused: it cannot run" in response.content.decode()
    assert not SyncRun.objects.filter(connection=books).exists()


def test_pause_stops_the_schedule(admin_client, books):
    admin_client.post(url("connection_pause", connection_pk=books.pk))

    assert Connection.objects.get(pk=books.pk).status == Connection.Status.PAUSED
    assert not PeriodicTask.objects.get(pk=books.schedule_id).enabled


def test_resume_starts_the_schedule_again(admin_client, finance_admin, books):
    services.pause_connection(actor=finance_admin, connection=books)

    admin_client.post(url("connection_resume", connection_pk=books.pk))

    assert Connection.objects.get(pk=books.pk).status == Connection.Status.ACTIVE
    assert PeriodicTask.objects.get(pk=books.schedule_id).enabled


def test_the_schedule_is_saved_as_the_periodic_tasks_interval(admin_client, books):
    admin_client.post(url("connection_schedule", connection_pk=books.pk), {"every_minutes": "45"})

    assert PeriodicTask.objects.get(pk=books.schedule_id).interval.every == 45


def test_a_schedule_out_of_range_is_refused_next_to_the_field(admin_client, books):
    response = admin_client.post(url("connection_schedule", connection_pk=books.pk), {"every_minutes": "0"})

    assert response.status_code == 422
    assert response.context["schedule_form"].errors["every_minutes"]


def test_directions_are_saved_per_entity(admin_client, books):
    directions = dict.fromkeys(("customer", "product", "invoice", "credit_note", "payment", "refund"), "both")

    admin_client.post(url("connection_directions", connection_pk=books.pk), {**directions, "invoice": "pull"})

    assert dict(EntitySetting.objects.filter(connection=books).values_list("entity", "direction")) == {
        **directions,
        "invoice": "pull",
    }


def test_a_field_policy_is_saved_and_listed(admin_client, books):
    response = admin_client.post(
        url("connection_policy", connection_pk=books.pk), {"target": "invoice:memo", "policy": "remote"}, follow=True
    )

    assert Connection.objects.get(pk=books.pk).policy_for(INVOICE, "memo") == "remote"
    assert [(p.entity, p.field, p.policy) for p in response.context["policies"]] == [("invoice", "memo", "remote")]


def test_the_policy_form_offers_each_records_fields_but_not_those_the_package_computes(admin_client, books):
    page = admin_client.get(url("connection_detail", connection_pk=books.pk)).content.decode()

    assert 'value="invoice:memo"' in page
    assert 'value="customer:display_name"' in page
    assert 'value="invoice:balance"' not in page


# --- runs ----------------------------------------------------------------------------------------


def test_a_running_runs_page_asks_for_its_progress_every_two_seconds(admin_client, books):
    run = services.request_run(connection=books, trigger=SyncRun.Trigger.MANUAL)
    SyncRun.objects.filter(pk=run.pk).update(status="running", phase="Pulling invoices", done=30, total=120)

    page = admin_client.get(url("run_detail", run_pk=run.pk)).content.decode()

    assert f'hx-get="{url("run_detail", run_pk=run.pk)}" hx-trigger="every 2s"' in page
    assert 'aria-valuenow="25"' in page
    assert "Pulling invoices" in page


def test_a_finished_runs_progress_stops_polling_and_shows_counts_and_errors(admin_client, books):
    run = finished_run(
        books,
        status=SyncRun.Status.PARTIAL,
        counts={"customer": {"pulled": 7, "created": 2}, "invoice": {"pushed": 4, "quarantined": 1}},
        errors=["Invoice 12: the package refused the tax code"],
    )

    response = admin_client.get(url("run_detail", run_pk=run.pk), HTTP_HX_REQUEST="true")
    page = response.content.decode()

    assert "hx-trigger" not in page
    assert "<html" not in page
    assert [(row.entity, row.counts) for row in response.context["progress"].entity_counts] == [
        ("customer", (7, 2, 0, 0)),
        ("invoice", (0, 0, 4, 1)),
    ]
    assert "Invoice 12: the package refused the tax code" in page


def test_run_history_is_paginated_newest_first(admin_client, books):
    runs = [finished_run(books, created_at=timezone.now() - timedelta(minutes=minutes)) for minutes in range(30)]

    response = admin_client.get(url("run_history", connection_pk=books.pk), {"page": 2})

    assert [run.pk for run in response.context["page"]] == [run.pk for run in runs[25:]]


# --- conflicts -----------------------------------------------------------------------------------


def test_open_conflicts_are_listed_before_settled_ones(admin_client, books, own_customer, others_customer):
    settled = open_conflict(books, own_customer, remote_id="1")
    Conflict.objects.filter(pk=settled.pk).update(status=Conflict.Status.DISMISSED, created_at=timezone.now())
    still_open = open_conflict(books, others_customer, remote_id="2")
    Conflict.objects.filter(pk=still_open.pk).update(created_at=timezone.now() - timedelta(days=3))

    response = admin_client.get(url("conflict_list"))

    assert [conflict.pk for conflict, _ in response.context["rows"]] == [still_open.pk, settled.pk]


def test_conflicts_are_filtered_by_connection_and_record_type(admin_client, finance_admin, books, own_customer):
    other_books = connected(actor=finance_admin, name="Other", tenant_id="realm-2")
    wanted = open_conflict(books, own_customer, remote_id="1")
    open_conflict(other_books, own_customer, remote_id="1")
    Conflict.objects.create(connection=books, entity=INVOICE, local_id=5, remote_id="9", fields=["memo"])

    response = admin_client.get(url("conflict_list"), {"connection": books.pk, "entity": CUSTOMER})

    assert [conflict.pk for conflict, _ in response.context["rows"]] == [wanted.pk]


def test_a_conflict_shows_base_concord_and_package_side_by_side_conflicting_fields_first(
    ar_client, books, own_customer
):
    conflict = open_conflict(books, own_customer)

    response = ar_client.get(url("conflict_detail", conflict_pk=conflict.pk))
    comparison = response.context["comparison"]

    assert comparison[0].name == "email" and comparison[0].conflicting
    assert (comparison[0].base.text, comparison[0].concord.text, comparison[0].package.text) == (
        "ap@example.com",
        "billing@example.com",
        "accounts@example.com",
    )
    phone = next(row for row in comparison if row.name == "phone")
    assert (phone.conflicting, phone.concord_changed, phone.package_changed) == (False, True, False)
    assert 'name="email" id="id_email_1" value="remote"' in response.content.decode()


def test_resolving_with_concords_value_settles_the_conflict_and_queues_the_push(
    ar_client, ar_clerk, books, own_customer
):
    linked_customer(books, own_customer)
    conflict = open_conflict(books, own_customer)

    response = ar_client.post(url("conflict_resolve", conflict_pk=conflict.pk), {"email": "concord"})

    conflict.refresh_from_db()
    assert response.url == url("conflict_list")
    assert (conflict.status, conflict.resolution, conflict.resolved_by) == ("resolved", {"email": "concord"}, ar_clerk)
    assert OutboxEntry.objects.filter(connection=books, entity=CUSTOMER, local_id=own_customer.pk).exists()


def test_resolving_without_a_choice_for_each_field_is_refused(ar_client, books, own_customer):
    conflict = open_conflict(books, own_customer)

    response = ar_client.post(url("conflict_resolve", conflict_pk=conflict.pk), {})

    assert response.status_code == 422
    assert "Choose Concord&#x27;s value or the package&#x27;s." in response.content.decode()
    assert Conflict.objects.get(pk=conflict.pk).status == Conflict.Status.OPEN


def test_a_delete_conflict_explains_why_and_offers_keep_or_accept(ar_client, books, own_customer):
    conflict = Conflict.objects.create(
        connection=books,
        entity=INVOICE,
        local_id=41,
        remote_id="130",
        kind="delete",
        fields=["deleted"],
        local={"number": "INV-0041"},
        remote={"deleted": True},
        detail="Invoice INV-0041 has payments applied here: it cannot be deleted.",
    )

    page = ar_client.get(url("conflict_detail", conflict_pk=conflict.pk)).content.decode()

    assert "Invoice INV-0041 has payments applied here" in page
    assert 'name="deleted" value="concord"' in page
    assert 'name="deleted" value="remote"' in page


# --- quarantine ----------------------------------------------------------------------------------


def test_quarantine_shows_the_error_the_payload_and_the_attempts(ar_client, books, own_customer):
    quarantined(books, local_id=own_customer.pk)

    page = ar_client.get(url("quarantine_list")).content.decode()

    assert "Duplicate Name Exists Error" in page
    assert "2 attempts" in page
    assert "&quot;DisplayName&quot;: &quot;Northwind Traders&quot;" in page


def test_retry_queues_the_record_for_the_next_push(ar_client, books, own_customer):
    item = quarantined(books, local_id=own_customer.pk)

    ar_client.post(url("quarantine_retry", quarantine_pk=item.pk))

    assert QuarantineItem.objects.get(pk=item.pk).status == QuarantineItem.Status.RETRYING
    assert OutboxEntry.objects.filter(connection=books, entity=CUSTOMER, local_id=own_customer.pk).exists()


def test_retry_with_htmx_swaps_the_items_card_in_place(ar_client, books, own_customer):
    item = quarantined(books, local_id=own_customer.pk)

    response = ar_client.post(url("quarantine_retry", quarantine_pk=item.pk), HTTP_HX_REQUEST="true")
    page = response.content.decode()

    assert response.status_code == 200
    assert page.lstrip().startswith(f'<article id="quarantine-{item.pk}"')
    assert "Queued for retry" in page


def test_ignoring_needs_a_reason(ar_client, books, own_customer):
    item = quarantined(books, local_id=own_customer.pk)

    response = ar_client.post(url("quarantine_ignore", quarantine_pk=item.pk), {"reason": ""}, follow=True)

    assert "Say why this record need not be synced." in response.content.decode()
    assert QuarantineItem.objects.get(pk=item.pk).status == QuarantineItem.Status.OPEN


def test_ignoring_with_a_reason_closes_the_item(ar_client, ar_clerk, books, own_customer):
    item = quarantined(books, local_id=own_customer.pk)

    ar_client.post(url("quarantine_ignore", quarantine_pk=item.pk), {"reason": "Duplicate of customer 12"})

    item.refresh_from_db()
    assert (item.status, item.resolved_by) == (QuarantineItem.Status.IGNORED, ar_clerk)
    assert item.history.latest().history_change_reason == "Duplicate of customer 12"


def test_the_edit_mapping_link_is_offered_to_finance_admins_only(client, ar_clerk, finance_admin, books, own_customer):
    quarantined(books, local_id=own_customer.pk)
    mapping_link = f'href="{url("mapping_list", connection_pk=books.pk)}"'

    client.force_login(finance_admin)
    assert mapping_link in client.get(url("quarantine_list")).content.decode()
    client.force_login(ar_clerk)
    assert mapping_link not in client.get(url("quarantine_list")).content.decode()


# --- mappings ------------------------------------------------------------------------------------


def test_a_new_mapping_version_is_made_from_key_value_lines(admin_client, finance_admin, books):
    tables = {
        "accounts": "4000 = 79\n# sales\n\n4100 = 80",
        "tax_codes": "VAT 20% = 3",
        "items": "",
        "payment_methods": "",
        "terms": "30 = 3",
    }

    response = admin_client.post(url("mapping_create", connection_pk=books.pk), {"note": "Revenue accounts", **tables})

    version = MappingVersion.objects.get(connection=books, version=2)
    assert response.url == url("mapping_detail", mapping_pk=version.pk)
    assert (version.accounts, version.tax_codes, version.terms) == (
        {"4000": "79", "4100": "80"},
        {"VAT 20%": "3"},
        {"30": "3"},
    )
    assert (version.note, version.created_by) == ("Revenue accounts", finance_admin)


def test_malformed_mapping_lines_are_reported_by_line_and_nothing_is_saved(admin_client, books):
    response = admin_client.post(
        url("mapping_create", connection_pk=books.pk), {"accounts": "4000 = 79\n4100\n4000 = 81\n = 5"}
    )

    assert response.status_code == 422
    assert response.context["form"].errors["accounts"] == [
        "Line 2: write it as “Concord value = package value”.",
        "Line 3: “4000” is already mapped on line 1.",
        "Line 4: both sides of “=” need a value.",
    ]
    assert not MappingVersion.objects.filter(connection=books, version=2).exists()


def test_the_new_version_form_starts_from_the_latest_tables(admin_client, finance_admin, books):
    services.create_mapping_version(actor=finance_admin, connection=books, accounts={"4100": "80", "4000": "79"})

    response = admin_client.get(url("mapping_create", connection_pk=books.pk))

    assert response.context["form"]["accounts"].value() == "4000 = 79\n4100 = 80"


def test_a_mapping_version_marks_what_changed_since_the_one_before(admin_client, finance_admin, books):
    services.create_mapping_version(actor=finance_admin, connection=books, accounts={"4000": "79", "4100": "80"})
    latest = services.create_mapping_version(actor=finance_admin, connection=books, accounts={"4000": "90"})

    response = admin_client.get(url("mapping_detail", mapping_pk=latest.pk))
    accounts = response.context["tables"][0]

    assert [(e.key, e.value, e.previous, e.changed) for e in accounts.entries] == [("4000", "90", "79", True)]
    assert accounts.removed == ["4100"]


def test_the_mapping_list_shows_versions_and_records_synced_with_an_older_one(
    admin_client, finance_admin, books, own_customer
):
    linked_customer(books, own_customer, mapping_version=1)
    services.create_mapping_version(actor=finance_admin, connection=books, note="Tax codes")

    response = admin_client.get(url("mapping_list", connection_pk=books.pk))

    assert [(v.version, v.note) for v in response.context["versions"]] == [(2, "Tax codes"), (1, "Initial mapping")]
    assert [(s.entity, s.records) for s in response.context["stale"]] == [(CUSTOMER, 1)]


def test_repush_queues_the_records_synced_with_an_older_mapping(
    admin_client, finance_admin, books, own_customer, others_customer
):
    older = linked_customer(books, own_customer, remote_id="1", mapping_version=1)
    services.create_mapping_version(actor=finance_admin, connection=books, accounts={"4000": "79"})
    current = linked_customer(books, others_customer, remote_id="2", mapping_version=2)
    OutboxEntry.objects.all().delete()  # the customers' creation queued them; start from an empty outbox

    response = admin_client.post(url("mapping_repush", connection_pk=books.pk), {"entity": CUSTOMER}, follow=True)

    pending = OutboxEntry.objects.filter(connection=books, entity=CUSTOMER, status=OutboxEntry.Status.PENDING)
    assert list(pending.values_list("local_id", flat=True)) == [own_customer.pk]
    # Its synced state is forgotten, so the push sends every field under the new mapping.
    older.refresh_from_db(), current.refresh_from_db()
    assert (older.synced_state, bool(current.synced_state)) == ({}, True)
    assert "1 customer queued to be pushed again with mapping version 2." in response.content.decode()


# --- every list reads in a fixed number of queries ------------------------------------------------


def _queries(client, address: str) -> int:
    with CaptureQueriesContext(db_connection) as captured:
        assert client.get(address).status_code == 200
    return len(captured.captured_queries)


def test_the_conflict_list_reads_in_the_same_queries_for_more_conflicts(
    admin_client, finance_admin, books, django_assert_max_num_queries
):
    customers = CustomerFactory.create_batch(6, owner=finance_admin)
    open_conflict(books, customers[0], remote_id="0")
    few = _queries(admin_client, url("conflict_list"))
    for number, customer in enumerate(customers[1:], start=1):
        conflict = open_conflict(books, customer, remote_id=str(number))
        Conflict.objects.filter(pk=conflict.pk).update(status=Conflict.Status.RESOLVED, resolved_by=finance_admin)

    with django_assert_max_num_queries(few):
        admin_client.get(url("conflict_list"))


def test_the_quarantine_list_reads_in_the_same_queries_for_more_items(
    ar_client, finance_admin, books, django_assert_max_num_queries
):
    quarantined(books, local_id=1)
    few = _queries(ar_client, url("quarantine_list") + "?status=all")
    for local_id in range(2, 8):
        item = quarantined(books, local_id=local_id)
        services.ignore_quarantined(actor=finance_admin, item=item, reason="Test")

    with django_assert_max_num_queries(few):
        ar_client.get(url("quarantine_list"), {"status": "all"})


def test_run_history_reads_in_the_same_queries_for_more_runs(
    admin_client, finance_admin, books, django_assert_max_num_queries
):
    services.request_run(actor=finance_admin, connection=books, trigger=SyncRun.Trigger.MANUAL)
    few = _queries(admin_client, url("run_history", connection_pk=books.pk))
    for _ in range(10):
        services.request_run(actor=finance_admin, connection=books, trigger=SyncRun.Trigger.MANUAL)

    with django_assert_max_num_queries(few):
        admin_client.get(url("run_history", connection_pk=books.pk))


# --- the customer page's badge ---------------------------------------------------------------------

BADGE = Template("{% load sync_badge %}{% sync_badge customer %}")


def test_the_badge_shows_a_rep_where_their_customer_is_synced_without_links(sales_rep, books, own_customer):
    linked_customer(books, own_customer, remote_id="58")
    open_conflict(books, own_customer)

    html = BADGE.render(Context({"customer": own_customer, "user": sales_rep}))

    assert "Books" in html and "synced · #58" in html
    assert ">conflict</span>" in html
    assert "/sync/" not in html


def test_the_badge_links_ar_to_the_conflict_and_the_quarantined_record(ar_clerk, books, own_customer):
    conflict = open_conflict(books, own_customer)
    quarantined(books, local_id=own_customer.pk)
    services.repush_with_latest_mapping(actor=None, connection=books, entity=CUSTOMER, local_ids=[own_customer.pk])

    html = BADGE.render(Context({"customer": own_customer, "user": ar_clerk}))

    assert f'href="{url("conflict_detail", conflict_pk=conflict.pk)}"' in html
    assert f"{url('quarantine_list')}?connection={books.pk}&amp;entity=customer&amp;record={own_customer.pk}" in html
    assert "not linked yet" in html and "change waiting" in html


def test_the_badge_reads_in_one_query_whatever_the_connections(
    ar_clerk, finance_admin, books, own_customer, django_assert_num_queries
):
    connected(actor=finance_admin, name="Second", tenant_id="realm-2")
    linked_customer(books, own_customer)
    access.may_see_sync(ar_clerk)  # the page's navigation has read the user's permissions already

    with django_assert_num_queries(1):
        BADGE.render(Context({"customer": own_customer, "user": ar_clerk}))


def test_the_badge_is_empty_where_no_package_is_connected(finance_admin, sales_rep):
    services.create_connection(actor=finance_admin, provider="quickbooks", name="Not yet")
    customer = CustomerFactory(owner=sales_rep)

    assert BADGE.render(Context({"customer": customer, "user": sales_rep})).strip() == ""
