"""Connecting Concord to Xero, through Concord's pages and the simulator's real consent page and
token endpoint. The browser's part is played by hand: Django's test client for Concord, httpx
for the simulator's consent form (Xero's redirect back is read, not followed, and handed to
Concord's callback as the browser would)."""

import html
import re
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from django.urls import reverse

from integrations import services
from integrations.models import Connection
from tests.integrations.xero.fixtures_concord import connect, point_concord_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(settings, xero_simulator):
    point_concord_at(settings, xero_simulator)
    yield xero_simulator
    # The consent page signs in one demo user, whose connections Xero lists for every later grant
    # (GET /connections): disconnected, so that each test's grant reaches only what it consented.
    xero_simulator.revoke_tokens()


@pytest.fixture
def admin(client, finance_admin):
    client.force_login(finance_admin)
    return client


@pytest.fixture
def connecting(finance_admin) -> Connection:
    return services.create_connection(actor=finance_admin, provider="xero", name="Xero books")


@pytest.fixture
def second_tenant(sim):
    return sim.create_tenant("Second Books Ltd")


def url(name: str, **kwargs) -> str:
    return reverse(f"integrations:{name}", kwargs=kwargs or None)


def consent(admin, sim, connection: Connection, *tenants: str) -> str:
    """Press Connect in Concord, allow Concord into `tenants` on Xero's consent page, and return
    where Xero sends the browser back (Concord's callback, path and query)."""
    start = admin.post(url("connection_connect", connection_pk=connection.pk))
    assert start.status_code == 302 and start["Location"].startswith(sim.authorize_url), start["Location"]
    asked = dict(parse_qsl(urlsplit(start["Location"]).query))
    page = httpx.get(start["Location"])
    assert page.status_code == 200 and 'name="decision"' in page.text
    answer = httpx.post(
        sim.authorize_url,
        data={**asked, "decision": "authorize", "tenant": list(tenants)},
        follow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"http://testserver{url('oauth_callback')}"
    return f"{back.path}?{back.query}"


def test_connect_sends_the_browser_to_xeros_consent_page_with_concords_app_and_scopes(admin, sim, connecting):
    start = admin.post(url("connection_connect", connection_pk=connecting.pk))

    asked = dict(parse_qsl(urlsplit(start["Location"]).query))
    assert start["Location"].startswith(sim.authorize_url)
    assert (asked["response_type"], asked["client_id"]) == ("code", "concord-xero-demo-client")
    assert asked["redirect_uri"] == f"http://testserver{url('oauth_callback')}"
    assert "offline_access" in asked["scope"].split() and "accounting.transactions" in asked["scope"].split()
    connecting.refresh_from_db()
    assert asked["state"] == connecting.oauth_state != ""


def test_a_grant_to_one_organisation_makes_the_connection_active_on_it(admin, sim, connecting, xero_tenant):
    callback = consent(admin, sim, connecting, xero_tenant)

    landed = admin.get(callback)

    assert landed.status_code == 302 and landed["Location"] == url("connection_detail", connection_pk=connecting.pk)
    connecting.refresh_from_db()
    assert (connecting.status, connecting.tenant_id) == (Connection.Status.ACTIVE, xero_tenant)
    assert connecting.refresh_token and connecting.oauth_state == ""
    assert connecting.schedule.enabled


def test_a_grant_to_two_organisations_asks_which_one_and_lists_both(admin, sim, connecting, xero_tenant, second_tenant):
    callback = consent(admin, sim, connecting, xero_tenant, second_tenant)

    landed = admin.get(callback)

    assert landed.status_code == 302 and landed["Location"] == url("connection_tenant", connection_pk=connecting.pk)
    page = admin.get(landed["Location"])
    shown = html.unescape(page.content.decode())
    assert page.status_code == 200
    offered = re.findall(r'name="tenant_id" id="[^"]+" value="([^"]+)"[^>]*>\s*<label[^>]*>\s*([^<]+?)\s*<', shown)
    assert offered == [(xero_tenant, "Books Ltd"), (second_tenant, "Second Books Ltd")]
    connecting.refresh_from_db()
    assert (connecting.status, connecting.tenant_id) == (Connection.Status.CONNECTING, "")
    assert connecting.refresh_token  # the grant is kept while the person chooses


def test_the_organisation_chosen_makes_the_connection_active_on_it(admin, sim, connecting, xero_tenant, second_tenant):
    admin.get(consent(admin, sim, connecting, xero_tenant, second_tenant))

    chosen = admin.post(url("connection_tenant", connection_pk=connecting.pk), {"tenant_id": second_tenant})

    assert chosen.status_code == 302 and chosen["Location"] == url("connection_detail", connection_pk=connecting.pk)
    connecting.refresh_from_db()
    assert (connecting.status, connecting.tenant_id) == (Connection.Status.ACTIVE, second_tenant)
    assert connecting.schedule.enabled


def test_an_organisation_the_grant_does_not_reach_is_refused_and_nothing_changes(
    admin, sim, connecting, xero_tenant, second_tenant
):
    admin.get(consent(admin, sim, connecting, xero_tenant, second_tenant))
    elsewhere = sim.create_tenant("Not Granted Ltd")

    refused = admin.post(url("connection_tenant", connection_pk=connecting.pk), {"tenant_id": elsewhere})

    assert refused.status_code == 422
    assert "That organisation is not one this grant reaches" in html.unescape(refused.content.decode())
    connecting.refresh_from_db()
    assert (connecting.status, connecting.tenant_id) == (Connection.Status.CONNECTING, "")
    assert not connecting.schedule.enabled


def test_an_organisation_synced_by_another_connection_is_shown_disabled_and_refused(
    admin, sim, connecting, xero_tenant, second_tenant, finance_admin
):
    connect(actor=finance_admin, sim=sim, tenant=xero_tenant, name="Main books")
    admin.get(consent(admin, sim, connecting, xero_tenant, second_tenant))

    page = html.unescape(admin.get(url("connection_tenant", connection_pk=connecting.pk)).content.decode())
    refused = admin.post(url("connection_tenant", connection_pk=connecting.pk), {"tenant_id": xero_tenant})

    taken = page[page.index(f'value="{xero_tenant}"') :].split(">", 1)[0]
    assert " disabled" in taken and "already synced by another connection" in page
    free = page[page.index(f'value="{second_tenant}"') :].split(">", 1)[0]
    assert " disabled" not in free
    assert refused.status_code == 422
    assert "already connected as “Main books”" in html.unescape(refused.content.decode())
    connecting.refresh_from_db()
    assert (connecting.status, connecting.tenant_id) == (Connection.Status.CONNECTING, "")
