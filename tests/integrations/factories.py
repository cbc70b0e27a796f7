"""Factories for the sync tests: billing documents built through billing.services (so they are in
the ledger exactly as real ones are), and `Links`, a stand-in for the engine's ExternalRef lookups."""

from datetime import date
from decimal import Decimal

import factory

from billing import services
from billing.models import CreditNote, Invoice, Payment, Product, TaxRate
from config import audit
from config.audit import save_as
from ledger.models import Account
from tests.factories import CustomerFactory

ISSUED_ON = date(2026, 3, 2)


def _tests_actor():
    return audit.system_actor("tests")


class TaxRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaxRate
        django_get_or_create = ["name"]

    name = "VAT 20%"
    rate = Decimal("0.20")
    liability_account = factory.LazyFunction(lambda: Account.objects.get(role=Account.Role.TAX_PAYABLE))


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Faker("catch_phrase")
    unit_price = Decimal("10.00")
    revenue_account = factory.LazyFunction(lambda: Account.objects.get(role=Account.Role.REVENUE))
    tax_rate = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        product = model_class(**kwargs)
        product.full_clean()
        save_as(product, actor=_tests_actor())
        return product


class InvoiceFactory(factory.django.DjangoModelFactory):
    """An issued invoice (`issued=False`: a draft) of one line unless `lines` are given."""

    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    lines = factory.LazyFunction(
        lambda: [services.LineInput(description="Consulting", quantity=Decimal(1), unit_price=Decimal("100.00"))]
    )
    issue_date = ISSUED_ON
    memo = ""

    @classmethod
    def _create(cls, model_class, *args, customer, lines, issue_date, memo, issued=True, **kwargs):
        actor = _tests_actor()
        invoice = services.create_invoice(actor=actor, customer=customer, lines=lines, memo=memo, **kwargs)
        if not issued:
            return invoice
        return services.issue_invoice(actor=actor, invoice=invoice, issue_date=issue_date)


class PaymentFactory(factory.django.DjangoModelFactory):
    """A cleared payment, applied to nothing unless `auto_apply=True`."""

    class Meta:
        model = Payment

    customer = factory.SubFactory(CustomerFactory)
    amount = Decimal("100.00")
    received_on = date(2026, 3, 10)
    method = Payment.Method.BANK_TRANSFER
    reference = factory.Sequence(lambda n: f"TRX-{n:05d}")

    @classmethod
    def _create(cls, model_class, *args, auto_apply=False, **kwargs):
        return services.record_payment(actor=_tests_actor(), auto_apply=auto_apply, **kwargs)


class CreditNoteFactory(factory.django.DjangoModelFactory):
    """A standalone credit note of one line."""

    class Meta:
        model = CreditNote

    customer = factory.SubFactory(CustomerFactory)
    lines = factory.LazyFunction(
        lambda: [services.LineInput(description="Goodwill", quantity=Decimal(1), unit_price=Decimal("30.00"))]
    )
    reason = "Goodwill"
    issue_date = date(2026, 3, 5)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.issue_credit_note(actor=_tests_actor(), **kwargs)


class Links:
    """What the engine's ExternalRef table answers, kept in two dicts: `pair` links both ways;
    `point` only says which remote id a local record has (for a twin created "elsewhere")."""

    def __init__(self):
        self.remote: dict[tuple[str, int], str] = {}
        self.local: dict[tuple[str, str], int] = {}

    def pair(self, entity: str, local_id: int, remote_id: str) -> str:
        self.remote[entity, local_id] = remote_id
        self.local[entity, remote_id] = local_id
        return remote_id

    def point(self, entity: str, local_id: int, remote_id: str) -> str:
        self.remote[entity, local_id] = remote_id
        return remote_id

    def remote_id_of(self, entity: str, local_id: int) -> str | None:
        return self.remote.get((entity, local_id))

    def local_id_of(self, entity: str, remote_id: str) -> int | None:
        return self.local.get((entity, remote_id))
