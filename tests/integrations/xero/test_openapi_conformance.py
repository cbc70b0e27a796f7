"""Every answer of the Xero simulator validates against Xero's official OpenAPI specification.

A scenario drives each operation the simulator implements — success and error paths — over
HTTP and records the request and the answer; each sample is then validated with openapi-core
against Xero's official spec, vendored in openapi/: xero_accounting.yaml (and xero-identity.yaml for
`/Connections`; webhook payloads against xero-webhooks.yaml). Quirks of the spec handled here:

- the spec does not pass its own schema check (`default: "false"` on booleans), so it is loaded
  with the spec validator switched off;
- its server is `https://api.xero.com/api.xro/2.0`: recorded URLs are rewritten onto it;
- it declares only 200/204/400 answers: 401, 403, 404, 429 and 5xx are undocumented, so those
  samples are checked to be undocumented and then against the contract's shapes (§2.3, §10);
- it declares JSON only: XML answers (no `Accept: application/json`) are not validated here;
- webhooks are an OpenAPI 3.1 `webhooks` section; `eventDateUtc` has `format: date-time` but Xero
  (and the spec's own examples) write it without an offset, which that check accepts.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
import yaml
from jsonschema import FormatChecker
from openapi_core import Config, OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator, OAS31Validator, oas31_format_checker

from integrations.xero.simulator import XeroSimulator
from integrations.xero.simulator.oauth import DEFAULT_SCOPE
from integrations.xero.simulator.testing import TenantClient

from .conftest import WebhookReceiver

# Vendored byte for byte (see openapi/README.md): the team's shared/contracts copy is not on every checkout.
SPEC_DIR = Path(__file__).resolve().parent / "openapi"
XERO_API = "https://api.xero.com"


@dataclass
class Sample:
    operation: str
    variant: str
    method: str
    url: str
    query: bytes
    headers: dict[str, str]
    body: bytes
    status: int
    content_type: str
    response: bytes

    @property
    def label(self) -> str:
        return f"{self.operation}[{self.variant}]"


# --- the specifications, loaded once per session ------------------------------------------------


@pytest.fixture(scope="session")
def accounting_spec():
    return OpenAPI.from_file_path(str(SPEC_DIR / "xero_accounting.yaml"), config=Config(spec_validator_cls=None))


def _date_time(value: object) -> bool:
    """RFC 3339 date-time, except that the offset may be missing: Xero writes its UTC times
    without one (`2019-12-07T18:46:19.5165400`), as the spec's own examples do."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00"))
        except ValueError:
            return False
    return True


@pytest.fixture(scope="session")
def identity_spec():
    config = Config(spec_validator_cls=None, extra_format_validators={"date-time": _date_time})
    return OpenAPI.from_file_path(str(SPEC_DIR / "xero-identity.yaml"), config=config)


@pytest.fixture(scope="session")
def operations():
    """operationId -> (method, path template, documented statuses) of both HTTP specifications."""
    found = {}
    for name in ("xero_accounting.yaml", "xero-identity.yaml"):
        document = yaml.safe_load((SPEC_DIR / name).read_text())
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if isinstance(operation, dict) and "operationId" in operation:
                    statuses = {int(code) for code in operation["responses"] if code.isdigit()}
                    found[operation["operationId"]] = (method.upper(), path, statuses)
    return found


@pytest.fixture(scope="session")
def webhook_schemas():
    document = yaml.safe_load((SPEC_DIR / "xero-webhooks.yaml").read_text())
    identity = yaml.safe_load((SPEC_DIR / "xero-identity.yaml").read_text())
    return document, identity["components"]["schemas"]["AccessToken"]


# --- the scenario --------------------------------------------------------------------------------


class Recorder:
    def __init__(self, sim: XeroSimulator) -> None:
        self.sim = sim
        self.samples: list[Sample] = []

    def record(self, operation: str, variant: str, response: httpx.Response, expected: int) -> httpx.Response:
        assert response.status_code == expected, f"{operation}[{variant}]: {response.status_code} {response.text}"
        request = response.request
        self.samples.append(
            Sample(
                operation=operation,
                variant=variant,
                method=request.method,
                url=str(request.url).split("?")[0],
                query=request.url.query,
                headers=dict(request.headers),
                body=request.content,
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                response=response.content,
            )
        )
        return response

    def call(
        self,
        client: TenantClient,
        operation: str,
        variant: str,
        method: str,
        path: str,
        *,
        expected: int = 200,
        **kwargs,
    ) -> dict:
        response = self.record(operation, variant, client.request(method, path, **kwargs), expected)
        return client.json(response) if response.content and "json" in response.headers.get("content-type", "") else {}


def _invoice_body(contact_id: str, *, status: str = "AUTHORISED", account: str = "200", **fields) -> dict:
    return {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Date": "2024-05-01",
        "DueDate": "2024-05-31",
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "LineItems": [
            {
                "Description": "Consulting",
                "Quantity": 2,
                "UnitAmount": "75.00",
                "AccountCode": account,
                "TaxType": "OUTPUT",
                "DiscountRate": 10,
            }
        ],
        **fields,
    }


def _credit_body(contact_id: str, amount: str = "40.00") -> dict:
    return {
        "Type": "ACCRECCREDIT",
        "Contact": {"ContactID": contact_id},
        "Date": "2024-05-02",
        "Status": "AUTHORISED",
        "LineItems": [{"Description": "Refund", "Quantity": 1, "UnitAmount": amount, "AccountCode": "200"}],
    }


def run_scenario(sim: XeroSimulator, rec: Recorder) -> None:
    tenant = sim.create_tenant("Conformance Ltd")
    # Writing items needs the read-write settings scope, which Concord's default scope lacks.
    c = TenantClient(
        sim, tenant, sim.issue_tokens(tenant, scope=f"{DEFAULT_SCOPE} accounting.settings")["access_token"]
    )
    start = datetime.now(UTC) - timedelta(minutes=5)

    # Contacts
    acme = rec.call(
        c,
        "createContacts",
        "ok",
        "PUT",
        "/Contacts",
        body={
            "Contacts": [
                {
                    "Name": "Acme Ltd",
                    "ContactNumber": "C-1",
                    "EmailAddress": "ap@acme.example",
                    "FirstName": "Ada",
                    "Addresses": [{"AddressType": "POBOX", "AddressLine1": "1 Main St", "City": "Springfield"}],
                    "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "555 0101"}],
                }
            ]
        },
    )["Contacts"][0]
    rec.call(
        c,
        "createContacts",
        "duplicate-name-400",
        "PUT",
        "/Contacts",
        expected=400,
        body={"Contacts": [{"Name": "Acme Ltd"}]},
    )
    rec.call(
        c,
        "createContacts",
        "per-item-errors",
        "PUT",
        "/Contacts",
        params={"summarizeErrors": "false"},
        body={"Contacts": [{"Name": "Globex"}, {"Name": "Acme Ltd"}, {"EmailAddress": "not-an-email"}]},
    )
    rec.call(
        c,
        "updateOrCreateContacts",
        "update-and-create",
        "POST",
        "/Contacts",
        body={"Contacts": [{"ContactID": acme["ContactID"], "LastName": "Lovelace"}, {"Name": "Initech"}]},
    )
    rec.call(
        c,
        "updateOrCreateContacts",
        "unknown-id-400",
        "POST",
        "/Contacts",
        expected=400,
        body={"Contacts": [{"ContactID": "11111111-1111-1111-1111-111111111111", "Name": "X"}]},
    )
    rec.call(c, "getContact", "by-id", "GET", f"/Contacts/{acme['ContactID']}")
    rec.call(c, "getContactByContactNumber", "by-number", "GET", "/Contacts/C-1")
    rec.call(c, "getContacts", "paged", "GET", "/Contacts", params={"page": 1, "order": "UpdatedDateUTC ASC"})
    rec.call(
        c,
        "getContacts",
        "if-modified-since",
        "GET",
        "/Contacts",
        params={"page": 1, "where": 'Name.Contains("Acme")'},
        headers={"If-Modified-Since": start.strftime("%Y-%m-%dT%H:%M:%S")},
    )
    initech = c.list("Contacts", where='Name=="Initech"')[0]
    rec.call(
        c,
        "updateContact",
        "archive",
        "POST",
        f"/Contacts/{initech['ContactID']}",
        body={"Contacts": [{"ContactStatus": "ARCHIVED"}]},
    )
    rec.call(
        c,
        "updateContact",
        "invalid-400",
        "POST",
        f"/Contacts/{acme['ContactID']}",
        expected=400,
        body={"Contacts": [{"EmailAddress": "nope"}]},
    )
    rec.call(c, "getContacts", "include-archived-unpaged", "GET", "/Contacts", params={"includeArchived": "true"})

    # Settings: accounts, tax rates, organisation, items
    accounts = rec.call(c, "getAccounts", "all", "GET", "/Accounts")["Accounts"]
    rec.call(c, "getAccount", "by-id", "GET", f"/Accounts/{accounts[0]['AccountID']}")
    rec.call(c, "getTaxRates", "all", "GET", "/TaxRates")
    rec.call(c, "getOrganisations", "one", "GET", "/Organisation")
    item = rec.call(
        c,
        "createItems",
        "ok",
        "PUT",
        "/Items",
        body={
            "Items": [
                {
                    "Code": "CONSULT",
                    "Name": "Consulting",
                    "SalesDetails": {"UnitPrice": "75.00", "AccountCode": "200", "TaxType": "OUTPUT"},
                }
            ]
        },
    )["Items"][0]
    rec.call(
        c, "createItems", "duplicate-code-400", "PUT", "/Items", expected=400, body={"Items": [{"Code": "CONSULT"}]}
    )
    rec.call(
        c,
        "updateOrCreateItems",
        "upsert",
        "POST",
        "/Items",
        body={"Items": [{"Code": "CONSULT", "Description": "Hourly"}, {"Code": "SPARE", "Name": "Spare"}]},
    )
    rec.call(c, "getItems", "all", "GET", "/Items", params={"unitdp": 4})
    rec.call(c, "getItem", "by-id", "GET", f"/Items/{item['ItemID']}")
    rec.call(c, "updateItem", "ok", "POST", f"/Items/{item['ItemID']}", body={"Items": [{"Name": "Consulting hour"}]})
    spare = c.list("Items", where='Code=="SPARE"')[0]
    rec.call(c, "deleteItem", "ok", "DELETE", f"/Items/{spare['ItemID']}", expected=204)

    # Invoices
    invoice = rec.call(
        c,
        "createInvoices",
        "ok",
        "PUT",
        "/Invoices",
        body={"Invoices": [_invoice_body(acme["ContactID"], Reference="PO 4471")]},
    )["Invoices"][0]
    rec.call(
        c,
        "createInvoices",
        "bad-account-400",
        "PUT",
        "/Invoices",
        expected=400,
        body={"Invoices": [_invoice_body(acme["ContactID"], account="999")]},
    )
    rec.call(
        c,
        "createInvoices",
        "per-item-errors",
        "PUT",
        "/Invoices",
        params={"summarizeErrors": "false"},
        body={
            "Invoices": [
                _invoice_body(acme["ContactID"], status="DRAFT"),
                _invoice_body(acme["ContactID"], account="999"),
                {"Type": "ACCREC", "LineItems": [{"ItemCode": "CONSULT", "Quantity": 1}]},
            ]
        },
    )
    drafts = rec.call(
        c,
        "updateOrCreateInvoices",
        "update-and-create",
        "POST",
        "/Invoices",
        params={"unitdp": 4},
        body={
            "Invoices": [
                {"InvoiceID": invoice["InvoiceID"], "Reference": "PO 4472"},
                _invoice_body(acme["ContactID"], status="DRAFT", LineAmountTypes="Inclusive"),
            ]
        },
    )
    rec.call(c, "getInvoice", "by-id", "GET", f"/Invoices/{invoice['InvoiceID']}")
    rec.call(c, "getInvoice", "unknown-404", "GET", "/Invoices/22222222-2222-2222-2222-222222222222", expected=404)
    rec.call(
        c,
        "getInvoices",
        "paged-filtered",
        "GET",
        "/Invoices",
        params={
            "page": 1,
            "pageSize": 2,
            "where": 'Type=="ACCREC" AND Status!="DELETED"',
            "order": "UpdatedDateUTC ASC",
            "Statuses": "AUTHORISED,DRAFT",
        },
    )
    rec.call(c, "getInvoices", "unpaged-without-lines", "GET", "/Invoices", params={"summaryOnly": "true"})
    rec.call(
        c,
        "getInvoices",
        "query-parse-400",
        "GET",
        "/Invoices",
        expected=400,
        params={"page": 1, "where": 'Status=="AUTHORISED" AND ('},
    )
    draft = drafts["Invoices"][1]
    rec.call(
        c,
        "updateInvoice",
        "delete-draft",
        "POST",
        f"/Invoices/{draft['InvoiceID']}",
        body={"Invoices": [{"Status": "DELETED"}]},
    )
    rec.call(
        c,
        "updateInvoice",
        "void-draft-400",
        "POST",
        f"/Invoices/{draft['InvoiceID']}",
        expected=400,
        body={"Invoices": [{"Status": "VOIDED"}]},
    )
    to_void = c.invoice(acme["ContactID"], "10.00")
    rec.call(
        c,
        "updateInvoice",
        "void",
        "POST",
        f"/Invoices/{to_void['InvoiceID']}",
        body={"Invoices": [{"Status": "VOIDED"}]},
    )

    # Payments
    payment = rec.call(
        c,
        "createPayments",
        "ok",
        "PUT",
        "/Payments",
        body={
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": "090"},
                    "Date": "2024-05-20",
                    "Amount": "50.00",
                    "Reference": "CHK-2231",
                }
            ]
        },
    )["Payments"][0]
    rec.call(
        c,
        "createPayments",
        "overpaid-400",
        "PUT",
        "/Payments",
        expected=400,
        body={
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": "090"},
                    "Date": "2024-05-20",
                    "Amount": "5000.00",
                }
            ]
        },
    )
    rec.call(
        c,
        "createPayments",
        "per-item-errors",
        "PUT",
        "/Payments",
        params={"summarizeErrors": "false"},
        body={
            "Payments": [
                {
                    "Invoice": {"InvoiceNumber": invoice["InvoiceNumber"]},
                    "Account": {"Code": "090"},
                    "Date": "/Date(1716163200000)/",
                    "Amount": 10,
                },
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": "200"},
                    "Date": "2024-05-20",
                    "Amount": 1,
                },
            ]
        },
    )
    single = rec.call(
        c,
        "createPayment",
        "ok",
        "POST",
        "/Payments",
        body={
            "Invoice": {"InvoiceID": invoice["InvoiceID"]},
            "Account": {"Code": "090"},
            "Date": "2024-05-21",
            "Amount": "5.00",
        },
    )["Payments"][0]
    rec.call(
        c,
        "createPayment",
        "draft-invoice-400",
        "POST",
        "/Payments",
        expected=400,
        body={
            "Invoice": {"InvoiceID": draft["InvoiceID"]},
            "Account": {"Code": "090"},
            "Date": "2024-05-21",
            "Amount": "5.00",
        },
    )
    rec.call(c, "getPayment", "by-id", "GET", f"/Payments/{payment['PaymentID']}")
    rec.call(c, "deletePayment", "ok", "POST", f"/Payments/{single['PaymentID']}", body={"Status": "DELETED"})
    rec.call(
        c,
        "deletePayment",
        "already-deleted-400",
        "POST",
        f"/Payments/{single['PaymentID']}",
        expected=400,
        body={"Status": "DELETED"},
    )
    rec.call(c, "getPayments", "paged", "GET", "/Payments", params={"page": 1, "where": 'Status=="AUTHORISED"'})

    # Credit notes and allocations
    credit = rec.call(
        c, "createCreditNotes", "ok", "PUT", "/CreditNotes", body={"CreditNotes": [_credit_body(acme["ContactID"])]}
    )["CreditNotes"][0]
    rec.call(
        c,
        "createCreditNotes",
        "no-contact-400",
        "PUT",
        "/CreditNotes",
        expected=400,
        body={"CreditNotes": [{"Type": "ACCRECCREDIT", "LineItems": []}]},
    )
    rec.call(
        c,
        "updateOrCreateCreditNotes",
        "upsert",
        "POST",
        "/CreditNotes",
        body={"CreditNotes": [{"CreditNoteID": credit["CreditNoteID"], "Reference": "RMA 7"}]},
    )
    allocation = rec.call(
        c,
        "createCreditNoteAllocation",
        "ok",
        "PUT",
        f"/CreditNotes/{credit['CreditNoteID']}/Allocations",
        body={
            "Allocations": [{"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": "25.00", "Date": "2024-05-22"}]
        },
    )["Allocations"][0]
    rec.call(
        c,
        "createCreditNoteAllocation",
        "too-much-400",
        "PUT",
        f"/CreditNotes/{credit['CreditNoteID']}/Allocations",
        expected=400,
        body={
            "Allocations": [{"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": "9999", "Date": "2024-05-22"}]
        },
    )
    rec.call(c, "getCreditNote", "by-id", "GET", f"/CreditNotes/{credit['CreditNoteID']}")
    rec.call(c, "getInvoice", "paid-in-part-and-credited", "GET", f"/Invoices/{invoice['InvoiceID']}")
    rec.call(c, "getCreditNotes", "paged", "GET", "/CreditNotes", params={"page": 1})
    rec.call(
        c,
        "deleteCreditNoteAllocations",
        "ok",
        "DELETE",
        f"/CreditNotes/{credit['CreditNoteID']}/Allocations/{allocation['AllocationID']}",
    )
    rec.call(
        c,
        "updateCreditNote",
        "void",
        "POST",
        f"/CreditNotes/{credit['CreditNoteID']}",
        body={"CreditNotes": [{"Status": "VOIDED"}]},
    )
    rec.call(c, "getInvoice", "paid", "GET", f"/Invoices/{_paid_invoice(c, acme['ContactID'])}")

    # Identity: connections
    other = TenantClient(sim, sim.create_tenant("Disconnect Me Ltd"))
    connections = rec.call(other, "getConnections", "list", "GET", f"{sim.base_url}/connections")
    rec.call(
        other, "deleteConnection", "ok", "DELETE", f"{sim.base_url}/connections/{connections[0]['id']}", expected=204
    )
    rec.call(
        other,
        "deleteConnection",
        "unknown-404",
        "DELETE",
        f"{sim.base_url}/connections/{connections[0]['id']}",
        expected=404,
    )

    # Undocumented statuses: 401, 403, 429, 5xx
    rec.call(
        c,
        "getContacts",
        "unknown-token-401",
        "GET",
        "/Contacts",
        expected=401,
        headers={"Authorization": "Bearer not-a-token"},
    )
    rec.call(c, "getContacts", "missing-tenant-403", "GET", "/Contacts", expected=403, headers={"xero-tenant-id": ""})
    sim.set_faults(script=["500", "503"])
    rec.call(c, "getInvoices", "injected-500", "GET", "/Invoices", expected=500, params={"page": 1})
    rec.call(c, "getInvoices", "injected-503", "GET", "/Invoices", expected=503, params={"page": 1})
    _throttle_samples(sim, rec)
    sim.advance_clock(1801)
    rec.call(c, "getContacts", "token-expired-401", "GET", "/Contacts", expected=401, params={"page": 1})
    c.close()
    other.close()


def _paid_invoice(client: TenantClient, contact_id: str) -> str:
    invoice = client.invoice(contact_id, "30.00")
    client.payment(invoice["InvoiceID"], "30.00")
    return invoice["InvoiceID"]


def _throttle_samples(sim: XeroSimulator, rec: Recorder) -> None:
    tenant = sim.create_tenant("Throttled Ltd")
    with TenantClient(sim, tenant) as c:
        sim.set_limits(calls_per_minute=1)
        c.list("Contacts", page=1)
        rec.call(c, "getContacts", "minute-limit-429", "GET", "/Contacts", expected=429, params={"page": 1})
        sim.set_limits(calls_per_minute=60, calls_per_day=1)
        rec.call(c, "getContacts", "day-limit-429", "GET", "/Contacts", expected=429, params={"page": 1})
        sim.set_limits(calls_per_day=5000, max_concurrent=1)
        sim.set_faults(latency_ms=400, match="Organisation")
        slow = threading.Thread(target=lambda: c.request("GET", "/Organisation"))
        slow.start()
        try:
            deadline = datetime.now(UTC) + timedelta(seconds=2)
            while sim.limiter.in_flight(tenant) == 0 and datetime.now(UTC) < deadline:
                threading.Event().wait(0.01)
            rec.call(c, "getContacts", "concurrent-limit-429", "GET", "/Contacts", expected=429, params={"page": 1})
        finally:
            slow.join()
            sim.clear_faults()
            sim.set_limits(calls_per_minute=1000, calls_per_day=5000, max_concurrent=5)


@pytest.fixture(scope="module")
def samples():
    # The scenario makes more than Xero's 60 calls a minute; its own throttling samples lower it.
    with XeroSimulator(port=0, demo_tenant=False, limits={"calls_per_minute": 1000}) as sim:
        recorder = Recorder(sim)
        run_scenario(sim, recorder)
    return recorder.samples


# Operations the simulator implements, each with at least one recorded sample.
IMPLEMENTED = (
    "getContacts",
    "createContacts",
    "updateOrCreateContacts",
    "getContact",
    "getContactByContactNumber",
    "updateContact",
    "getItems",
    "createItems",
    "updateOrCreateItems",
    "getItem",
    "updateItem",
    "deleteItem",
    "getInvoices",
    "createInvoices",
    "updateOrCreateInvoices",
    "getInvoice",
    "updateInvoice",
    "getPayments",
    "createPayments",
    "createPayment",
    "getPayment",
    "deletePayment",
    "getCreditNotes",
    "createCreditNotes",
    "updateOrCreateCreditNotes",
    "getCreditNote",
    "updateCreditNote",
    "createCreditNoteAllocation",
    "deleteCreditNoteAllocations",
    "getAccounts",
    "getAccount",
    "getTaxRates",
    "getOrganisations",
    "getConnections",
    "deleteConnection",
)
IDENTITY_OPERATIONS = {"getConnections", "deleteConnection"}


def _mock(sample: Sample, operations: dict) -> tuple[MockRequest, MockResponse]:
    """The recorded exchange, moved onto Xero's own host and path as the spec's server names it."""
    method, template, _ = operations[sample.operation]
    path = urlsplit(sample.url).path
    if sample.operation in IDENTITY_OPERATIONS:
        spec_path = "/Connections" + path[len("/connections") :]
    else:
        spec_path = path
        template = "/api.xro/2.0" + template
    pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
    assert sample.method == method and re.match(pattern, spec_path, re.IGNORECASE), (
        f"{sample.label} is {sample.method} {spec_path}, not {method} {template}"
    )
    request = MockRequest(
        XERO_API,
        sample.method.lower(),
        spec_path,
        args=dict(httpx.QueryParams(sample.query.decode())),
        headers=sample.headers,
        data=sample.body or None,
    )
    content_type = sample.content_type.split(";")[0] if sample.response else None
    response = MockResponse(sample.response, status_code=sample.status, content_type=content_type or "application/json")
    return request, response


def _documented(sample: Sample, operations: dict) -> bool:
    return sample.status in operations[sample.operation][2]


def _spec_for(sample: Sample, accounting_spec, identity_spec):
    return identity_spec if sample.operation in IDENTITY_OPERATIONS else accounting_spec


def pytest_generate_tests(metafunc):
    if "operation" in metafunc.fixturenames:
        metafunc.parametrize("operation", IMPLEMENTED)


def test_every_sample_of_the_operation_validates_against_the_spec(
    operation, samples, operations, accounting_spec, identity_spec
):
    mine = [sample for sample in samples if sample.operation == operation and _documented(sample, operations)]
    assert mine, f"no recorded sample of {operation}"
    for sample in mine:
        request, response = _mock(sample, operations)
        _spec_for(sample, accounting_spec, identity_spec).validate_response(request, response)


# --- undocumented statuses, checked against the contract ----------------------------------------

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["Title", "Status", "Detail", "Instance"],
    "properties": {
        "Type": {"type": ["string", "null"]},
        "Title": {"enum": ["Unauthorized", "Forbidden", "Too Many Requests"]},
        "Status": {"enum": [401, 403, 429]},
        "Detail": {"type": "string"},
        "Instance": {"type": "string", "format": "uuid"},
        "Extensions": {"type": "object"},
    },
}
SERVER_ERROR_SCHEMA = {
    "type": "object",
    "required": ["ErrorNumber", "Type", "Message"],
    "properties": {"ErrorNumber": {"type": "integer"}, "Type": {"type": "string"}, "Message": {"type": "string"}},
}


def test_undocumented_statuses_are_undocumented_and_answer_in_the_contracts_shapes(
    samples, operations, accounting_spec, identity_spec
):
    undocumented = [sample for sample in samples if not _documented(sample, operations)]
    assert {sample.status for sample in undocumented} == {400, 401, 403, 404, 429, 500, 503}
    for sample in undocumented:
        request, response = _mock(sample, operations)
        with pytest.raises(ResponseNotFound):
            _spec_for(sample, accounting_spec, identity_spec).validate_response(request, response)
        if sample.status == 400:
            jsonschema.validate(httpx.Response(200, content=sample.response).json(), SERVER_ERROR_SCHEMA)
        elif sample.status == 404:
            assert sample.response == b"The resource you're looking for cannot be found", sample.label
        elif sample.status >= 500:
            jsonschema.validate(httpx.Response(200, content=sample.response).json(), SERVER_ERROR_SCHEMA)
        else:
            jsonschema.validate(httpx.Response(200, content=sample.response).json(), PROBLEM_SCHEMA)


def test_the_spec_check_would_catch_a_drifting_answer(samples, operations, accounting_spec):
    """The validation is not vacuous: the same sample with one out-of-spec enum value fails."""
    sample = next(s for s in samples if s.operation == "getInvoice" and s.variant == "by-id")
    drifted = Sample(**{**sample.__dict__, "response": sample.response.replace(b'"AUTHORISED"', b'"OPEN"')})
    request, response = _mock(drifted, operations)

    with pytest.raises(Exception, match="OPEN"):
        accounting_spec.validate_response(request, response)


# --- identity token answers and webhook payloads -----------------------------------------------


def test_token_answers_validate_against_the_identity_access_token_schema(webhook_schemas):
    _, access_token_schema = webhook_schemas
    with XeroSimulator(port=0) as sim:
        first = sim.issue_tokens(sim.create_tenant())
        refreshed = httpx.post(
            sim.token_url,
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=(sim.config.client_id, sim.config.client_secret),
        )

    for body in (first, refreshed.json()):
        OAS30Validator(access_token_schema).validate(body)
        assert body["token_type"] == "Bearer"


def _date_time_without_offset_allowed() -> FormatChecker:
    """The OAS 3.1 format checker, except that `date-time` may omit the offset (Xero's
    eventDateUtc and the spec's own examples do)."""
    checker = FormatChecker(())
    checker.checkers = dict(oas31_format_checker.checkers)
    checker.checks("date-time")(_date_time)
    return checker


def test_webhook_payloads_validate_against_the_webhooks_spec(webhook_schemas):
    document, _ = webhook_schemas
    receiver = WebhookReceiver("conformance-key")
    try:
        with XeroSimulator(
            port=0, webhook_url=receiver.url, webhook_key="conformance-key", webhook_window_seconds=60
        ) as sim:
            tenant = sim.create_tenant()
            contact = sim.act(tenant, "Contact", "create", {"Name": "Acme Ltd"})
            sim.act(tenant, "Contact", "archive", {"ContactID": contact["ContactID"]})
            sim.act(
                tenant,
                "CreditNote",
                "create",
                _credit_body(sim.act(tenant, "Contact", "create", {"Name": "B"})["ContactID"]),
            )
            sim.flush_webhooks()
            sim.intent_to_receive()
    finally:
        receiver.close()
    payloads = receiver.payloads()
    checker = _date_time_without_offset_allowed()
    schemas = document["components"]["schemas"]
    for payload in payloads:
        event_schema = {**schemas["WebhookEvent"], "components": document["components"]}
        OAS31Validator(event_schema, format_checker=checker).validate(payload)
        if any(event["eventCategory"] == "CREDITNOTE" for event in payload["events"]):
            credit_schema = {
                "$ref": "#/components/schemas/CreditNoteWebhookEvent",
                "components": document["components"],
            }
            credit_payload = {**payload, "events": [e for e in payload["events"] if e["eventCategory"] == "CREDITNOTE"]}
            OAS31Validator(credit_schema, format_checker=checker).validate(credit_payload)
    assert {event["eventCategory"] for payload in payloads for event in payload["events"]} == {"CONTACT", "CREDITNOTE"}
    assert sum(1 for payload in payloads if not payload["events"]) == 2  # the two intent-to-receive probes
