"""Configuring the dunning ladder: saving a level, checking and previewing its letter templates.

A level's subject and body are Django templates rendered for each letter (billing.dunning). Here
they are checked before they are saved: with the builtin tags and filters only (no {% load %},
nothing read from template files), parsed and then rendered once against a made-up invoice, so a
level that saves is a level that renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.template import Context, Engine, TemplateDoesNotExist, TemplateSyntaxError
from django.template.base import Lexer, TokenType
from django.utils import timezone

from billing.dunning import letter_context
from billing.models import DunningLevel, Invoice
from config.audit import save_as
from crm.models import Contact, Customer
from ledger.money import base_currency

# The service's keyword for the level's number: `level` is the level being edited.
EDITABLE_FIELDS = frozenset({"number", "name", "days_overdue", "subject", "body", "attach_statement", "is_active"})
TEMPLATE_FIELDS = ("subject", "body")
# Tags that would reach beyond the letter's own context: other templates, tag libraries, debug output.
REFUSED_TAGS = re.compile(r"{%-?\s*(load|include|extends|debug|ssi)\b")
# Only the builtin tags and filters, and no template loaders: `{% include %}` finds nothing.
LETTER_ENGINE = Engine(loaders=[], libraries={}, debug=False, autoescape=False)
RENDER_ERRORS = (TemplateSyntaxError, TemplateDoesNotExist, ValueError, TypeError, AttributeError, KeyError)


# --- Templates ---------------------------------------------------------------------------------


CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


def _unclosed_tag(source: str) -> str:
    """The start of a tag left open (Django would send it as text, braces and all), or ""."""
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.TEXT:
            for opener in CLOSERS:
                at = token.contents.find(opener)
                if at != -1:
                    return " ".join(token.contents[at : at + 30].split())
    return ""


def render_template(source: str, context: dict) -> tuple[str, str]:
    """(text, error): the template rendered as plain text (letters are e-mail, nothing escaped),
    or an empty text and what is wrong with it, in words an admin can act on."""
    found = REFUSED_TAGS.search(source or "")
    if found:
        return "", f"Letters cannot use {{% {found.group(1)} %}}: only the variables listed and the built-in filters."
    unclosed = _unclosed_tag(source or "")
    if unclosed:
        return "", f"Template error: “{unclosed}” is not closed; end it with {CLOSERS[unclosed[:2]]}."
    try:
        template = LETTER_ENGINE.from_string(source or "")
        return template.render(Context(context, autoescape=False)), ""
    except TemplateSyntaxError as error:
        return "", f"Template error: {error}"
    except RENDER_ERRORS as error:
        return "", f"The template does not render: {error}"


def made_up_invoice(*, days_overdue: int = 14) -> Invoice:
    """An unsaved invoice of an unsaved customer, for checking templates without any data."""
    today = timezone.localdate()
    customer = Customer(display_name="Sample Customer", legal_name="Sample Customer Ltd", account_number="C-000000")
    return Invoice(
        customer=customer,
        number="INV-000000",
        status=Invoice.Status.ISSUED,
        currency=base_currency(),
        issue_date=today - timedelta(days=30 + days_overdue),
        due_date=today - timedelta(days=days_overdue),
        gross_total=Decimal("1200.00"),
        open_amount=Decimal("450.00"),
    )


def _sample_context(*, level: DunningLevel, invoice: Invoice, contact_name: str) -> dict:
    return letter_context(invoice=invoice, level=level, days_overdue=level.days_overdue or 0, contact_name=contact_name)


def template_errors(level: DunningLevel) -> dict[str, str]:
    """Field → error for each of the level's templates that does not parse or render."""
    context = _sample_context(
        level=level, invoice=made_up_invoice(days_overdue=level.days_overdue or 1), contact_name="Alex Example"
    )
    errors = {}
    for name in TEMPLATE_FIELDS:
        _, error = render_template(getattr(level, name), context)
        if error:
            errors[name] = error
    return errors


# --- Saving ------------------------------------------------------------------------------------


def _ladder_errors(level: DunningLevel, others: list[DunningLevel]) -> dict[str, str]:
    """Numbers are unique and `days_overdue` rises strictly with the number, so a later letter
    never comes before an earlier one."""
    errors = {}
    if level.level is None or level.days_overdue is None:
        return errors
    if level.level < 1:
        errors["number"] = "Levels are numbered from 1."
    if level.days_overdue < 1:
        errors["days_overdue"] = "A letter goes out at least one day after the due date."
    for other in sorted(others, key=lambda other: other.level):
        if other.level == level.level:
            errors.setdefault("number", f"Level {other.level} exists already ({other.name}); choose another number.")
        elif other.level < level.level and other.days_overdue >= level.days_overdue:
            errors["days_overdue"] = (
                f"Level {other.level} ({other.name}) goes out at +{other.days_overdue} days; "
                f"level {level.level} must come later: more than {other.days_overdue} days."
            )
        elif other.level > level.level and other.days_overdue <= level.days_overdue:
            errors.setdefault(
                "days_overdue",
                f"Level {other.level} ({other.name}) goes out at +{other.days_overdue} days; "
                f"level {level.level} must come earlier: fewer than {other.days_overdue} days.",
            )
    return errors


@transaction.atomic
def save_dunning_level(*, actor, level: DunningLevel | None = None, **fields) -> DunningLevel:
    """Add a dunning level (`level` None) or change one. `number` is the level's place on the
    ladder (the model's `level`).

    Refused with a field-keyed ValidationError, nothing saved, when the number is taken, when the
    days overdue do not rise strictly with the number, or when the subject or body template does
    not parse or render. The whole ladder is locked first, so two admins editing it at once cannot
    leave it out of order."""
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"save_dunning_level() got unexpected fields: {', '.join(sorted(unknown))}")
    ladder = list(DunningLevel.objects.select_for_update().order_by("pk"))
    if level is None:
        level = DunningLevel()
    else:
        level = next((locked for locked in ladder if locked.pk == level.pk), None)
        if level is None:
            raise ValidationError({"number": "This level no longer exists."})
    for name, value in fields.items():
        setattr(level, "level" if name == "number" else name, value)
    others = [other for other in ladder if other.pk != level.pk]
    errors = _ladder_errors(level, others)
    errors.update(template_errors(level))
    try:
        # Uniqueness and the check constraints are the ladder rule above, in better words.
        level.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as invalid:
        for name, messages in invalid.message_dict.items():
            errors.setdefault("number" if name == "level" else name, " ".join(messages))
    if errors:
        raise ValidationError(errors)
    save_as(level, actor=actor)
    return level


# --- Preview -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterPreview:
    subject: str
    body: str
    subject_error: str
    body_error: str
    invoice: Invoice
    contact_name: str
    days_overdue: int
    is_made_up: bool


def sample_invoice() -> tuple[Invoice, str, bool]:
    """(invoice, contact name, made up?) to preview letters with: the open invoice longest past
    due, else the latest issued one, else a made-up one."""
    open_invoices = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES, open_amount__gt=0).select_related(
        "customer"
    )
    invoice = (
        open_invoices.filter(due_date__lt=timezone.localdate()).order_by("due_date", "pk").first()
        or Invoice.objects.exclude(number=None).select_related("customer").order_by("-issue_date", "-pk").first()
    )
    if invoice is None:
        return made_up_invoice(), "Alex Example", True
    contact = Contact.objects.filter(customer_id=invoice.customer_id).order_by("-is_primary", "name", "pk").first()
    return invoice, contact.name if contact else "", False


def preview_letter(
    *, number: int | None, name: str, days_overdue: int | None, subject: str, body: str
) -> LetterPreview:
    """The letter as the level would send it for the sample invoice, at `days_overdue` days."""
    invoice, contact_name, is_made_up = sample_invoice()
    days = days_overdue if days_overdue and days_overdue > 0 else 1
    level = DunningLevel(level=number or 1, name=name or "", days_overdue=days, subject=subject, body=body)
    context = letter_context(invoice=invoice, level=level, days_overdue=days, contact_name=contact_name)
    rendered_subject, subject_error = render_template(subject, context)
    rendered_body, body_error = render_template(body, context)
    return LetterPreview(
        subject=" ".join(rendered_subject.split()),
        body=rendered_body.strip(),
        subject_error=subject_error,
        body_error=body_error,
        invoice=invoice,
        contact_name=contact_name,
        days_overdue=days,
        is_made_up=is_made_up,
    )
