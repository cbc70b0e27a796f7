"""Dunning: the reminder letters sent for overdue invoices, one per invoice and level, at most once.

The rule (docs/collections.md tells it for people):
- An invoice is dunned while it is open (issued or partially paid) with something still open on it,
  past its due date, not disputed, and not under a live promise to pay
  (billing.collections_selectors.invoices_under_live_promise).
- It gets the letter of the highest *active* level whose `days_overdue` it has reached, unless that
  level or a higher one was already sent for it: levels never go back down, and an invoice that
  skipped levels (e.g. it was disputed for a while) gets only the highest it has reached, never two
  letters in one run.
- The letter asks for what is open *now*, so after a partial payment the next level asks for the
  rest; an invoice paid in full drops out.
- It goes to the customer's primary contact's e-mail, else to the first contact with one. Without any
  the letter is recorded as failed ("no e-mail address") and shown on the dunning page; a failed
  letter is sent again by the next run (its row becomes "sent"), or at once with "Retry".

Each invoice is handled in its own transaction that locks the customer, then the invoice (the order
billing.services locks in), decides again with what is committed now, writes the DunningLetter row
and the timeline activity, and only then sends the e-mail. The unique (invoice, level) row is what
a second run, or a run racing this one, finds: nothing is sent twice. Should sending fail, the
activity is rolled back to a savepoint and the row is kept as failed with the error.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.template import Context, Template, TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone

from billing import documents
from billing.collections_selectors import invoices_under_live_promise
from billing.models import DunningLetter, DunningLevel, Invoice
from config.audit import save_as, system_actor
from crm import services as crm_services
from crm.models import Activity, Contact, Customer
from jobs import services as jobs

logger = logging.getLogger(__name__)

SENT = DunningLetter.Status.SENT
FAILED = DunningLetter.Status.FAILED
NO_EMAIL = "no e-mail address"
NO_EMAIL_HINT = "add an e-mail address to one of the customer's contacts"
# A running job's progress is written every this many letters (and after the last).
PROGRESS_EVERY = 10
DAILY_TASK = "billing.tasks.send_daily_dunning"
MANUAL_TASK = "billing.tasks.run_dunning"
JOB_KIND = "dunning_run"


# --- Deciding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


def recipient_for(contacts: list[Contact]) -> Recipient:
    """The primary contact if it has an e-mail, else the first contact that has one (contacts in
    their model order: primary first, then by name). Without any, no address — but still the name
    of the person the letter would greet."""
    for contact in contacts:
        if contact.email:
            return Recipient(contact.email, contact.name)
    return Recipient("", contacts[0].name if contacts else "")


def active_levels() -> list[DunningLevel]:
    return list(DunningLevel.objects.filter(is_active=True).order_by("level"))


def choose_level(
    *, days_overdue: int, levels: list[DunningLevel], letters: list[DunningLetter]
) -> tuple[DunningLevel | None, DunningLetter | None]:
    """The level an invoice `days_overdue` days late is due for, given its letters so far, and its
    failed letter at that level to send again (None when it is a first attempt); (None, None) when
    nothing is due: no active level reached yet, or that level or a higher one already sent."""
    reached = [level for level in levels if level.days_overdue <= days_overdue]
    if not reached:
        return None, None
    target = max(reached, key=lambda level: level.level)
    highest_sent = max((letter.level.level for letter in letters if letter.status == SENT), default=0)
    if highest_sent >= target.level:
        return None, None
    failed = next((letter for letter in letters if letter.level_id == target.pk), None)
    return target, failed


def dunnable_invoices(as_of: date) -> QuerySet[Invoice]:
    """Open, overdue, undisputed invoices with something open and no live promise on `as_of`."""
    return Invoice.objects.filter(
        status__in=Invoice.OPEN_STATUSES, open_amount__gt=0, due_date__lt=as_of, disputed=False
    ).exclude(pk__in=invoices_under_live_promise(as_of).values("pk"))


@dataclass(frozen=True)
class PlannedLetter:
    """A letter the next run would send (or send again, when `retry_of` is set)."""

    invoice: Invoice
    level: DunningLevel
    days_overdue: int
    recipient: Recipient
    retry_of: DunningLetter | None = None

    @property
    def customer(self) -> Customer:
        return self.invoice.customer

    @property
    def open_amount(self) -> Decimal:
        """What the letter asks for: what is open on the invoice now."""
        return self.invoice.open_amount

    @property
    def currency(self) -> str:
        return self.invoice.currency

    @property
    def has_recipient(self) -> bool:
        return bool(self.recipient.email)


def plan(
    *, as_of: date, customers: QuerySet[Customer] | None = None, invoice_ids: list[int] | None = None
) -> list[PlannedLetter]:
    """The letters a run on `as_of` would send, by level, then customer, then due date. Four
    queries whatever the number of invoices: the levels, the invoices with their customers, their
    letters so far, and the customers' contacts."""
    levels = active_levels()
    if not levels:
        return []
    earliest = min(level.days_overdue for level in levels)
    invoices = dunnable_invoices(as_of).filter(due_date__lte=as_of - timedelta(days=earliest))
    if customers is not None:
        invoices = invoices.filter(customer__in=customers)
    if invoice_ids is not None:
        invoices = invoices.filter(pk__in=invoice_ids)
    invoices = (
        invoices.select_related("customer")
        .prefetch_related(
            Prefetch("dunning_letters", queryset=DunningLetter.objects.select_related("level")),
            Prefetch("customer__contacts", queryset=Contact.objects.order_by("-is_primary", "name", "id")),
        )
        .order_by("due_date", "id")
    )
    planned = []
    for invoice in invoices:
        days_overdue = (as_of - invoice.due_date).days
        level, retry_of = choose_level(
            days_overdue=days_overdue, levels=levels, letters=list(invoice.dunning_letters.all())
        )
        if level is not None:
            recipient = recipient_for(list(invoice.customer.contacts.all()))
            planned.append(PlannedLetter(invoice, level, days_overdue, recipient, retry_of))
    planned.sort(key=lambda letter: (letter.level.level, letter.customer.display_name.lower(), letter.invoice.due_date))
    return planned


def _is_under_live_promise(invoice: Invoice, as_of: date) -> bool:
    return invoices_under_live_promise(as_of).filter(pk=invoice.pk).exists()


def why_nothing_is_due(invoice: Invoice, *, as_of: date) -> str:
    """In words, why a run on `as_of` sends no letter for `invoice` ("" when one is due)."""
    if invoice.status not in Invoice.OPEN_STATUSES or invoice.open_amount <= 0:
        return f"invoice {invoice} is {invoice.get_status_display().lower()}"
    if invoice.disputed:
        return f"invoice {invoice} is disputed"
    if _is_under_live_promise(invoice, as_of):
        return f"invoice {invoice} is under a promise to pay"
    days_overdue = (as_of - invoice.due_date).days if invoice.due_date else 0
    levels = active_levels()
    if not levels:
        return "no dunning level is active"
    if days_overdue < min(level.days_overdue for level in levels):
        return f"invoice {invoice} is {max(days_overdue, 0)} days overdue, not yet at the first level"
    letters = list(DunningLetter.objects.filter(invoice=invoice).select_related("level"))
    if choose_level(days_overdue=days_overdue, levels=levels, letters=letters)[0] is None:
        return f"invoice {invoice} already had the letter of the level it has reached, or a later one"
    return ""


# --- Writing the letter ------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedLetter:
    subject: str
    body: str
    error: str = ""


def letter_context(*, invoice: Invoice, level: DunningLevel, days_overdue: int, contact_name: str) -> dict:
    """What a level's subject and body may use (docs/collections.md lists it). Plain values, not
    model instances, so that a template edited in the admin can reach nothing else."""
    customer = invoice.customer
    return {
        "customer": {
            "display_name": customer.display_name,
            "legal_name": customer.legal_name or customer.display_name,
            "account_number": customer.account_number,
        },
        "invoice": {
            "number": invoice.number,
            "issue_date": invoice.issue_date,
            "due_date": invoice.due_date,
            "currency": invoice.currency,
            "gross_total": invoice.gross_total,
            "open_amount": invoice.open_amount,
        },
        "open_amount": invoice.open_amount,
        "currency": invoice.currency,
        "days_overdue": days_overdue,
        "contact_name": contact_name,
        "company_name": settings.CONCORD_COMPANY_NAME,
        "level": {"level": level.level, "name": level.name, "days_overdue": level.days_overdue},
    }


def render_letter(*, invoice: Invoice, level: DunningLevel, days_overdue: int, contact_name: str) -> RenderedLetter:
    """The level's subject and body rendered for this invoice (plain text, nothing escaped). A
    template that does not render gives an empty letter and the error, so the run can record it."""
    context = letter_context(invoice=invoice, level=level, days_overdue=days_overdue, contact_name=contact_name)
    try:
        subject = Template(level.subject).render(Context(context, autoescape=False))
        body = Template(level.body).render(Context(context, autoescape=False))
    except (TemplateSyntaxError, ValueError, TypeError, AttributeError) as error:
        return RenderedLetter("", "", f"level {level.level}'s template does not render: {error}"[:300])
    subject = " ".join(subject.split())[: DunningLetter._meta.get_field("subject").max_length]
    return RenderedLetter(subject, body.strip())


def preview(planned: PlannedLetter) -> RenderedLetter:
    return render_letter(
        invoice=planned.invoice,
        level=planned.level,
        days_overdue=planned.days_overdue,
        contact_name=planned.recipient.name,
    )


def _message(*, letter: DunningLetter, statement: bytes | None, as_of: date) -> EmailMessage:
    sender = settings.CONCORD_COLLECTIONS_FROM_EMAIL
    message = EmailMessage(
        subject=letter.subject,
        body=letter.body,
        from_email=sender,
        to=[letter.recipient],
        reply_to=[sender],
        headers={"X-Concord-Dunning": f"{letter.invoice.number}; level {letter.level.level}"},
    )
    if statement is not None:
        message.attach(documents.statement_filename(letter.customer, as_of), statement, "application/pdf")
    return message


def _activity_text(letter: DunningLetter) -> str:
    about = (
        f"{letter.level.name} (level {letter.level.level}) for {letter.open_amount:,.2f} {letter.currency} open, "
        f"{letter.days_overdue} days overdue"
    )
    if letter.status == SENT:
        return f"{about}: e-mailed to {letter.recipient}. Subject: “{letter.subject}”."
    hint = f"; {NO_EMAIL_HINT}" if letter.error == NO_EMAIL else ""
    return f"{about}: not sent — {letter.error}. The next dunning run tries again{hint}."


class _Statements:
    """Each customer's statement PDF, rendered once per run (a customer with several overdue
    invoices gets the same statement with each letter)."""

    def __init__(self, as_of: date):
        self.as_of = as_of
        self._pdfs: dict[int, bytes] = {}
        self.render_seconds: list[float] = []

    def for_customer(self, customer: Customer) -> bytes:
        if customer.pk not in self._pdfs:
            started = time.perf_counter()
            self._pdfs[customer.pk] = documents.render_statement_pdf(customer, self.as_of)
            self.render_seconds.append(time.perf_counter() - started)
        return self._pdfs[customer.pk]


def _send_invoice_letter(
    *, invoice_id: int, as_of: date, actor, levels: list[DunningLevel], statements: _Statements, job_id=None
) -> str:
    """Decide again under lock and send `invoice_id`'s due letter: "sent", "failed" or "skipped"
    (nothing due any more — paid, disputed or promised meanwhile, or sent by a concurrent run)."""
    customer_id = Invoice.objects.filter(pk=invoice_id).values_list("customer_id", flat=True).first()
    if customer_id is None:
        return "skipped"
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        invoice.customer = customer
        still_dunnable = (
            invoice.status in Invoice.OPEN_STATUSES
            and invoice.open_amount > 0
            and not invoice.disputed
            and invoice.due_date < as_of
            and not _is_under_live_promise(invoice, as_of)
        )
        if not still_dunnable:
            return "skipped"
        days_overdue = (as_of - invoice.due_date).days
        letters = list(DunningLetter.objects.filter(invoice=invoice).select_related("level"))
        level, failed = choose_level(days_overdue=days_overdue, levels=levels, letters=letters)
        if level is None:
            return "skipped"
        recipient = recipient_for(list(customer.contacts.order_by("-is_primary", "name", "id")))
        rendered = render_letter(invoice=invoice, level=level, days_overdue=days_overdue, contact_name=recipient.name)
        letter = failed or DunningLetter(invoice=invoice, customer=customer, level=level)
        letter.invoice, letter.customer, letter.level = invoice, customer, level
        letter.recipient = recipient.email
        letter.subject, letter.body = rendered.subject, rendered.body
        letter.open_amount, letter.currency, letter.days_overdue = invoice.open_amount, invoice.currency, days_overdue
        letter.job_id = job_id
        letter.sent_at = timezone.now()
        letter.error = rendered.error or ("" if recipient.email else NO_EMAIL)
        letter.status = FAILED if letter.error else SENT
        try:
            with transaction.atomic():
                save_as(letter, actor=actor)
        except IntegrityError:
            # Written meanwhile by a run that did not take the customer lock first (none does
            # today); the unique (invoice, level) row is the last word.
            return "skipped"
        if letter.status == FAILED:
            if failed is None:
                # Said once on the timeline; a letter failing again every day would drown it.
                _log(letter, actor=actor)
            return "failed"
        statement = statements.for_customer(customer) if level.attach_statement else None
        savepoint = transaction.savepoint()
        _log(letter, actor=actor)
        try:
            _message(letter=letter, statement=statement, as_of=as_of).send()
        except Exception as error:  # noqa: BLE001 - any failure to send is recorded on the letter
            transaction.savepoint_rollback(savepoint)
            logger.warning("Dunning letter for %s (level %s) failed: %s", invoice, level.level, error)
            letter.status, letter.error = FAILED, f"sending failed: {type(error).__name__}: {error}"[:300]
            save_as(letter, actor=actor)
            if failed is None:
                _log(letter, actor=actor)
            return "failed"
        transaction.savepoint_commit(savepoint)
        return "sent"


def _log(letter: DunningLetter, *, actor) -> None:
    crm_services.log_activity(
        actor=actor,
        customer=letter.customer,
        kind=Activity.Kind.LETTER,
        text=_activity_text(letter),
        subject=letter.invoice.number,
    )


# --- Running -----------------------------------------------------------------------------------


@dataclass
class RunSummary:
    as_of: date
    planned: int = 0
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    statement_seconds: list[float] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.outcomes["sent"]

    @property
    def failed(self) -> int:
        return self.outcomes["failed"]

    @property
    def skipped(self) -> int:
        return self.outcomes["skipped"]

    @property
    def message(self) -> str:
        if not self.planned:
            return f"No letters were due on {self.as_of:%d %b %Y}."
        parts = [f"{self.sent} letter{'s' if self.sent != 1 else ''} sent"]
        if self.failed:
            parts.append(f"{self.failed} failed (see the dunning page)")
        if self.skipped:
            parts.append(f"{self.skipped} no longer due")
        return ", ".join(parts) + "."


def run(
    *,
    as_of: date,
    actor,
    job_id: int | None = None,
    customers: QuerySet[Customer] | None = None,
    invoice_ids: list[int] | None = None,
) -> RunSummary:
    """Send the letters `plan` lists, each invoice in its own transaction (see the module's
    docstring); reports progress to the job every PROGRESS_EVERY letters. Safe to run again, and
    alongside another run: a letter already sent is not sent again."""
    started = time.perf_counter()
    planned = plan(as_of=as_of, customers=customers, invoice_ids=invoice_ids)
    summary = RunSummary(as_of=as_of, planned=len(planned))
    if job_id is not None:
        jobs.advance(job_id=job_id, done=0, total=len(planned), message="Sending letters…")
    levels = active_levels()
    statements = _Statements(as_of)
    for done, item in enumerate(planned, start=1):
        if item.level.attach_statement and item.has_recipient:
            # Rendered before the invoice's transaction, so that its locks are held only briefly.
            statements.for_customer(item.customer)
        outcome = _send_invoice_letter(
            invoice_id=item.invoice.pk,
            as_of=as_of,
            actor=actor,
            levels=levels,
            statements=statements,
            job_id=job_id,
        )
        summary.outcomes[outcome] += 1
        if job_id is not None and (done % PROGRESS_EVERY == 0 or done == len(planned)):
            jobs.advance(job_id=job_id, done=done, message=f"{summary.sent} sent, {summary.failed} failed…")
    summary.seconds = time.perf_counter() - started
    summary.statement_seconds = statements.render_seconds
    logger.info("Dunning run as of %s: %s (%.1f s)", as_of, summary.message, summary.seconds)
    return summary


def retry_letter(*, letter: DunningLetter, actor, as_of: date | None = None) -> tuple[RunSummary, str]:
    """Send a failed letter's invoice its due letter now: the failed one again, or the higher level
    it has reached since. Returns the run's summary and, when nothing was sent, why."""
    as_of = as_of or timezone.localdate()
    summary = run(as_of=as_of, actor=actor, invoice_ids=[letter.invoice_id])
    reason = ""
    if not summary.planned or summary.skipped:
        reason = why_nothing_is_due(Invoice.objects.get(pk=letter.invoice_id), as_of=as_of)
    return summary, reason


# --- Jobs --------------------------------------------------------------------------------------

RUN_HINT = (
    "Letters sent before the failure stay sent and are not sent again; start the run again, or wait "
    "for tomorrow's. If it fails again, send this page's address to your administrator."
)


def start_run(*, actor, as_of: date | None = None):
    """Create a job for a dunning run started from the page and queue it (after commit)."""
    from billing import tasks

    as_of = as_of or timezone.localdate()
    job = jobs.create_job(
        kind=JOB_KIND, label=f"Dunning run for {as_of:%d %b %Y}", actor=actor, params={"as_of": as_of.isoformat()}
    )
    return jobs.enqueue(job=job, task=tasks.run_dunning, as_of=as_of.isoformat())


def run_job(*, job_id: int, as_of: date) -> None:
    """Run dunning as the job's starter (or the daily task's system actor), with the job's progress;
    a job already finished (a redelivered task) is left as it is."""
    job = jobs.start(job_id=job_id, message="Planning the letters…")
    if job.is_finished:
        return
    actor = job.created_by or system_actor(f"task:{MANUAL_TASK}")

    def work(job_id: int) -> None:
        summary = run(as_of=as_of, actor=actor, job_id=job_id)
        jobs.succeed(job_id=job_id, message=summary.message, result_url=reverse("dunning:page"))

    jobs.run_tracked(job_id=job_id, work=work, hint=RUN_HINT)


def send_daily(*, as_of: date | None = None) -> int:
    """The daily run (Celery beat): a job of its own, as the task's system actor."""
    as_of = as_of or timezone.localdate()
    actor = system_actor(f"task:{DAILY_TASK}")
    job = jobs.create_job(
        kind=JOB_KIND, label=f"Daily dunning run, {as_of:%d %b %Y}", actor=actor, params={"as_of": as_of.isoformat()}
    )
    run_job(job_id=job.pk, as_of=as_of)
    return job.pk


# --- What the dunning page shows ---------------------------------------------------------------

# A level's table shows this many letters; the rest are counted ("and 40 more").
PREVIEW_ROWS_PER_LEVEL = 200
RECENT_LETTERS = 50
FAILED_LETTERS = 100


@dataclass(frozen=True)
class LevelPreview:
    level: DunningLevel
    letters: list[PlannedLetter]
    count: int
    without_email: int
    totals: dict[str, Decimal]  # open amount asked for, by currency

    @property
    def more(self) -> int:
        return self.count - len(self.letters)


@dataclass(frozen=True)
class RunPreview:
    as_of: date
    levels: list[LevelPreview]
    without_email: list[PlannedLetter]

    @property
    def count(self) -> int:
        return sum(level.count for level in self.levels)


def run_preview(*, as_of: date, customers: QuerySet[Customer] | None = None) -> RunPreview:
    """The next run's letters grouped by active level (empty levels too), and the ones that would
    fail for want of an e-mail address: five queries (the plan's four and the levels)."""
    planned = plan(as_of=as_of, customers=customers)
    by_level: dict[int, list[PlannedLetter]] = {}
    for letter in planned:
        by_level.setdefault(letter.level.pk, []).append(letter)
    previews = []
    for level in active_levels():
        letters = by_level.get(level.pk, [])
        totals: dict[str, Decimal] = {}
        for letter in letters:
            totals[letter.currency] = totals.get(letter.currency, Decimal(0)) + letter.open_amount
        previews.append(
            LevelPreview(
                level=level,
                letters=letters[:PREVIEW_ROWS_PER_LEVEL],
                count=len(letters),
                without_email=sum(1 for letter in letters if not letter.has_recipient),
                totals=dict(sorted(totals.items())),
            )
        )
    return RunPreview(
        as_of=as_of, levels=previews, without_email=[letter for letter in planned if not letter.has_recipient]
    )


def _letters(customers: QuerySet[Customer] | None) -> QuerySet[DunningLetter]:
    letters = DunningLetter.objects.select_related("invoice", "customer", "level")
    return letters if customers is None else letters.filter(customer__in=customers)


def recent_letters(*, customers: QuerySet[Customer] | None = None) -> list[DunningLetter]:
    """The latest letters sent or failed, newest first (one query)."""
    return list(_letters(customers).order_by("-sent_at", "-id")[:RECENT_LETTERS])


def failed_letters(*, customers: QuerySet[Customer] | None = None) -> list[DunningLetter]:
    """Failed letters still worth sending, oldest first (one query): their invoice is still open,
    and no letter of a higher level has been written for it since (that one supersedes them)."""
    superseded = DunningLetter.objects.filter(invoice=OuterRef("invoice"), level__level__gt=OuterRef("level__level"))
    return list(
        _letters(customers)
        .filter(status=FAILED, invoice__status__in=Invoice.OPEN_STATUSES, invoice__open_amount__gt=0)
        .exclude(Exists(superseded))
        .order_by("sent_at", "id")[:FAILED_LETTERS]
    )


def latest_run(user):
    """The newest dunning run `user` started in the last day, to show its progress (None if none)."""
    from jobs.models import BackgroundJob

    since = timezone.now() - timedelta(days=1)
    runs = BackgroundJob.objects.filter(kind=JOB_KIND, created_by=user, created_at__gte=since)
    return runs.order_by("-created_at", "-id").first()
