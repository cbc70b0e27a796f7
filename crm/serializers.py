"""How customers, contacts and activities read and are written in the REST API (crm/api.py).

Input serializers only validate: the viewsets hand their `validated_data` to crm.services.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from crm import access
from crm.models import Activity, Contact, Customer
from crm.services import CUSTOMER_EDITABLE_FIELDS

CUSTOMER_EDITABLE = sorted(CUSTOMER_EDITABLE_FIELDS)


class CustomerSerializer(serializers.ModelSerializer):
    owner_username = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Customer
        fields = [
            "id",
            "account_number",
            *CUSTOMER_EDITABLE,
            "owner",
            "owner_username",
            "collector",
            "ar_open",
            "ar_unapplied",
            "ar_balance",
            "last_activity_at",
            "activity_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CustomerCreateSerializer(serializers.ModelSerializer):
    """A new customer. `account_number` is generated (C-000123) when left out."""

    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(is_active=True), required=False, allow_null=True
    )

    class Meta:
        model = Customer
        fields = ["account_number", *CUSTOMER_EDITABLE, "owner"]
        extra_kwargs = {"account_number": {"required": False}}


class CustomerUpdateSerializer(serializers.ModelSerializer):
    """A customer's details; a changed `owner` reassigns the customer (Finance Admins only)."""

    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(is_active=True), required=False, allow_null=True
    )

    class Meta:
        model = Customer
        fields = [*CUSTOMER_EDITABLE, "owner"]


@extend_schema_field(OpenApiTypes.INT)
class VisibleCustomerField(serializers.PrimaryKeyRelatedField):
    """A customer the requesting user may see: any other id is "does not exist", whether or not
    it does, so the answer leaks nothing."""

    def get_queryset(self):
        return access.visible_customers(self.context["request"].user)


@extend_schema_field(
    {"oneOf": [{"type": "string", "format": "email"}, {"type": "string", "maxLength": 0}], "description": "Or empty."}
)
class OptionalEmailField(serializers.EmailField):
    """An e-mail address or "" (a contact may have none): the schema's `format: email` alone
    would call "" invalid."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)


class ContactSerializer(serializers.ModelSerializer):
    email = OptionalEmailField(read_only=True)

    class Meta:
        model = Contact
        fields = ["id", "customer", "name", "email", "phone", "role", "is_primary", "created_at"]
        read_only_fields = fields


class ContactCreateSerializer(serializers.Serializer):
    customer = VisibleCustomerField()
    name = serializers.CharField(max_length=200)
    email = OptionalEmailField(required=False, default="")
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    role = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    is_primary = serializers.BooleanField(required=False, default=False)


class ContactUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = OptionalEmailField()
    phone = serializers.CharField(max_length=40, allow_blank=True)
    role = serializers.CharField(max_length=100, allow_blank=True)
    is_primary = serializers.BooleanField()


class ActivitySerializer(serializers.ModelSerializer):
    # Only calls have an outcome; every other activity reads "" (declared, so the schema says so).
    outcome = serializers.ChoiceField(choices=Activity.Outcome.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Activity
        fields = ["id", "customer", "kind", "occurred_at", "text", "outcome", "subject", "actor", "created_at"]
        read_only_fields = fields


class ActivityCreateSerializer(serializers.Serializer):
    """A call, e-mail, meeting or note; letters and promises are logged by Concord itself."""

    customer = VisibleCustomerField()
    kind = serializers.ChoiceField(choices=[(kind.value, kind.label) for kind in Activity.LOGGED_KINDS])
    text = serializers.CharField()
    occurred_at = serializers.DateTimeField(required=False, help_text="When it happened; now when left out.")
    outcome = serializers.ChoiceField(
        choices=Activity.Outcome.choices, required=False, allow_blank=True, help_text="Calls only."
    )
    subject = serializers.CharField(max_length=200, required=False, allow_blank=True)
