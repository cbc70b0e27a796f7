"""The role × URL matrix, generated from the URL conf.

Every URL the project serves must have a declared rule here; a new URL without one fails
`test_every_url_declares_who_may_use_it`. For each role the walk then checks that the URL is
reachable by exactly the roles meant to reach it. The admin site's URLs are derived from its
model registry and checked against the rights each role is meant to have per model.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, path, reverse

from config.urls import urlpatterns as project_urlpatterns
from crm.models import Customer
from tests.billing.conftest import ISSUED_ON, issue
from tests.factories import ActivityFactory, ContactFactory
from tests.url_rules import EVERYONE, ROLES, SIGNED_IN, Rule, area_objects, area_rules, area_url_kwargs

# The project's own URLs. `sales_owner` owns the customer in the URL; `sales_other` does not.
SITE_RULES: dict[str, Rule] = {
    "home": Rule(SIGNED_IN, ok_statuses=(302,)),
    "login": Rule(EVERYONE, ok_statuses=(200, 302), public=True),
    "logout": Rule(EVERYONE, method="post", ok_statuses=(302,), public=True),
    "healthz": Rule(EVERYONE, public=True),
    "crm:customer_list": Rule(SIGNED_IN),
    "crm:customer_detail": Rule(frozenset({"sales_owner", "ar", "finance_admin"})),
    "crm:log_activity": Rule(
        frozenset({"sales_owner", "ar", "finance_admin"}),
        method="post",
        ok_statuses=(302,),
        data={"kind": "note", "text": "Matrix check"},
    ),
    # Money: AR and Finance Admins. A rep is refused: 404 for a customer out of reach (its
    # existence does not leak), 403 for their own customer (no right to record money).
    "billing:record_payment": Rule(
        frozenset({"ar", "finance_admin"}),
        method="post",
        ok_statuses=(302,),
        data={
            "amount": "25.00",
            "received_on": (ISSUED_ON + timedelta(days=8)).isoformat(),
            "method": "cash",
            "idempotency_key": "matrix-payment",
        },
        denied_statuses={"sales_owner": 403, "sales_other": 404},
    ),
    "billing:allocate_payment": Rule(
        frozenset({"ar", "finance_admin"}),
        method="post",
        ok_statuses=(302,),
        data=lambda objects: {"invoice": objects["open_invoice"].pk, "amount": "10.00"},
        denied_statuses={"sales_owner": 403, "sales_other": 404},
    ),
    "jobs:list": Rule(SIGNED_IN),
    # A job is its starter's: the matrix's job was started by the Finance Admin.
    "jobs:detail": Rule(frozenset({"finance_admin"})),
    "jobs:download": Rule(frozenset({"finance_admin"})),
    # The areas' own rules (tests/url_rules/).
    **area_rules(),
}

# Admin pages that belong to no model: open to staff (Finance Admins), the login page to all.
ADMIN_SITE_RULES: dict[str, Rule] = {
    "admin:login": Rule(EVERYONE, ok_statuses=(200, 302), public=True),
    # Logging out is harmless to anyone; non-staff are sent to the admin's login page.
    "admin:logout": Rule(EVERYONE, method="post", ok_statuses=(200, 302), public=True),
    "admin:index": Rule(frozenset({"finance_admin"})),
    "admin:password_change": Rule(frozenset({"finance_admin"})),
    "admin:password_change_done": Rule(frozenset({"finance_admin"})),
    "admin:jsi18n": Rule(frozenset({"finance_admin"})),
    "admin:autocomplete": Rule(
        frozenset({"finance_admin"}), data={"app_label": "crm", "model_name": "customer", "field_name": "owner"}
    ),
    "admin:view_on_site": Rule(frozenset({"finance_admin"}), ok_statuses=(302,)),
    "admin:app_list": Rule(frozenset({"finance_admin"})),
}

ALL_ACTIONS = frozenset({"view", "add", "change", "delete"})
VIEW = frozenset({"view"})
VIEW_ADD = frozenset({"view", "add"})
VIEW_ADD_CHANGE = frozenset({"view", "add", "change"})
# What a Finance Admin may do in the admin, per model ("app.*" for every model of an app).
# Nobody else may open any admin page. Billing and ledger models are named one by one: their
# admins grant less than the role's permissions (billing.*), because documents are written only
# through services and the ledger is append-only.
FINANCE_ADMIN_MODEL_RIGHTS: dict[str, frozenset[str]] = {
    "crm.*": ALL_ACTIONS,
    # Reference data, edited in place; deactivated, not deleted.
    "billing.product": VIEW_ADD_CHANGE,
    "billing.taxrate": VIEW_ADD_CHANGE,
    "billing.recurringinvoice": VIEW_ADD_CHANGE,
    # Documents: added through their service, then read; an invoice's dispute flag may change.
    "billing.invoice": VIEW_ADD_CHANGE,
    "billing.payment": VIEW_ADD,
    "billing.creditnote": VIEW_ADD,
    "billing.refund": VIEW_ADD,
    "billing.writeoff": VIEW_ADD,
    "billing.paymentallocation": VIEW,
    "billing.numbersequence": VIEW,
    # The ledger: the chart and rates are maintained; lock dates added; the journal read.
    "ledger.account": VIEW_ADD_CHANGE,
    "ledger.exchangerate": VIEW_ADD_CHANGE,
    "ledger.periodlock": VIEW_ADD,
    "ledger.journalentry": VIEW,
    "django_celery_beat.*": ALL_ACTIONS,
    "auth.user": frozenset({"view", "add", "change"}),
    "auth.group": frozenset({"view", "change"}),
    "axes.accessattempt": frozenset({"view", "delete"}),
    "axes.accesslog": frozenset({"view"}),
    "axes.accessfailurelog": frozenset({"view"}),
}

# Which right each kind of admin model page needs.
ADMIN_PAGE_ACTIONS = {
    "changelist": "view",
    "add": "add",
    "change": "view",  # a user with view rights only sees the form read-only
    "history": "view",
    "simple_history": "view",
    "delete": "delete",
    "password_change": "change",
    "permissions": "change",
    "permissions_manage_user": "change",
    "permissions_manage_group": "change",
}


def _one_row_of_every_admin_model(owner_customer) -> dict:
    """A real row of each model in the admin, so object pages answer as they do in use; returns
    the objects the site rules name."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.utils import timezone
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    ContactFactory(customer=owner_customer)
    ActivityFactory(customer=owner_customer)
    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="matrix", task="crm.tasks.refresh_customer_activity_stats", interval=interval)
    CrontabSchedule.objects.create(minute="0", hour="6")
    SolarSchedule.objects.create(event="sunrise", latitude=52.37, longitude=4.89)
    ClockedSchedule.objects.create(clocked_time=timezone.now())
    request = {"user_agent": "pytest", "ip_address": "127.0.0.1", "username": "someone", "http_accept": "*/*"}
    AccessAttempt.objects.create(path_info="/login/", get_data="", post_data="", failures_since_start=1, **request)
    AccessLog.objects.create(path_info="/login/", **request)
    AccessFailureLog.objects.create(path_info="/login/", locked_out=False, **request)
    objects = _billing_and_ledger_rows(owner_customer)
    missing = [model._meta.label for model in admin.site._registry if not model._default_manager.exists()]
    assert not missing, f"give the URL matrix a row of: {', '.join(missing)}"
    return objects


def _billing_and_ledger_rows(customer) -> dict:
    """Documents of every kind for `customer`, written through the services as in use."""
    from billing import services
    from billing.models import Product, RecurringInvoice, RecurringInvoiceLine, TaxRate
    from config import audit
    from ledger import services as ledger_services
    from ledger.models import Account

    actor = audit.system_actor("tests")
    ledger_services.set_exchange_rate(actor=actor, currency="EUR", rate_date=date(2026, 1, 1), rate=Decimal("1.1"))
    ledger_services.lock_period(actor=actor, locked_through=date(2025, 12, 31), reason="Matrix")
    # The default chart comes from a data migration, which writes no history: give the first
    # account a change, as a Finance Admin renaming it would.
    account = Account.objects.order_by("pk").first()
    account._history_user = actor
    account.save()
    revenue = Account.objects.get(role="revenue")
    vat = TaxRate.objects.create(
        name="VAT 20%", rate=Decimal("0.20"), liability_account=Account.objects.get(role="tax_payable")
    )
    Product.objects.create(
        sku="M-1", name="Matrix widget", unit_price=Decimal(10), revenue_account=revenue, tax_rate=vat
    )
    template = RecurringInvoice.objects.create(customer=customer, name="Support", next_date=date(2027, 1, 1))
    RecurringInvoiceLine.objects.create(
        template=template, description="Support", quantity=1, unit_price=Decimal(50), revenue_account=revenue
    )
    open_invoice = issue(actor, customer, "100.00")
    doubtful = issue(actor, customer, "40.00")
    later = ISSUED_ON + timedelta(days=3)
    payment = services.record_payment(
        actor=actor, customer=customer, amount=Decimal(150), received_on=later, method="cheque", auto_apply=False
    )
    services.allocate_payment(actor=actor, payment=payment, invoice=open_invoice, amount=Decimal(20))
    services.refund_credit(actor=actor, payment=payment, amount=Decimal(5), refunded_on=later, method="cheque")
    services.issue_credit_note(
        actor=actor,
        customer=customer,
        reason="Goodwill",
        lines=[services.LineInput(description="Goodwill", unit_price=Decimal(5))],
        issue_date=later,
    )
    services.request_write_off(actor=actor, invoice=doubtful, reason="Gone quiet")
    objects = {"open_invoice": open_invoice, "payment": payment, "job": _finished_export_job(customer)}
    objects.update(area_objects(customer, actor))
    return objects


def _finished_export_job(customer):
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from jobs import services as job_services

    finance_admin = get_user_model().objects.get(username="finance-admin")
    job = job_services.create_job(kind="matrix", label="Matrix export", actor=finance_admin)
    job_services.start(job_id=job.pk, total=1)
    return job_services.succeed(job_id=job.pk, message="1 row", file=ContentFile(b"customer\n"), file_name="matrix.csv")


def _iter_patterns(patterns, namespace="", prefix_groups=()):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            groups = (*prefix_groups, *pattern.pattern.regex.groupindex)
            yield from _iter_patterns(pattern.url_patterns, inner, groups)
        else:
            assert isinstance(pattern, URLPattern)
            yield namespace, pattern, prefix_groups


def all_urls() -> list[tuple[str, URLPattern, tuple[str, ...]]]:
    """(namespace, pattern, the named groups an including prefix captures, e.g. a customer's pk)."""
    return list(_iter_patterns(get_resolver().url_patterns))


def admin_model_page(name: str):
    """("app.model", page kind) for an admin model URL name, or None."""
    short = name.removeprefix("admin:")
    for model in admin.site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if short.startswith(prefix) and short[len(prefix) :] in ADMIN_PAGE_ACTIONS:
            return model, short[len(prefix) :]
    return None


def finance_admin_may(model, action: str) -> bool:
    label = model._meta.label_lower
    rights = FINANCE_ADMIN_MODEL_RIGHTS.get(label, FINANCE_ADMIN_MODEL_RIGHTS.get(f"{model._meta.app_label}.*"))
    return rights is not None and action in rights


def undeclared_urls() -> list[str]:
    undeclared = []
    for namespace, pattern, _ in all_urls():
        if pattern.name is None:
            # Only Django's admin has unnamed URLs: its catch-all and old-style object redirects,
            # both of which end in an admin view that checks staff access itself.
            if namespace != "admin:":
                undeclared.append(f"unnamed URL {pattern.pattern}")
            continue
        name = namespace + pattern.name
        if name in SITE_RULES or name in ADMIN_SITE_RULES:
            continue
        page = admin_model_page(name)
        if page is None:
            undeclared.append(name)
        elif not any(
            key in FINANCE_ADMIN_MODEL_RIGHTS for key in (page[0]._meta.label_lower, f"{page[0]._meta.app_label}.*")
        ):
            undeclared.append(f"{name} (model {page[0]._meta.label_lower} has no declared admin rights)")
    return undeclared


def test_every_url_declares_who_may_use_it():
    undeclared = undeclared_urls()
    assert not undeclared, "URLs without a declared access rule: " + ", ".join(undeclared)


def _undeclared_view(request):
    return HttpResponse("anyone")


# The project's URLs plus one nobody declared, for the test below.
urlpatterns = [*project_urlpatterns, path("undeclared/", _undeclared_view, name="undeclared")]


@override_settings(ROOT_URLCONF=__name__)
def test_a_url_without_a_rule_is_caught():
    assert undeclared_urls() == ["undeclared"]


@pytest.mark.django_db
def test_each_admin_grants_a_finance_admin_exactly_the_declared_rights(finance_admin):
    """The declared rights are what the admin classes allow on top of the role's permissions
    (billing/migrations/0003_roles.py), so the walk below tests the admin as configured."""
    request = RequestFactory().get("/admin/")
    request.user = finance_admin
    wrong = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("billing", "ledger"):
            continue
        granted = {action for action in ALL_ACTIONS if getattr(model_admin, f"has_{action}_permission")(request)}
        declared = {action for action in ALL_ACTIONS if finance_admin_may(model, action)}
        if granted != declared:
            wrong.append(f"{model._meta.label_lower}: admin grants {sorted(granted)}, declared {sorted(declared)}")
    assert not wrong, "\n".join(wrong)


def test_no_rule_is_left_for_a_url_that_no_longer_exists():
    names = {namespace + pattern.name for namespace, pattern, _ in all_urls() if pattern.name}
    assert set(SITE_RULES) | set(ADMIN_SITE_RULES) <= names


@pytest.fixture
def people(sales_rep, other_rep, ar_clerk, finance_admin):
    return {"sales_owner": sales_rep, "sales_other": other_rep, "ar": ar_clerk, "finance_admin": finance_admin}


@pytest.fixture
def matrix_objects(own_customer):
    return _one_row_of_every_admin_model(own_customer)


@pytest.fixture
def url_arguments(own_customer, people, matrix_objects):
    """How to fill every URL's arguments: with a real object of the URL's model."""

    def object_id(model) -> str:
        if model is Customer or model is None:
            return str(own_customer.pk)
        return str(model._default_manager.order_by("pk").first().pk)

    def history_id(model, pk) -> str:
        return str(model.history.filter(**{model._meta.pk.attname: pk}).latest().history_id)

    def fill(name: str, pattern: URLPattern, prefix_groups: tuple[str, ...] = ()):
        page = admin_model_page(name)
        model = page[0] if page else None
        pk = object_id(model)
        kwargs = {}
        for key in (*prefix_groups, *pattern.pattern.regex.groupindex):
            kwargs[key] = {
                "pk": str(own_customer.pk),
                "payment_pk": str(matrix_objects["payment"].pk),
                "object_id": pk,
                "object_pk": pk,
                "id": pk,
                "user_id": str(people["sales_owner"].pk),
                "group_id": str(Group.objects.order_by("pk").first().pk),
                "content_type_id": str(ContentType.objects.get_for_model(Customer).pk),
                "app_label": "crm",
                "job_pk": str(matrix_objects["job"].pk),
                **area_url_kwargs(matrix_objects),
            }[key]
        if name == "admin:view_on_site":
            kwargs["object_id"] = str(own_customer.pk)
        positional = pattern.pattern.regex.groups - len(pattern.pattern.regex.groupindex)
        args = [pk, history_id(model, pk)][:positional] if positional else []
        return reverse(name, args=args or None, kwargs=kwargs or None)

    return fill


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and "login" in response.url


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_each_url_is_reachable_by_exactly_the_roles_meant_to(client, role, people, url_arguments, matrix_objects):
    if role != "anonymous":
        client.force_login(people[role])
    wrong = []
    for namespace, pattern, prefix_groups in all_urls():
        if pattern.name is None:
            continue
        name = namespace + pattern.name
        rule = SITE_RULES.get(name) or ADMIN_SITE_RULES.get(name)
        if rule is None:
            model, page = admin_model_page(name)
            allowed = (
                frozenset({"finance_admin"}) if finance_admin_may(model, ADMIN_PAGE_ACTIONS[page]) else frozenset()
            )
            rule = Rule(allowed, ok_statuses=(200,))
        url = url_arguments(name, pattern, prefix_groups)
        data = rule.data(matrix_objects) if callable(rule.data) else rule.data
        response = getattr(client, rule.method)(url, data)
        if role in rule.allowed:
            reached = response.status_code in rule.ok_statuses and (rule.public or not _is_login_redirect(response))
        else:
            # 401 is the API's refusal of a caller without credentials (api/, with WWW-Authenticate).
            reached = not (response.status_code in (401, 403, 404) or _is_login_redirect(response))
        if reached != (role in rule.allowed):
            wrong.append(f"{rule.method.upper()} {url} ({name}) answered {response.status_code}")
        elif role in rule.denied_statuses and response.status_code != rule.denied_statuses[role]:
            wrong.append(
                f"{rule.method.upper()} {url} ({name}) answered {response.status_code}, "
                f"not {rule.denied_statuses[role]}"
            )
        if role != "anonymous" and name in {"logout", "admin:logout"}:
            client.force_login(people[role])
    assert not wrong, f"{role} reached what it should not, or not what it should:\n" + "\n".join(wrong)
