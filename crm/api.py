"""Customers, contacts and activities in the REST API (/api/v1/).

Thin, like the pages: parse the request with an input serializer, call crm.services with the
acting user, answer with the resource. Who sees what is crm.access's, through the base viewset's
queryset (api.viewsets.ApiViewSet).
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from api.pagination import CursorPagination
from api.viewsets import ApiViewSet
from crm import access, services
from crm.models import Activity, Contact, Customer
from crm.serializers import (
    ActivityCreateSerializer,
    ActivitySerializer,
    ContactCreateSerializer,
    ContactSerializer,
    ContactUpdateSerializer,
    CustomerCreateSerializer,
    CustomerSerializer,
    CustomerUpdateSerializer,
)

CUSTOMER_EXAMPLE = {
    "id": 42,
    "account_number": "C-000042",
    "billing_city": "Springfield",
    "billing_country": "US",
    "billing_line1": "1 Harbour Street",
    "billing_line2": "",
    "billing_postal_code": "12345",
    "billing_region": "",
    "credit_limit": "5000.00",
    "currency": "USD",
    "display_name": "Northwind Traders",
    "external_id": "",
    "external_system": "",
    "legal_name": "Northwind Traders Ltd",
    "payment_terms_days": 30,
    "status": "active",
    "tax_id": "",
    "owner": 5,
    "owner_username": "rep01",
    "collector": None,
    "ar_open": "1250.00",
    "ar_unapplied": "0.00",
    "ar_balance": "1250.00",
    "last_activity_at": "2026-03-01T14:05:00Z",
    "activity_count": 3,
    "created_at": "2025-11-02T09:00:00Z",
    "updated_at": "2026-02-27T16:40:00Z",
}
CONTACT_EXAMPLE = {
    "id": 9,
    "customer": 42,
    "name": "Ada Jones",
    "email": "ap@northwind.example",
    "phone": "+1 555 0100",
    "role": "Accounts payable",
    "is_primary": True,
    "created_at": "2026-01-05T10:00:00Z",
}
ACTIVITY_EXAMPLE = {
    "id": 31,
    "customer": 42,
    "kind": "call",
    "occurred_at": "2026-03-01T14:05:00Z",
    "text": "Asked about invoice INV-000120; they pay on Friday.",
    "outcome": "promised",
    "subject": "INV-000120",
    "actor": 5,
    "created_at": "2026-03-01T14:06:00Z",
}


class CustomerFilter(django_filters.FilterSet):
    owner = django_filters.NumberFilter(field_name="owner_id", help_text="The owner rep's user id.")
    collector = django_filters.NumberFilter(field_name="collector_id")

    class Meta:
        model = Customer
        fields = ["status", "currency", "owner", "collector"]


# A list's example is ONE item: drf-spectacular puts it in a page's `results` itself.
@extend_schema_view(
    list=extend_schema(
        summary="List customers you may see",
        description="Reps see the customers they own or were granted; AR and Finance Admins see all. "
        "`search` matches the name, legal name, account number and tax ID.",
        examples=[OpenApiExample("A page", value=CUSTOMER_EXAMPLE, response_only=True)],
    ),
    retrieve=extend_schema(
        summary="Read a customer",
        description="With receivables (`ar_open`, `ar_unapplied`, `ar_balance`) in the customer's currency. "
        "The ETag header is the version to send back in If-Match.",
        examples=[OpenApiExample("Customer", value=CUSTOMER_EXAMPLE, response_only=True)],
    ),
    create=extend_schema(
        summary="Create a customer",
        description="Finance Admins only. The owner rep is granted access to the customer.",
        request=CustomerCreateSerializer,
        responses={201: CustomerSerializer},
        examples=[
            OpenApiExample(
                "New customer",
                value={"display_name": "Northwind Traders", "currency": "USD", "payment_terms_days": 30, "owner": 5},
                request_only=True,
            ),
            OpenApiExample("Created", value=CUSTOMER_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
    update=extend_schema(
        summary="Replace a customer's details",
        description="Everyone who may change the customer (AR, Finance Admins, its owner rep). A different "
        "`owner` reassigns it, which only a Finance Admin may do.",
        request=CustomerUpdateSerializer,
        examples=[
            OpenApiExample(
                "Details",
                value={"display_name": "Northwind Traders", "currency": "USD", "payment_terms_days": 45},
                request_only=True,
            ),
            OpenApiExample("Updated", value=CUSTOMER_EXAMPLE, response_only=True),
        ],
    ),
    partial_update=extend_schema(
        summary="Change some of a customer's details",
        description="Only the fields sent change. Send If-Match with the ETag you read to refuse a lost update.",
        request=CustomerUpdateSerializer,
        examples=[
            OpenApiExample("On hold", value={"status": "on_hold"}, request_only=True),
            OpenApiExample("Updated", value=CUSTOMER_EXAMPLE, response_only=True),
        ],
    ),
    # Paged like every list (the action keeps the viewset's pagination class, so the schema shows
    # the page and its `cursor`/`page_size`; `_nested_page` does the paging).
    contacts=extend_schema(
        summary="List a customer's contacts",
        responses={200: ContactSerializer(many=True)},
        examples=[OpenApiExample("Contacts", value=CONTACT_EXAMPLE, response_only=True)],
        filters=False,
    ),
    activities=extend_schema(
        summary="List a customer's activities, newest first",
        responses={200: ActivitySerializer(many=True)},
        examples=[OpenApiExample("Timeline", value=ACTIVITY_EXAMPLE, response_only=True)],
        filters=False,
    ),
)
@extend_schema(tags=["customers"])
class CustomerViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, ApiViewSet
):
    queryset = Customer.objects.select_related("owner")
    serializer_class = CustomerSerializer
    customer_field = None
    lookup_value_regex = r"\d+"
    filterset_class = CustomerFilter
    search_fields = ["display_name", "legal_name", "=account_number", "=tax_id"]
    ordering_fields = ["display_name", "account_number", "ar_balance", "created_at", "updated_at"]
    ordering = ["display_name"]
    # Reading opens to the roles that open the customer pages; changing is per customer
    # (check_object_access), since a rep may change the customers granted to them.
    required_permissions = {
        "list": ["crm.view_customer"],
        "retrieve": ["crm.view_customer"],
        "create": ["crm.add_customer"],
        "update": ["crm.view_customer"],
        "partial_update": ["crm.view_customer"],
        "contacts": ["crm.view_customer", "crm.view_contact"],
        "activities": ["crm.view_customer", "crm.view_activity"],
    }

    def check_object_access(self, request, customer) -> bool:
        return access.can_change_customer(request.user, customer)

    def create(self, request):
        data = dict(self.parse_input(CustomerCreateSerializer))
        customer = services.create_customer(actor=request.user, **data)
        return self.created(self.get_queryset().get(pk=customer.pk))

    def update(self, request, pk=None, partial=False):
        customer = self.get_object_for_update()
        data = dict(self.parse_input(CustomerUpdateSerializer, partial=partial, instance=customer))
        if "owner" in data:
            new_owner = data.pop("owner")
            if new_owner != customer.owner:
                services.reassign_customer(actor=request.user, customer=customer, new_owner=new_owner)
        services.update_customer(actor=request.user, customer=customer, **data)
        return Response(self.representation(self.get_queryset().get(pk=customer.pk)))

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def _nested_page(self, queryset, serializer_class, ordering: str):
        paginator = CursorPagination()
        paginator.ordering = ordering
        page = paginator.paginate_queryset(queryset, self.request, view=None)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)

    @action(detail=True, methods=["get"], filter_backends=[])
    def contacts(self, request, pk=None):
        customer = self.get_object()
        return self._nested_page(Contact.objects.filter(customer=customer), ContactSerializer, "-id")

    @action(detail=True, methods=["get"], filter_backends=[])
    def activities(self, request, pk=None):
        customer = self.get_object()
        return self._nested_page(Activity.objects.filter(customer=customer), ActivitySerializer, "-occurred_at")


class ContactFilter(django_filters.FilterSet):
    customer = django_filters.NumberFilter(field_name="customer_id", help_text="The customer's id.")

    class Meta:
        model = Contact
        fields = ["customer", "is_primary"]


@extend_schema_view(
    list=extend_schema(
        summary="List contacts",
        description="Contacts of the customers you may see; filter by `customer`.",
        examples=[OpenApiExample("A page", value=CONTACT_EXAMPLE, response_only=True)],
    ),
    retrieve=extend_schema(
        summary="Read a contact", examples=[OpenApiExample("Contact", value=CONTACT_EXAMPLE, response_only=True)]
    ),
    create=extend_schema(
        summary="Add a contact to a customer",
        description="Making it primary demotes the customer's previous primary contact.",
        request=ContactCreateSerializer,
        responses={201: ContactSerializer},
        examples=[
            OpenApiExample(
                "New contact",
                value={"customer": 42, "name": "Ada Jones", "email": "ap@northwind.example", "is_primary": True},
                request_only=True,
            ),
            OpenApiExample("Created", value=CONTACT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
    update=extend_schema(
        summary="Replace a contact's details",
        request=ContactUpdateSerializer,
        examples=[
            OpenApiExample(
                "Details",
                value={
                    "name": "Ada Jones",
                    "email": "ap@northwind.example",
                    "phone": "",
                    "role": "AP",
                    "is_primary": True,
                },
                request_only=True,
            ),
            OpenApiExample("Updated", value=CONTACT_EXAMPLE, response_only=True),
        ],
    ),
    partial_update=extend_schema(
        summary="Change some of a contact's details",
        request=ContactUpdateSerializer,
        examples=[
            OpenApiExample("New phone", value={"phone": "+1 555 0199"}, request_only=True),
            OpenApiExample("Updated", value=CONTACT_EXAMPLE, response_only=True),
        ],
    ),
    destroy=extend_schema(summary="Delete a contact", responses={204: None}),
)
@extend_schema(tags=["customers"])
class ContactViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ApiViewSet,
):
    queryset = Contact.objects.all()
    serializer_class = ContactSerializer
    lookup_url_kwarg = "contact_pk"
    lookup_value_regex = r"\d+"
    filterset_class = ContactFilter
    search_fields = ["name", "email"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def create(self, request):
        data = self.parse_input(ContactCreateSerializer)
        contact = services.add_contact(actor=request.user, **data)
        return self.created(contact)

    def update(self, request, contact_pk=None, partial=False):
        contact = self.get_object_for_update()
        data = self.parse_input(ContactUpdateSerializer, partial=partial)
        contact = services.update_contact(actor=request.user, contact=contact, **data)
        return Response(self.representation(contact))

    def partial_update(self, request, contact_pk=None):
        return self.update(request, contact_pk=contact_pk, partial=True)

    def destroy(self, request, contact_pk=None):
        services.delete_contact(actor=request.user, contact=self.get_object_for_update())
        return Response(status=204)


class ActivityFilter(django_filters.FilterSet):
    customer = django_filters.NumberFilter(field_name="customer_id", help_text="The customer's id.")
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Activity
        fields = ["customer", "kind", "outcome", "occurred_after", "occurred_before"]


@extend_schema_view(
    list=extend_schema(
        summary="List activities",
        description="Calls, e-mails, meetings, notes, letters and promises on the customers you may see.",
        examples=[OpenApiExample("A page", value=ACTIVITY_EXAMPLE, response_only=True)],
    ),
    retrieve=extend_schema(
        summary="Read an activity", examples=[OpenApiExample("Activity", value=ACTIVITY_EXAMPLE, response_only=True)]
    ),
    create=extend_schema(
        summary="Log an activity on a customer",
        description="A call may say how it went (`outcome`). The customer's last-activity time moves with it.",
        request=ActivityCreateSerializer,
        responses={201: ActivitySerializer},
        examples=[
            OpenApiExample(
                "A call",
                value={"customer": 42, "kind": "call", "text": "They pay on Friday.", "outcome": "promised"},
                request_only=True,
            ),
            OpenApiExample("Logged", value=ACTIVITY_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    ),
)
@extend_schema(tags=["customers"])
class ActivityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet):
    """Activities are a record of what happened: logged, never rewritten."""

    queryset = Activity.objects.all()
    serializer_class = ActivitySerializer
    lookup_url_kwarg = "activity_pk"
    lookup_value_regex = r"\d+"
    filterset_class = ActivityFilter
    search_fields = ["text", "subject"]
    ordering_fields = ["occurred_at", "created_at"]
    ordering = ["-occurred_at"]

    def create(self, request):
        data = self.parse_input(ActivityCreateSerializer)
        activity = services.log_activity(actor=request.user, **data)
        return self.created(activity)


def register(router) -> None:
    router.register("customers", CustomerViewSet, basename="customer")
    router.register("contacts", ContactViewSet, basename="contact")
    router.register("activities", ActivityViewSet, basename="activity")
