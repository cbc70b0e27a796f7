"""A small httpx client for one tenant of a running simulator, for tests.

It sends what a well-behaved Xero client sends: `Authorization: Bearer …`, `xero-tenant-id`,
`Accept: application/json`, and parses JSON with Decimal amounts.
"""

from __future__ import annotations

from typing import Any

import httpx

from . import wire
from .server import XeroSimulator


class TenantClient:
    def __init__(
        self, sim: XeroSimulator, tenant_id: str, access_token: str | None = None, *, timeout: float = 5.0
    ) -> None:
        self.sim = sim
        self.tenant_id = tenant_id
        self.access_token = access_token or sim.issue_tokens(tenant_id)["access_token"]
        self.http = httpx.Client(base_url=sim.api_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TenantClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        all_headers = {
            "Authorization": f"Bearer {self.access_token}",
            "xero-tenant-id": self.tenant_id,
            "Accept": "application/json",
        }
        content: str | None = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            content = wire.dumps(body)
        all_headers.update(headers or {})
        extra = {"timeout": timeout} if timeout is not None else {}
        return self.http.request(method, path, content=content, params=params, headers=all_headers, **extra)

    @staticmethod
    def json(response: httpx.Response) -> Any:
        return wire.loads(response.content)

    def ok(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise AssertionError(f"expected 200, got {response.status_code}: {response.text}")
        return self.json(response)

    # Shortcuts that return the parsed records and fail loudly on anything but 200.

    def put(self, plural: str, *records: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
        return self.ok(self.request("PUT", f"/{plural}", body={plural: list(records)}, params=params))[plural]

    def post(self, plural: str, *records: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
        return self.ok(self.request("POST", f"/{plural}", body={plural: list(records)}, params=params))[plural]

    def get(self, plural: str, object_id: str, **params: Any) -> dict[str, Any]:
        return self.ok(self.request("GET", f"/{plural}/{object_id}", params=params))[plural][0]

    def list(self, plural: str, **params: Any) -> list[dict[str, Any]]:
        return self.ok(self.request("GET", f"/{plural}", params=params))[plural]

    def contact(self, name: str = "Acme Ltd", **fields: Any) -> dict[str, Any]:
        return self.put("Contacts", {"Name": name, **fields})[0]

    def invoice(self, contact_id: str, *amounts: str, **fields: Any) -> dict[str, Any]:
        lines = [
            {
                "Description": "Consulting",
                "Quantity": 1,
                "UnitAmount": wire.to_decimal(amount),
                "AccountCode": "200",
                "TaxType": "NONE",
            }
            for amount in (amounts or ("100.00",))
        ]
        body = {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact_id},
            "Date": "2024-05-01",
            "DueDate": "2024-05-31",
            "Status": "AUTHORISED",
            "LineItems": lines,
            **fields,
        }
        return self.put("Invoices", body)[0]

    def payment(self, invoice_id: str, amount: str, **fields: Any) -> dict[str, Any]:
        body = {
            "Invoice": {"InvoiceID": invoice_id},
            "Account": {"Code": "090"},
            "Date": "2024-05-20",
            "Amount": wire.to_decimal(amount),
            **fields,
        }
        return self.put("Payments", body)[0]
