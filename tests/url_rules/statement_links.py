"""The statement behind a dunning letter's signed link: public — anyone holding the link opens it,
signed in or not (the token is the permission; tests/billing/test_statement_links.py shows that a
token altered or expired reaches nothing)."""

from datetime import date

from billing import statement_links
from tests.url_rules import EVERYONE, Rule

RULES = {
    "statement_links:statement": Rule(EVERYONE, public=True),
}


def make_objects(customer, actor) -> dict:
    return {"statement_token": statement_links.make_token(customer.pk, date(2026, 4, 30))}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {"token": objects["statement_token"]}
