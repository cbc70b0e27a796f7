"""The admin console for Finance Admins: history (simple-history) and per-customer grants (guardian).

Saving goes through crm.services, so the admin keeps the same rules as the pages: a changed
owner moves the owner's access, and every change is recorded against the admin who made it.
"""

from django.contrib import admin
from guardian.admin import GuardedModelAdminMixin
from simple_history.admin import SimpleHistoryAdmin

from crm import services
from crm.models import Activity, Contact, Customer


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ["name", "email", "phone", "role", "is_primary"]


@admin.register(Customer)
class CustomerAdmin(GuardedModelAdminMixin, SimpleHistoryAdmin):
    list_display = [
        "account_number",
        "display_name",
        "owner",
        "status",
        "currency",
        "payment_terms_days",
        "credit_limit",
    ]
    list_filter = ["status", "currency", "owner"]
    search_fields = ["account_number", "display_name", "legal_name", "tax_id"]
    list_select_related = ["owner"]
    readonly_fields = ["last_activity_at", "activity_count", "created_at", "updated_at"]
    autocomplete_fields = ["owner"]
    inlines = [ContactInline]
    fieldsets = [
        (None, {"fields": ["account_number", "display_name", "legal_name", "tax_id", "status", "owner"]}),
        (
            "Billing address",
            {
                "fields": [
                    "billing_line1",
                    "billing_line2",
                    "billing_city",
                    "billing_region",
                    "billing_postal_code",
                    "billing_country",
                ]
            },
        ),
        ("Terms", {"fields": ["currency", "payment_terms_days", "credit_limit"]}),
        ("Accounting package", {"fields": ["external_system", "external_id"], "classes": ["collapse"]}),
        ("Activity", {"fields": ["last_activity_at", "activity_count", "created_at", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name] for name in services.CUSTOMER_EDITABLE_FIELDS if name in form.cleaned_data
        }
        owner = form.cleaned_data.get("owner")
        if not change:
            created = services.create_customer(
                actor=request.user,
                account_number=form.cleaned_data["account_number"],
                owner=owner,
                **fields,
            )
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        services.update_customer(actor=request.user, customer=obj, **fields)
        if "owner" in form.changed_data:
            services.reassign_customer(actor=request.user, customer=obj, new_owner=owner)
        obj.refresh_from_db()


@admin.register(Contact)
class ContactAdmin(SimpleHistoryAdmin):
    list_display = ["name", "customer", "email", "phone", "role", "is_primary"]
    search_fields = ["name", "email", "customer__display_name"]
    list_select_related = ["customer"]
    autocomplete_fields = ["customer"]


@admin.register(Activity)
class ActivityAdmin(SimpleHistoryAdmin):
    list_display = ["occurred_at", "kind", "customer", "actor"]
    list_filter = ["kind"]
    search_fields = ["text", "customer__display_name"]
    list_select_related = ["customer", "actor"]
    autocomplete_fields = ["customer", "actor"]
    date_hierarchy = "occurred_at"
