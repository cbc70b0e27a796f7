"""The Billing panel's money pages (billing.urls) and the write-off desk (billing.writeoff_urls).

Money is AR's and the Finance Admin's: a rep is refused with 404 for a customer out of reach (its
existence does not leak) and 403 for their own customer (no right to record money, credit or write
off). The desk is for those who take part in write-offs (AR asks, a Finance Admin decides): reps
get 403 there; deciding is the Finance Admin's alone.

The walk goes through the URLs in order with one set of rows per role, so the rules leave the
matrix's `open_invoice` open for the other areas: the form under an invoice (write-off request,
void confirmation, due date and memo) is only opened (GET), the matrix payment's remaining credit is refunded before
"auto-allocate" runs (which then has nothing to apply), and the desk decides on a request of its
own.
"""

from django.utils import timezone

from tests.url_rules import AR_AND_ADMIN, CUSTOMER_READERS, FINANCE_ADMIN, Rule

MONEY_REFUSED = {"sales_owner": 403, "sales_other": 404}


def _today() -> str:
    return timezone.localdate().isoformat()


def _refund_what_is_left(objects: dict) -> dict:
    from billing.models import Payment

    left = Payment.objects.get(pk=objects["payment"].pk).unapplied_amount
    return {"amount": str(left), "refunded_on": _today(), "method": "cheque", "idempotency_key": "matrix-refund"}


def _credit_note(objects: dict) -> dict:
    return {
        "form_token": "matrix-credit-note",
        "reason": "Matrix check",
        "issue_date": _today(),
        "invoice": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-description": "Matrix credit",
        "lines-0-quantity": "1",
        "lines-0-unit_price": "3.00",
    }


RULES = {
    # Without htmx the panel's own URL sends the reader to the customer page.
    "billing:panel": Rule(CUSTOMER_READERS, ok_statuses=(302,), denied_statuses={"sales_other": 404}),
    "billing:summary_panel": Rule(CUSTOMER_READERS, denied_statuses={"sales_other": 404}),
    "billing:invoices": Rule(CUSTOMER_READERS, denied_statuses={"sales_other": 404}),
    "billing:refund_payment": Rule(
        AR_AND_ADMIN, method="post", ok_statuses=(302,), data=_refund_what_is_left, denied_statuses=MONEY_REFUSED
    ),
    "billing:auto_allocate": Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=MONEY_REFUSED),
    "billing:issue_credit_note": Rule(
        AR_AND_ADMIN, method="post", ok_statuses=(302,), data=_credit_note, denied_statuses=MONEY_REFUSED
    ),
    "billing:allocate_credit_note": Rule(
        AR_AND_ADMIN,
        method="post",
        ok_statuses=(302,),
        data=lambda objects: {"invoice": objects["open_invoice"].pk, "amount": "1.00"},
        denied_statuses=MONEY_REFUSED,
    ),
    "billing:refund_credit_note": Rule(
        AR_AND_ADMIN,
        method="post",
        ok_statuses=(302,),
        data=lambda objects: {
            "amount": "1.00",
            "refunded_on": _today(),
            "method": "bank_transfer",
            "idempotency_key": "matrix-credit-note-refund",
        },
        denied_statuses=MONEY_REFUSED,
    ),
    "billing:request_write_off": Rule(AR_AND_ADMIN, denied_statuses=MONEY_REFUSED),
    "billing:void_invoice": Rule(AR_AND_ADMIN, denied_statuses=MONEY_REFUSED),
    # Changing an issued invoice's due date and memo goes with the right to void it.
    "billing:edit_invoice_terms": Rule(AR_AND_ADMIN, denied_statuses=MONEY_REFUSED),
    "billing:issue_invoice": Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=MONEY_REFUSED),
    "writeoffs:desk": Rule(AR_AND_ADMIN, denied_statuses={"sales_owner": 403, "sales_other": 403}),
    "writeoffs:decide": Rule(
        FINANCE_ADMIN,
        method="post",
        ok_statuses=(302,),
        data=lambda objects: {"decision": "approve", "written_off_on": _today()},
        # AR sees the customer but may not decide; a rep's customer is theirs (403) or not (404).
        denied_statuses={"ar": 403, "sales_owner": 403, "sales_other": 404},
    ),
}


def make_objects(customer, actor) -> dict:
    """A standalone credit note with credit to apply and refund, a draft to issue, and a
    write-off request (by the system actor, so a Finance Admin may decide it)."""
    from decimal import Decimal

    from billing import services
    from tests.billing.conftest import issue

    credit_note = services.issue_credit_note(
        actor=actor,
        customer=customer,
        reason="Matrix goodwill",
        lines=[services.LineInput(description="Matrix goodwill", unit_price=Decimal("10.00"))],
    )
    draft = services.create_invoice(
        actor=actor,
        customer=customer,
        lines=[services.LineInput(description="Matrix panel draft", unit_price=Decimal("15.00"))],
    )
    doubtful = issue(actor, customer, "60.00")
    write_off = services.request_write_off(actor=actor, invoice=doubtful, reason="Matrix: gone bust")
    return {"panel_credit_note": credit_note, "panel_draft_invoice": draft, "panel_write_off": write_off}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {
        "credit_note_pk": str(objects["panel_credit_note"].pk),
        "draft_invoice_pk": str(objects["panel_draft_invoice"].pk),
        "write_off_pk": str(objects["panel_write_off"].pk),
        # The same value as the other areas give (tests/url_rules/documents.py, rep.py).
        "invoice_pk": str(objects["open_invoice"].pk),
    }
