"""A customer's statement behind a signed, expiring link, for the dunning e-mails that link to the
statement instead of attaching it (billing.dunning, docs/collections.md).

The person paying the invoices has no login, so the link carries its own authority: the customer's
id and the statement's date, signed with SECRET_KEY (django.core.signing.TimestampSigner, with a
salt of its own so that no other signed value of the site is accepted here) and the time it was
issued. Whoever holds the link may open that one customer's statement as of that day, for
LINK_VALID_FOR after the letter was sent, and nothing else: a token altered in any way answers 404,
an expired one 410 (the customer replies to the letter for a new copy).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET

from billing import documents
from billing.document_views import pdf_response
from crm.models import Customer

# How long a letter's link opens the statement: past the next reminder (the default ladder's levels
# are two to three weeks apart), each of which brings a link of its own.
LINK_VALID_FOR = timedelta(days=30)
SALT = "billing.statement_links"
# Stands for the token in the reversed URL, which is reversed once per run rather than per e-mail.
_PLACEHOLDER = "TOKEN"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def make_token(customer_id: int, as_of: date) -> str:
    return _signer().sign(f"{customer_id}.{as_of.isoformat()}")


def read_token(token: str) -> tuple[int, date]:
    """The customer id and statement date a token was signed for. Raises signing.SignatureExpired
    for a genuine token older than LINK_VALID_FOR, signing.BadSignature for anything else."""
    value = _signer().unsign(token, max_age=LINK_VALID_FOR)
    customer_id, _, day = value.partition(".")
    try:
        return int(customer_id), date.fromisoformat(day)
    except ValueError as error:  # signed by us, so only a change of format gets here
        raise signing.BadSignature(f"unreadable statement token: {value}") from error


def link_maker(as_of: date) -> Callable[[int], str]:
    """A function giving a customer's absolute statement link as of `as_of` (SITE_URL + path); the
    URL is reversed once, which matters over tens of thousands of e-mails."""
    template = settings.SITE_URL + reverse("statement_links:statement", args=[_PLACEHOLDER])
    head, _, tail = template.rpartition(_PLACEHOLDER)

    def link(customer_id: int) -> str:
        return f"{head}{make_token(customer_id, as_of)}{tail}"

    return link


def statement_url(customer_id: int, as_of: date) -> str:
    return link_maker(as_of)(customer_id)


@require_GET
def statement_pdf(request, token: str) -> HttpResponse:
    """The statement PDF a dunning letter links to; no login, the token is the permission."""
    try:
        customer_id, as_of = read_token(token)
    except signing.SignatureExpired:
        html = render_to_string(
            "billing/dunning/statement_link_expired.html", {"company_name": settings.CONCORD_COMPANY_NAME}
        )
        return HttpResponse(html, status=410)
    except signing.BadSignature:
        raise Http404("No statement here.") from None
    customer = get_object_or_404(Customer, pk=customer_id)
    response = pdf_response(
        documents.render_statement_pdf(customer, as_of), documents.statement_filename(customer, as_of)
    )
    # The token is the only key: keep it out of search engines and other sites' referrer logs.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response
