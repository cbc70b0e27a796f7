"""The invoice and statement PDFs: whoever sees the customer and holds billing.view_invoice (all
three roles hold it); a customer out of reach answers 404, never 403."""

from tests.url_rules import CUSTOMER_READERS, Rule

RULES = {
    "documents:invoice_pdf": Rule(CUSTOMER_READERS, denied_statuses={"sales_other": 404}),
    "documents:statement_pdf": Rule(
        CUSTOMER_READERS, data={"as_of": "2026-04-30"}, denied_statuses={"sales_other": 404}
    ),
}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {"invoice_pk": str(objects["open_invoice"].pk)}
