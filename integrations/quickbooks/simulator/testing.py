"""A small httpx client for one realm of a running simulator, for tests.

It sends what a well-behaved QBO client sends: `Authorization: Bearer …`,
`Accept: application/json`, `minorversion=75`, and parses JSON with Decimal amounts.
"""

from __future__ import annotations

from typing import Any

import httpx

from . import wire
from .server import QuickBooksSimulator


class RealmClient:
    def __init__(
        self, sim: QuickBooksSimulator, realm_id: str, access_token: str | None = None, *, timeout: float = 5.0
    ) -> None:
        self.sim = sim
        self.realm_id = realm_id
        self.access_token = access_token or sim.issue_tokens(realm_id)["access_token"]
        self.http = httpx.Client(base_url=f"{sim.api_url}/company/{realm_id}", timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RealmClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        text: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        content: str | None = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            content = wire.dumps(body)
        elif text is not None:
            all_headers["Content-Type"] = "application/text"
            content = text
        all_headers.update(headers or {})
        query = {"minorversion": 75, **(params or {})}
        extra = {"timeout": timeout} if timeout is not None else {}
        return self.http.request(method, path, content=content, params=query, headers=all_headers, **extra)

    @staticmethod
    def json(response: httpx.Response) -> Any:
        return wire.loads(response.content)

    def ok(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise AssertionError(f"expected 200, got {response.status_code}: {response.text}")
        return self.json(response)

    # Shortcuts that return the parsed entity and fail loudly on anything but 200.

    def create(self, entity: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return self.ok(self.request("POST", f"/{entity.lower()}", body=body, params=params))[entity]

    def read(self, entity: str, object_id: str) -> dict[str, Any]:
        return self.ok(self.request("GET", f"/{entity.lower()}/{object_id}"))[entity]

    def update(self, entity: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return self.ok(self.request("POST", f"/{entity.lower()}", body=body, params=params))[entity]

    def query(self, statement: str) -> dict[str, Any]:
        return self.ok(self.request("POST", "/query", text=statement))["QueryResponse"]

    def customer(self, name: str = "Acme Ltd", **fields: Any) -> dict[str, Any]:
        return self.create("Customer", {"DisplayName": name, **fields})

    def invoice(self, customer_id: str, *amounts: str, **fields: Any) -> dict[str, Any]:
        lines = [
            {
                "Amount": wire.to_decimal(amount),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
            for amount in (amounts or ("100.00",))
        ]
        return self.create("Invoice", {"CustomerRef": {"value": customer_id}, "Line": lines, **fields})

    def payment(self, customer_id: str, total: str, applications: dict[str, str], **fields: Any) -> dict[str, Any]:
        lines = [
            {"Amount": wire.to_decimal(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}
            for invoice_id, amount in applications.items()
        ]
        body = {"CustomerRef": {"value": customer_id}, "TotalAmt": wire.to_decimal(total), "Line": lines, **fields}
        return self.create("Payment", body)
