"""Billing resources of the REST API (/api/v1/): products, invoices (with lines; issue, void,
dispute), payments (with allocations; refund), credit notes, promises to pay and the aging as of
a day.

Thin, as the pages are: a serializer parses the request, the SAME service the page calls makes
the write (billing.services, billing.collections), and a serializer renders the result. Who may
do what is the pages' rule, read from the same places:
- every queryset is narrowed by crm.access (api.viewsets.ApiViewSet), so a document of a customer
  out of the caller's reach answers 404 by every route — list, detail, `?customer=`, nested
  writes, search;
- a write on one document first finds it (404 beyond reach), then checks the role's right for
  that action (403), in the order the pages check them (`object_permissions`);
- the collections desk's writes (disputes, promises) need the desk, as on the pages: seeing every
  customer (crm.access.VIEW_ALL_CUSTOMERS) as well as the right to write;
- the aging is billing.aging.may_see_aging's, as the aging page is.

A refused write raises a domain error; api.problems answers it as a problem document, with the
statuses registered below.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date

import django_filters
from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from api.problems import PROBLEM_CONTENT_TYPE, problem_type, register_domain_error
from api.schema import AutoSchema
from api.viewsets import ApiViewMixin, ApiViewSet
from billing import aging, collections, services
from billing.errors import (
    AllocationExceedsBalance,
    BillingError,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidState,
    NotPermitted,
)
from billing.filters import CreditNoteFilter, InvoiceFilter, PaymentFilter, PromiseFilter
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    Product,
    PromiseInvoice,
    PromiseToPay,
    Refund,
)
from billing.selectors import BUCKETS, aging_statement
from billing.serializers import (
    AgingRowSerializer,
    AgingTotalsSerializer,
    AllocateInputSerializer,
    CancelPromiseInputSerializer,
    CreditNoteAllocationSerializer,
    CreditNoteInputSerializer,
    CreditNoteSerializer,
    DisputeInputSerializer,
    DraftInvoiceInputSerializer,
    InvoiceSerializer,
    IssueInvoiceInputSerializer,
    PaymentAllocationSerializer,
    PaymentSerializer,
    ProductSerializer,
    PromiseInputSerializer,
    PromiseToPaySerializer,
    RecordPaymentInputSerializer,
    RefundInputSerializer,
    RefundSerializer,
    ResolveDisputeInputSerializer,
    VoidInvoiceInputSerializer,
)
from crm import access
from ledger.money import base_currency

# --- Domain errors as problems ------------------------------------------------------------------
#
# The document's state forbids the change (a paid invoice voided, a draft credited): 409, the
# caller must read the document again. The amounts or currencies do not fit: 422, the request
# itself must change. A rule only a service can check (who may ask for a write-off): 403. Any
# other billing refusal: 422. (Django ValidationErrors from a service are 422 with field errors;
# the ledger's refusals are mapped in api/problems.py.)
register_domain_error(InvalidState, status=409, slug="invalid-state", title="The document's state does not allow this.")
register_domain_error(
    AllocationExceedsBalance,
    status=422,
    slug="exceeds-balance",
    title="The amount is more than is open or left to apply.",
)
register_domain_error(CurrencyMismatch, status=422, slug="currency-mismatch", title="The currencies do not match.")
register_domain_error(
    IdempotencyConflict,
    status=422,
    slug="idempotency-conflict",
    title="This idempotency key was used for a different document.",
)
register_domain_error(NotPermitted, status=403, slug="not-permitted", title="You may not do this.")
register_domain_error(BillingError, status=422, slug="refused", title="The change was refused.")

# The collections desk: those who see every customer (Accounts Receivable, Finance Admins).
DESK = access.VIEW_ALL_CUSTOMERS


# --- Products (the API-foundation helper's part, from /work/notes/api-products-snippet.py) -----

PRODUCT_EXAMPLE = {
    "id": 3,
    "sku": "SUP-STD",
    "name": "Standard support, monthly",
    "unit_price": "120.0000",
    "tax_rate": 1,
    "tax_rate_name": "VAT 20%",
    "tax_rate_percent": "20.00",
    "is_active": True,
}


class ProductFilter(django_filters.FilterSet):
    class Meta:
        model = Product
        fields = ["is_active", "sku"]


@extend_schema_view(
    list=extend_schema(
        summary="List products",
        description="The price list invoice lines draw from (prices in the base currency). Filter `is_active=true` "
        "for what can be sold now.",
        examples=[OpenApiExample("A page", value=PRODUCT_EXAMPLE, response_only=True)],
    ),
    retrieve=extend_schema(
        summary="Read a product", examples=[OpenApiExample("Product", value=PRODUCT_EXAMPLE, response_only=True)]
    ),
)
@extend_schema(tags=["products"])
class ProductViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Read-only: products are reference data Finance Admins keep in the admin console."""

    queryset = Product.objects.select_related("tax_rate")
    serializer_class = ProductSerializer
    customer_field = ""  # a product belongs to no customer: the role decides (billing.view_product)
    lookup_url_kwarg = "product_pk"
    lookup_value_regex = r"\d+"
    filterset_class = ProductFilter
    search_fields = ["sku", "name"]
    ordering_fields = ["sku", "name", "unit_price"]
    ordering = ["sku"]


def _today() -> date:
    return timezone.localdate()


class BillingViewSet(ApiViewSet):
    """A billing document resource. `object_permissions` are the role rights an action needs on a
    document it has found: checked after the lookup, so that a document out of reach is 404
    (never 403) and one in reach without the right is 403, as on the pages."""

    object_permissions: dict[str, list[str]] = {}
    lookup_value_regex = r"\d+"

    def check_object_access(self, request, obj) -> bool:
        needed = self.object_permissions.get(self.action)
        return needed is None or request.user.has_perms(needed)

    def parsed(self, serializer_class, **kwargs):
        """The request body validated by `serializer_class` (422 with field errors otherwise)."""
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context(), **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer

    def fresh(self, instance):
        """The document as the API shows it, read again after a write (with its prefetches)."""
        return self.get_queryset().get(pk=instance.pk)


def _customer_not_found() -> dict:
    """The 404 a list answers for `?customer=` out of reach (documented beside its 200)."""
    return {
        (404, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            response={"$ref": "#/components/schemas/Problem"},
            description="`customer` is out of reach or does not exist (or `cursor` is not one the API gave).",
            examples=[
                OpenApiExample(
                    "Out of reach",
                    value={
                        "type": problem_type("not-found"),
                        "title": "Not found.",
                        "status": 404,
                        "detail": "No customer matches the given query.",
                        "instance": "/api/v1/invoices/?customer=42",
                    },
                    response_only=True,
                    status_codes=["404"],
                )
            ],
        )
    }


def _invalid_query(description: str, example: dict) -> dict:
    return {
        (422, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            response={"$ref": "#/components/schemas/Problem"},
            description=description,
            examples=[OpenApiExample("Not valid", value=example, response_only=True, status_codes=["422"])],
        )
    }


BAD_FILTER_EXAMPLE = {
    "type": problem_type("validation"),
    "title": "The request is not valid.",
    "status": 422,
    "detail": "status: Select a valid choice. paid_twice is not one of the available choices.",
    "instance": "/api/v1/invoices/?status=paid_twice",
    "errors": [
        {
            "field": "status",
            "pointer": "/status",
            "detail": "Select a valid choice. paid_twice is not one of the available choices.",
            "code": "invalid_choice",
        }
    ],
}


def _listed(serializer) -> dict:
    return {
        200: serializer,
        **_customer_not_found(),
        **_invalid_query("A filter's value is not valid (see `errors`).", BAD_FILTER_EXAMPLE),
    }


def _detail_actions_need(permission: str, actions) -> dict[str, list[str]]:
    """Actions on one document only need to see documents before the lookup."""
    return {name: [permission] for name in actions}


# --- Invoices ------------------------------------------------------------------------------------

INVOICE_EXAMPLE = {
    "id": 812,
    "number": "INV-000812",
    "status": "issued",
    "customer": 42,
    "currency": "EUR",
    "issue_date": "2026-03-02",
    "due_date": "2026-04-01",
    "exchange_rate": "1.10000000",
    "net_total": "100.00",
    "tax_total": "20.00",
    "gross_total": "120.00",
    "open_amount": "120.00",
    "disputed": False,
    "dispute_reason": "",
    "disputed_at": None,
    "memo": "PO 4471",
    "source": "manual",
    "voided_on": None,
    "settled_on": None,
    "created_at": "2026-03-01T09:12:00Z",
    "updated_at": "2026-03-02T10:00:00Z",
    "lines": [
        {
            "position": 1,
            "product": 7,
            "description": "Widget",
            "quantity": "10.000",
            "unit_price": "10.0000",
            "discount_type": "none",
            "discount_value": "0.0000",
            "tax_rate": 3,
            "subtotal": "100.00",
            "discount": "0.00",
            "net": "100.00",
            "tax": "20.00",
            "gross": "120.00",
        }
    ],
}
DRAFT_EXAMPLE = {
    **INVOICE_EXAMPLE,
    "number": None,
    "status": "draft",
    "issue_date": None,
    "due_date": None,
    "exchange_rate": None,
    "open_amount": "0.00",
}
DRAFT_REQUEST = {
    "customer": 42,
    "due_date": None,
    "memo": "PO 4471",
    "lines": [{"product": 7, "quantity": "10"}, {"description": "Installation", "unit_price": "250.00"}],
}


@extend_schema_view(
    list=extend_schema(
        summary="List invoices",
        responses=_listed(InvoiceSerializer),
        description="The invoices of the customers you may see, newest first; filter by customer, status, "
        "dates, currency and amounts. `?customer=` with a customer out of reach answers 404.",
        examples=[
            OpenApiExample(
                "A page of invoices",
                value=INVOICE_EXAMPLE,
                response_only=True,
            )
        ],
    ),
    retrieve=extend_schema(
        summary="Read an invoice",
        description="With its lines. The `ETag` header is the version to send back in `If-Match`.",
        examples=[OpenApiExample("An issued invoice", value=INVOICE_EXAMPLE, response_only=True)],
    ),
)
@extend_schema(tags=["invoices"])
class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter
    search_fields = ["number", "memo", "customer__display_name", "customer__account_number"]
    ordering_fields = ["id", "created_at", "gross_total", "open_amount"]
    ordering = ["-id"]
    lookup_url_kwarg = "invoice_pk"
    etag_actions = ("retrieve", "create", "update", "partial_update", "issue", "void", "dispute", "resolve_dispute")
    required_permissions = {
        "list": ["billing.view_invoice"],
        "retrieve": ["billing.view_invoice"],
        "create": ["billing.add_invoice"],
        **_detail_actions_need(
            "billing.view_invoice",
            ("update", "partial_update", "destroy", "issue", "void", "dispute", "resolve_dispute"),
        ),
    }
    object_permissions = {
        "update": ["billing.change_invoice"],
        "partial_update": ["billing.change_invoice"],
        # A draft is discarded with the right to change invoices (billing.invoice_views.delete_invoice).
        "destroy": ["billing.change_invoice"],
        "issue": ["billing.issue_invoice"],
        "void": ["billing.void_invoice"],
        "dispute": [DESK, "billing.change_invoice"],
        "resolve_dispute": [DESK, "billing.change_invoice"],
    }

    def base_queryset(self):
        return Invoice.objects.prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("position", "id"))
        )

    def _draft_for_update(self) -> Invoice:
        invoice = self.get_object_for_update()  # found, allowed, locked, If-Match checked
        if invoice.status != Invoice.Status.DRAFT:
            raise InvalidState(
                f"Invoice {invoice} is {invoice.get_status_display().lower()}; only a draft can be changed. "
                "An issued invoice is corrected with a credit note."
            )
        return invoice

    @extend_schema(
        summary="Create a draft invoice",
        description="A draft in the customer's currency, its lines priced by the rounding rule. A line names a "
        "product (which fills in what is left out) or gives a description and a unit price. Nothing is "
        "numbered or posted until it is issued.",
        request=DraftInvoiceInputSerializer,
        responses={201: InvoiceSerializer},
        examples=[
            OpenApiExample("Two lines", value=DRAFT_REQUEST, request_only=True),
            OpenApiExample("The draft", value=DRAFT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def create(self, request, *args, **kwargs):
        serializer = self.parsed(DraftInvoiceInputSerializer)
        invoice = services.create_invoice(actor=request.user, **serializer.service_arguments())
        invoice = self.fresh(invoice)
        return self.created(invoice)

    @extend_schema(
        summary="Replace a draft invoice",
        description="Its due date, memo and lines, repriced. Only a draft changes (409 otherwise). Send the "
        "`ETag` you read in `If-Match`: 412 if it changed since.",
        request=DraftInvoiceInputSerializer,
        responses={200: InvoiceSerializer},
        examples=[
            OpenApiExample(
                "New lines", value={k: v for k, v in DRAFT_REQUEST.items() if k != "customer"}, request_only=True
            ),
            OpenApiExample("The draft", value=DRAFT_EXAMPLE, response_only=True),
        ],
    )
    def update(self, request, *args, partial: bool = False, **kwargs):
        invoice = self._draft_for_update()
        serializer = self.parsed(DraftInvoiceInputSerializer, draft=invoice, partial=partial)
        invoice = services.update_draft_invoice(actor=request.user, invoice=invoice, **serializer.service_arguments())
        return Response(self.representation(self.fresh(invoice)))

    @extend_schema(
        summary="Change a draft invoice",
        description="What is sent replaces what the draft has (`lines` as a whole); the rest stays. Only a "
        "draft changes (409 otherwise); `If-Match` as for PUT.",
        request=DraftInvoiceInputSerializer(partial=True),
        responses={200: InvoiceSerializer},
        examples=[
            OpenApiExample("A new due date", value={"due_date": "2026-05-31"}, request_only=True),
            OpenApiExample("The draft", value=DRAFT_EXAMPLE, response_only=True),
        ],
    )
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @extend_schema(
        summary="Discard a draft invoice",
        description="Deletes a draft and its lines (its history keeps them). An issued invoice is voided "
        "instead (409).",
        responses={204: None},
    )
    def destroy(self, request, *args, **kwargs):
        invoice = self._draft_for_update()
        services.delete_draft_invoice(actor=request.user, invoice=invoice)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Issue a draft invoice",
        description="Numbers it from its series, fixes its exchange rate and due date (from the customer's "
        "terms when it has none) and posts it to the ledger. Accounts Receivable and Finance Admins.",
        request=IssueInvoiceInputSerializer,
        responses={200: InvoiceSerializer},
        examples=[
            OpenApiExample("Issued today", value={}, request_only=True),
            OpenApiExample("Issued on a day", value={"issue_date": "2026-03-02"}, request_only=True),
            OpenApiExample("The issued invoice", value=INVOICE_EXAMPLE, response_only=True),
        ],
    )
    @action(detail=True, methods=["post"])
    def issue(self, request, *args, **kwargs):
        invoice = self.get_object()
        data = self.parsed(IssueInvoiceInputSerializer).validated_data
        invoice = services.issue_invoice(actor=request.user, invoice=invoice, issue_date=data.get("issue_date"))
        return Response(self.representation(self.fresh(invoice)))

    @extend_schema(
        summary="Void an issued invoice",
        description="Cancels an issued invoice nothing has been applied to: its ledger entry is reversed. "
        "One with payments or credits applied is refused (409); credit it instead.",
        request=VoidInvoiceInputSerializer,
        responses={200: InvoiceSerializer},
        examples=[
            OpenApiExample("Voided today", value={}, request_only=True),
            OpenApiExample(
                "The void invoice",
                value={**INVOICE_EXAMPLE, "status": "void", "open_amount": "0.00", "voided_on": "2026-03-05"},
                response_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def void(self, request, *args, **kwargs):
        invoice = self.get_object()
        data = self.parsed(VoidInvoiceInputSerializer).validated_data
        invoice = services.void_invoice(
            actor=request.user, invoice=invoice, voided_on=data.get("voided_on") or _today()
        )
        return Response(self.representation(self.fresh(invoice)))

    @extend_schema(
        summary="Record that the customer disputes an open invoice",
        description="The invoice leaves dunning and automatic allocation until the dispute is resolved; the "
        "reason goes on the customer's timeline. The collections desk (Accounts Receivable, Finance Admins).",
        request=DisputeInputSerializer,
        responses={200: InvoiceSerializer},
        examples=[
            OpenApiExample("A reason", value={"reason": "Goods arrived damaged"}, request_only=True),
            OpenApiExample(
                "The disputed invoice",
                value={**INVOICE_EXAMPLE, "disputed": True, "dispute_reason": "Goods arrived damaged"},
                response_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def dispute(self, request, *args, **kwargs):
        invoice = self.get_object()
        data = self.parsed(DisputeInputSerializer).validated_data
        invoice = collections.open_dispute(actor=request.user, invoice=invoice, reason=data["reason"])
        return Response(self.representation(self.fresh(invoice)))

    @extend_schema(
        summary="Resolve an invoice's dispute",
        description="Clears the dispute (its history keeps it) and puts the resolution on the timeline.",
        request=ResolveDisputeInputSerializer,
        responses={200: InvoiceSerializer},
        examples=[
            OpenApiExample("A resolution", value={"resolution": "Replacement sent"}, request_only=True),
            OpenApiExample("The invoice", value=INVOICE_EXAMPLE, response_only=True),
        ],
    )
    @action(detail=True, methods=["post"], url_path="resolve-dispute")
    def resolve_dispute(self, request, *args, **kwargs):
        invoice = self.get_object()
        data = self.parsed(ResolveDisputeInputSerializer).validated_data
        invoice = collections.resolve_dispute(actor=request.user, invoice=invoice, resolution=data["resolution"])
        return Response(self.representation(self.fresh(invoice)))


# --- Payments ------------------------------------------------------------------------------------

ALLOCATION_EXAMPLE = {
    "id": 90,
    "payment": 311,
    "invoice": 812,
    "invoice_number": "INV-000812",
    "amount": "120.00",
    "allocated_on": "2026-03-20",
    "created_at": "2026-03-20T14:02:00Z",
}
REFUND_EXAMPLE = {
    "id": 12,
    "customer": 42,
    "payment": 311,
    "credit_note": None,
    "amount": "30.00",
    "currency": "EUR",
    "refunded_on": "2026-03-21",
    "method": "bank_transfer",
    "reference": "RF-77",
    "created_at": "2026-03-21T09:00:00Z",
}
PAYMENT_EXAMPLE = {
    "id": 311,
    "customer": 42,
    "received_on": "2026-03-20",
    "amount": "150.00",
    "currency": "EUR",
    "method": "bank_transfer",
    "reference": "SEPA 2026-0320-1",
    "status": "cleared",
    "exchange_rate": "1.10000000",
    "unapplied_amount": "0.00",
    "failed_on": None,
    "created_at": "2026-03-20T14:02:00Z",
    "allocations": [ALLOCATION_EXAMPLE],
    "refunds": [REFUND_EXAMPLE],
}
REFUND_REQUEST = {"amount": "30.00", "refunded_on": "2026-03-21", "method": "bank_transfer", "reference": "RF-77"}


@extend_schema_view(
    list=extend_schema(
        summary="List payments",
        responses=_listed(PaymentSerializer),
        description="Payments received from the customers you may see, with their allocations and refunds.",
        examples=[
            OpenApiExample(
                "A page of payments",
                value=PAYMENT_EXAMPLE,
                response_only=True,
            )
        ],
    ),
    retrieve=extend_schema(
        summary="Read a payment",
        description="With what it was applied to and what of it was refunded.",
        examples=[OpenApiExample("A payment", value=PAYMENT_EXAMPLE, response_only=True)],
    ),
)
@extend_schema(tags=["payments"])
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter
    search_fields = ["reference", "customer__display_name", "customer__account_number"]
    ordering_fields = ["id", "received_on", "amount", "created_at"]
    ordering = ["-id"]
    lookup_url_kwarg = "payment_pk"
    etag_actions = ("retrieve", "create", "auto_allocate")
    required_permissions = {
        "list": ["billing.view_payment"],
        "retrieve": ["billing.view_payment"],
        "create": ["billing.add_payment"],
        **_detail_actions_need("billing.view_payment", ("allocations", "auto_allocate", "refund")),
    }
    object_permissions = {
        "allocations": ["billing.add_paymentallocation"],
        "auto_allocate": ["billing.add_paymentallocation"],
        "refund": ["billing.add_refund"],
    }

    def base_queryset(self):
        return Payment.objects.prefetch_related(
            Prefetch(
                "allocations",
                queryset=PaymentAllocation.objects.select_related("invoice").order_by("allocated_on", "id"),
            ),
            Prefetch("refunds", queryset=_refunds()),
        )

    @extend_schema(
        summary="Record a payment",
        description="Money received. It is posted at once and, unless `auto_apply` is false, applied to the "
        "customer's oldest open invoices (disputed ones skipped); what is left is the customer's credit. "
        "Send an `Idempotency-Key`: a retry then records nothing twice.",
        request=RecordPaymentInputSerializer,
        responses={201: PaymentSerializer},
        examples=[
            OpenApiExample(
                "A bank transfer",
                value={
                    "customer": 42,
                    "amount": "150.00",
                    "received_on": "2026-03-20",
                    "method": "bank_transfer",
                    "reference": "SEPA 2026-0320-1",
                },
                request_only=True,
            ),
            OpenApiExample("The payment", value=PAYMENT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def create(self, request, *args, **kwargs):
        data = self.parsed(RecordPaymentInputSerializer).validated_data
        payment = services.record_payment(
            actor=request.user,
            customer=data["customer"],
            amount=data["amount"],
            currency=data.get("currency"),
            received_on=data["received_on"],
            method=data["method"],
            reference=data["reference"],
            auto_apply=data["auto_apply"],
        )
        payment = self.fresh(payment)
        return self.created(payment)

    @extend_schema(
        summary="Apply a payment to an invoice",
        description="Part or all of the payment's unapplied credit, to an open invoice of the same customer "
        "and currency. Without `amount`, as much as both allow.",
        request=AllocateInputSerializer,
        responses={201: PaymentAllocationSerializer},
        examples=[
            OpenApiExample("Apply 120.00", value={"invoice": 812, "amount": "120.00"}, request_only=True),
            OpenApiExample("The allocation", value=ALLOCATION_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    @action(detail=True, methods=["post"])
    def allocations(self, request, *args, **kwargs):
        payment = self.get_object()
        data = self.parsed(AllocateInputSerializer, credit=payment).validated_data
        allocation = services.allocate_payment(
            actor=request.user, payment=payment, invoice=data["invoice"], amount=data["amount"]
        )
        return Response(PaymentAllocationSerializer(allocation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Apply a payment to the oldest open invoices",
        description="Its unapplied credit, oldest due date first, until it is used up; disputed invoices are "
        "left for a person to decide. Applying nothing is not an error.",
        request=None,
        responses={200: PaymentSerializer},
        examples=[OpenApiExample("The payment", value=PAYMENT_EXAMPLE, response_only=True)],
    )
    @action(detail=True, methods=["post"], url_path="auto-allocate")
    def auto_allocate(self, request, *args, **kwargs):
        payment = self.get_object()
        # It takes no body, but one sent must be JSON as for every write: a form is refused (415)
        # before anything is applied.
        request.data  # noqa: B018
        services.auto_allocate(actor=request.user, payment=payment)
        return Response(self.representation(self.fresh(payment)))

    @extend_schema(
        summary="Refund a payment's unapplied credit",
        description="Pays back part or all of what is left of the payment. Send an `Idempotency-Key`.",
        request=RefundInputSerializer,
        responses={201: RefundSerializer},
        examples=[
            OpenApiExample("Refund 30.00", value=REFUND_REQUEST, request_only=True),
            OpenApiExample("The refund", value=REFUND_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    @action(detail=True, methods=["post"])
    def refund(self, request, *args, **kwargs):
        payment = self.get_object()
        return _refund(self, payment=payment)


def _refunds():
    return Refund.objects.order_by("refunded_on", "id")


def _refund(viewset: BillingViewSet, **credit) -> Response:
    data = viewset.parsed(RefundInputSerializer).validated_data
    refund = services.refund_credit(
        actor=viewset.request.user,
        amount=data["amount"],
        refunded_on=data["refunded_on"],
        method=data["method"],
        reference=data["reference"],
        **credit,
    )
    return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


# --- Credit notes --------------------------------------------------------------------------------

CREDIT_NOTE_EXAMPLE = {
    "id": 55,
    "number": "CN-000055",
    "customer": 42,
    "invoice": 812,
    "issue_date": "2026-03-10",
    "currency": "EUR",
    "exchange_rate": "1.10000000",
    "reason": "Two widgets returned",
    "net_total": "20.00",
    "tax_total": "4.00",
    "gross_total": "24.00",
    "unapplied_amount": "0.00",
    "created_at": "2026-03-10T11:00:00Z",
    "lines": [
        {
            "position": 1,
            "product": None,
            "description": "Returned widgets",
            "quantity": "2.000",
            "unit_price": "10.0000",
            "discount_type": "none",
            "discount_value": "0.0000",
            "tax_rate": 3,
            "subtotal": "20.00",
            "discount": "0.00",
            "net": "20.00",
            "tax": "4.00",
            "gross": "24.00",
        }
    ],
    "allocations": [
        {
            "id": 31,
            "credit_note": 55,
            "invoice": 812,
            "invoice_number": "INV-000812",
            "amount": "24.00",
            "allocated_on": "2026-03-10",
            "created_at": "2026-03-10T11:00:00Z",
        }
    ],
    "refunds": [],
}


@extend_schema_view(
    list=extend_schema(
        summary="List credit notes",
        responses=_listed(CreditNoteSerializer),
        description="Credit notes of the customers you may see, with their lines, allocations and refunds.",
        examples=[
            OpenApiExample(
                "A page of credit notes",
                value=CREDIT_NOTE_EXAMPLE,
                response_only=True,
            )
        ],
    ),
    retrieve=extend_schema(
        summary="Read a credit note",
        description="With its lines, what it was applied to and what of it was refunded.",
        examples=[OpenApiExample("A credit note", value=CREDIT_NOTE_EXAMPLE, response_only=True)],
    ),
)
@extend_schema(tags=["credit notes"])
class CreditNoteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    serializer_class = CreditNoteSerializer
    filterset_class = CreditNoteFilter
    search_fields = ["number", "reason", "customer__display_name", "customer__account_number"]
    ordering_fields = ["id", "issue_date", "gross_total", "created_at"]
    ordering = ["-id"]
    lookup_url_kwarg = "credit_note_pk"
    etag_actions = ("retrieve", "create")
    required_permissions = {
        "list": ["billing.view_creditnote"],
        "retrieve": ["billing.view_creditnote"],
        "create": ["billing.add_creditnote"],
        **_detail_actions_need("billing.view_creditnote", ("allocations", "refund")),
    }
    object_permissions = {
        "allocations": ["billing.add_creditnoteallocation"],
        "refund": ["billing.add_refund"],
    }

    def base_queryset(self):
        return CreditNote.objects.prefetch_related(
            "lines",
            Prefetch(
                "allocations",
                queryset=CreditNoteAllocation.objects.select_related("invoice").order_by("allocated_on", "id"),
            ),
            Prefetch("refunds", queryset=_refunds()),
        )

    @extend_schema(
        summary="Issue a credit note",
        description="Credits the customer at once (credit notes have no draft). Against one of the customer's "
        "issued invoices it is booked at the invoice's rate and applied to what is open on it; otherwise "
        "it is credit on the customer's account. Send an `Idempotency-Key`.",
        request=CreditNoteInputSerializer,
        responses={201: CreditNoteSerializer},
        examples=[
            OpenApiExample(
                "Against an invoice",
                value={
                    "customer": 42,
                    "invoice": 812,
                    "reason": "Two widgets returned",
                    "lines": [
                        {"description": "Returned widgets", "quantity": "2", "unit_price": "10.00", "tax_rate": 3}
                    ],
                },
                request_only=True,
            ),
            OpenApiExample("The credit note", value=CREDIT_NOTE_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def create(self, request, *args, **kwargs):
        serializer = self.parsed(CreditNoteInputSerializer)
        credit_note = services.issue_credit_note(actor=request.user, **serializer.service_arguments())
        credit_note = self.fresh(credit_note)
        return self.created(credit_note)

    @extend_schema(
        summary="Apply a credit note to an invoice",
        description="Part or all of its unapplied credit, to an open invoice of the same customer and "
        "currency. Without `amount`, as much as both allow.",
        request=AllocateInputSerializer,
        responses={201: CreditNoteAllocationSerializer},
        examples=[
            OpenApiExample("Apply 24.00", value={"invoice": 812, "amount": "24.00"}, request_only=True),
            OpenApiExample(
                "The allocation",
                value=CREDIT_NOTE_EXAMPLE["allocations"][0],
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def allocations(self, request, *args, **kwargs):
        credit_note = self.get_object()
        data = self.parsed(AllocateInputSerializer, credit=credit_note).validated_data
        allocation = services.allocate_credit_note(
            actor=request.user, credit_note=credit_note, invoice=data["invoice"], amount=data["amount"]
        )
        return Response(CreditNoteAllocationSerializer(allocation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Refund a credit note's unapplied credit",
        description="Pays back part or all of what is left of the credit note. Send an `Idempotency-Key`.",
        request=RefundInputSerializer,
        responses={201: RefundSerializer},
        examples=[
            OpenApiExample("Refund 10.00", value={**REFUND_REQUEST, "amount": "10.00"}, request_only=True),
            OpenApiExample(
                "The refund",
                value={**REFUND_EXAMPLE, "payment": None, "credit_note": 55, "amount": "10.00"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def refund(self, request, *args, **kwargs):
        credit_note = self.get_object()
        return _refund(self, credit_note=credit_note)


# --- Promises to pay -----------------------------------------------------------------------------

PROMISE_EXAMPLE = {
    "id": 77,
    "customer": 42,
    "invoices": [812],
    "amount": "120.00",
    "currency": "EUR",
    "made_on": "2026-04-03",
    "promised_on": "2026-04-10",
    "status": "open",
    "paid_amount": "0.00",
    "settled_on": None,
    "note": "Will pay on Friday's run",
    "created_at": "2026-04-03T10:30:00Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="List promises to pay",
        responses=_listed(PromiseToPaySerializer),
        description="Promises of the customers you may see. A daily job settles each the day after its date: "
        "kept or broken.",
        examples=[
            OpenApiExample(
                "A page of promises",
                value=PROMISE_EXAMPLE,
                response_only=True,
            )
        ],
    ),
    retrieve=extend_schema(
        summary="Read a promise to pay",
        description="With the invoices it covers.",
        examples=[OpenApiExample("An open promise", value=PROMISE_EXAMPLE, response_only=True)],
    ),
)
@extend_schema(tags=["promises to pay"])
class PromiseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BillingViewSet):
    serializer_class = PromiseToPaySerializer
    filterset_class = PromiseFilter
    search_fields = ["note", "customer__display_name", "customer__account_number"]
    ordering_fields = ["id", "promised_on", "made_on", "amount"]
    ordering = ["-id"]
    lookup_url_kwarg = "promise_pk"
    etag_actions = ("retrieve", "create", "cancel")
    required_permissions = {
        "list": ["billing.view_promisetopay"],
        "retrieve": ["billing.view_promisetopay"],
        # The collections desk records promises (billing.collections_views.record_promise).
        "create": [DESK, "billing.add_promisetopay"],
        "cancel": ["billing.view_promisetopay"],
    }
    object_permissions = {"cancel": [DESK, "billing.change_promisetopay"]}

    def base_queryset(self):
        return PromiseToPay.objects.prefetch_related(
            Prefetch("promised_invoices", queryset=PromiseInvoice.objects.only("id", "promise_id", "invoice_id"))
        )

    @extend_schema(
        summary="Record a promise to pay",
        description="The customer will pay `amount` (everything open on them when left out) on open invoices "
        "of theirs, in one currency, by `promised_on` (at most 180 days ahead). An invoice is under at most "
        "one open promise: the same promise sent again returns the first one; another is refused (cancel "
        "the first). The collections desk (Accounts Receivable, Finance Admins).",
        request=PromiseInputSerializer,
        responses={201: PromiseToPaySerializer},
        examples=[
            OpenApiExample(
                "By next Friday",
                value={
                    "customer": 42,
                    "invoices": [812],
                    "promised_on": "2026-04-10",
                    "note": "Will pay on Friday's run",
                },
                request_only=True,
            ),
            OpenApiExample("The promise", value=PROMISE_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def create(self, request, *args, **kwargs):
        serializer = self.parsed(PromiseInputSerializer)
        promise = collections.record_promise(actor=request.user, **serializer.service_arguments())
        promise = self.fresh(promise)
        return self.created(promise)

    @extend_schema(
        summary="Cancel an open promise to pay",
        description="Withdraws it (recorded by mistake, or replaced by a new agreement): neither kept nor "
        "broken; the reason goes on the customer's timeline. Promises are kept or broken only by the daily "
        "settlement, never by hand.",
        request=CancelPromiseInputSerializer,
        responses={200: PromiseToPaySerializer},
        examples=[
            OpenApiExample("A reason", value={"reason": "Replaced by a payment plan"}, request_only=True),
            OpenApiExample(
                "The cancelled promise",
                value={**PROMISE_EXAMPLE, "status": "cancelled", "settled_on": "2026-04-05"},
                response_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        promise = self.get_object()
        data = self.parsed(CancelPromiseInputSerializer).validated_data
        promise = collections.cancel_promise(actor=request.user, promise=promise, reason=data["reason"])
        return Response(self.representation(self.fresh(promise)))


# --- The aging -----------------------------------------------------------------------------------


class MaySeeAging(BasePermission):
    """The aging page's rule (billing.aging.may_see_aging): those who work across all customers."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and aging.may_see_aging(request.user))


EARLIEST_AGING_DAY = date(1900, 1, 1)


class AgingQuerySerializer(serializers.Serializer):
    as_of = serializers.DateField(required=False, help_text="The day (today when left out); not in the future.")
    customer = serializers.IntegerField(required=False, help_text="One customer's row; out of reach answers 404.")
    owner = serializers.CharField(
        required=False, help_text=f"An owner rep's user id, or '{aging.NO_OWNER}' for customers nobody owns."
    )
    currency = serializers.CharField(required=False, max_length=3, help_text="The customers' invoicing currency.")
    sort = serializers.ChoiceField(choices=list(aging.SORTS.items()), default=aging.DEFAULT_SORT)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)
    cursor = serializers.CharField(required=False, help_text="From `next` or `previous`.")

    def validate_as_of(self, day):
        if day < EARLIEST_AGING_DAY:
            # The buckets reach 90 days back from the day; the calendar does not reach that far.
            raise serializers.ValidationError(f"Pick a day from {EARLIEST_AGING_DAY:%Y-%m-%d} on.")
        if day > _today():
            raise serializers.ValidationError("Pick today or an earlier day: the aging shows what was owed on a day.")
        return day

    def validate_owner(self, owner):
        if owner and owner != aging.NO_OWNER and not owner.isdigit():
            raise serializers.ValidationError(f"A user id, or '{aging.NO_OWNER}'.")
        return owner


AGING_ROW_EXAMPLE = {
    "customer": 42,
    "account_number": "C-000042",
    "name": "Northwind Traders",
    "owner": 7,
    "owner_name": "Dana Reyes",
    "customer_currency": "EUR",
    "buckets": {
        "current": "120.00",
        "days_1_30": "0.00",
        "days_31_60": "300.00",
        "days_61_90": "0.00",
        "over_90": "0.00",
    },
    "open_total": "420.00",
    "unapplied": "20.00",
    "total": "400.00",
}


class AgingSchema(AutoSchema):
    # The aging answers one report object (with its own paging), not a list of resources.
    def _is_list_view(self, serializer=None) -> bool:
        return False


@extend_schema(tags=["aging"])
class AgingViewSet(ApiViewMixin, viewsets.ViewSet):
    """The aging report as of a day: a row per customer that owed something or held credit, in the
    base currency, from the same selectors as the aging page (billing.aging)."""

    permission_classes = [MaySeeAging]
    pagination_class = None
    schema = AgingSchema()
    default_page_size = 100
    CURSOR_PARAM = "cursor"

    @extend_schema(
        summary="Read the aging as of a day",
        description="Receivables by days past due on `as_of`, as they stood that day (rebuilt from dated "
        "events), one row per customer in the base currency (`currency`), sorted by `sort`; `totals` cover "
        "every row, the page `page_size` rows (100 by default). Accounts Receivable and Finance Admins, as "
        "the aging page.",
        parameters=[AgingQuerySerializer],
        responses={
            200: inline_serializer(
                "AgingPage",
                {
                    "as_of": serializers.DateField(),
                    "currency": serializers.CharField(help_text="The base currency every amount is in."),
                    "totals": AgingTotalsSerializer(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": AgingRowSerializer(many=True),
                },
            ),
            **_customer_not_found(),
            (422, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                response={"$ref": "#/components/schemas/Problem"},
                description="A day in the future (or before 1900).",
                examples=[
                    OpenApiExample(
                        "A future day",
                        value={
                            "type": problem_type("validation"),
                            "title": "The request is not valid.",
                            "status": 422,
                            "detail": "as_of: Pick today or an earlier day: the aging shows what was owed on a day.",
                            "instance": "/api/v1/aging/?as_of=2999-01-01",
                            "errors": [
                                {
                                    "field": "as_of",
                                    "pointer": "/as_of",
                                    "detail": "Pick today or an earlier day: the aging shows what was owed on a day.",
                                    "code": "invalid",
                                }
                            ],
                        },
                        response_only=True,
                        status_codes=["422"],
                    )
                ],
            ),
        },
        examples=[
            OpenApiExample(
                "One page",
                value={
                    "as_of": "2026-03-31",
                    "currency": "USD",
                    "totals": {
                        "customers": 1,
                        "buckets": AGING_ROW_EXAMPLE["buckets"],
                        "open_total": "420.00",
                        "unapplied": "20.00",
                        "total": "400.00",
                    },
                    "next": None,
                    "previous": None,
                    "results": [AGING_ROW_EXAMPLE],
                },
                response_only=True,
            )
        ],
    )
    def list(self, request):
        query = AgingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        filters = aging.AgingFilters(
            as_of=params.get("as_of") or _today(),
            owner=params.get("owner", ""),
            currency=(params.get("currency") or "").upper(),
            sort=params["sort"],
        )
        customers = aging.customers_in_report(user=request.user, filters=filters)
        if "customer" in params:
            if not access.visible_customers(request.user).filter(pk=params["customer"]).exists():
                raise NotFound("No customer matches the given query.")
            customers = customers.filter(pk=params["customer"])
        statement = aging_statement(as_of=filters.as_of, customers=customers)
        summary = aging.aging_summary(statement=statement)
        rows = aging.RankedRows(
            count=summary.totals.customers, customers=customers, filters=filters, statement=statement
        )
        page_size = params.get("page_size") or self.default_page_size
        offset = self._offset(params.get("cursor"))
        page = rows[offset : offset + page_size]
        return Response(
            {
                "as_of": filters.as_of,
                "currency": base_currency(),
                "totals": AgingTotalsSerializer(_totals(summary.totals)).data,
                "next": self._link(offset + page_size) if offset + page_size < len(rows) else None,
                "previous": self._link(max(offset - page_size, 0)) if offset > 0 else None,
                "results": AgingRowSerializer([_row(row) for row in page], many=True).data,
            }
        )

    # The rows are sorted by amounts computed for the day, so a page is found by its position in
    # that order (as the aging page's own pages are); the cursor is opaque so that it may change.
    def _offset(self, cursor: str | None) -> int:
        if not cursor:
            return 0
        try:
            text = base64.urlsafe_b64decode(cursor.encode()).decode()
            name, _, value = text.partition("=")
            if name != "o" or not value.isdigit():
                raise ValueError(text)
            return int(value)
        except (ValueError, binascii.Error, UnicodeError):
            # As the lists' cursor pagination answers a cursor it did not give.
            raise NotFound("Invalid cursor") from None

    def _link(self, offset: int) -> str:
        url = self.request.build_absolute_uri()
        if offset == 0:
            return remove_query_param(url, self.CURSOR_PARAM)
        cursor = base64.urlsafe_b64encode(f"o={offset}".encode()).decode()
        return replace_query_param(url, self.CURSOR_PARAM, cursor)


def _buckets(amounts: dict) -> dict:
    return {bucket: amounts[bucket] for bucket in BUCKETS}


def _row(row: aging.CustomerAging) -> dict:
    return {
        "customer_id": row.customer_id,
        "account_number": row.account_number,
        "name": row.name,
        "owner_id": row.owner_id,
        "owner_name": row.owner_name,
        "currency": row.currency,
        "buckets": _buckets(row.buckets),
        "open_total": row.open_total,
        "unapplied": row.unapplied,
        "total": row.total,
    }


def _totals(totals: aging.AgingTotals) -> dict:
    return {
        "customers": totals.customers,
        "buckets": _buckets(totals.buckets),
        "open_total": totals.open_total,
        "unapplied": totals.unapplied,
        "total": totals.total,
    }


def register(router) -> None:
    """Called by api/urls.py: billing's resources under /api/v1/."""
    router.register("products", ProductViewSet, basename="product")
    router.register("invoices", InvoiceViewSet, basename="invoice")
    router.register("payments", PaymentViewSet, basename="payment")
    router.register("credit-notes", CreditNoteViewSet, basename="credit-note")
    router.register("promises", PromiseViewSet, basename="promise")
    router.register("aging", AgingViewSet, basename="aging")
