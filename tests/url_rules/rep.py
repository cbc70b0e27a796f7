"""The sales rep's pages: draft invoices of a customer (billing.invoice_urls).

Whoever sees the customer and holds the invoice right: reps for their own customers, AR and
Finance Admins for all; a customer out of reach answers 404, never 403. Issuing is AR's and the
Finance Admin's: a rep is refused with 403 on their own customer. The matrix's `draft_pk` is a
draft of the customer in the URL; `invoice_pk` (the invoice page, any status) is its open invoice.
"""

from tests.url_rules import AR_AND_ADMIN, CUSTOMER_READERS, Rule

OUT_OF_REACH = {"sales_other": 404}

RULES = {
    "invoices:new": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "invoices:line_row": Rule(CUSTOMER_READERS, data={"lines-TOTAL_FORMS": "1"}, denied_statuses=OUT_OF_REACH),
    "invoices:detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "invoices:edit": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "invoices:issue": Rule(
        AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses={"sales_owner": 403, "sales_other": 404}
    ),
    "invoices:delete": Rule(CUSTOMER_READERS, method="post", ok_statuses=(302,), denied_statuses=OUT_OF_REACH),
}


def make_objects(customer, actor) -> dict:
    from decimal import Decimal

    from billing import services

    draft = services.create_invoice(
        actor=actor,
        customer=customer,
        lines=[services.LineInput(description="Matrix draft", unit_price=Decimal("12.50"))],
    )
    return {"rep_draft_invoice": draft}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {"draft_pk": str(objects["rep_draft_invoice"].pk), "invoice_pk": str(objects["open_invoice"].pk)}
