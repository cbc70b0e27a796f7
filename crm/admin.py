"""The admin console for Finance Admins: history (simple-history, read-only: no revert) and
per-customer grants (guardian).

Saving goes through crm.services, so the admin keeps the same rules as the pages: a changed
owner moves the owner's access, and every change is recorded against the admin who made it.
"""

from django import forms
from django.contrib import admin
from guardian.admin import GuardedModelAdminMixin

from crm import services
from crm.models import Activity, Contact, Customer
from ledger.admin import AuditedAdmin


class ContactAdminForm(forms.ModelForm):
    """Making a contact primary demotes the previous primary one (crm.services does it on save),
    so the form must not refuse the "one primary contact" constraint before the save can."""

    class Meta:
        model = Contact
        fields = ["customer", "name", "email", "phone", "role", "is_primary"]

    def _get_validation_exclusions(self):
        return super()._get_validation_exclusions() | {"is_primary"}


class ContactInline(admin.TabularInline):
    model = Contact
    form = ContactAdminForm
    extra = 0
    fields = ["name", "email", "phone", "role", "is_primary"]


@admin.register(Customer)
class CustomerAdmin(GuardedModelAdminMixin, AuditedAdmin):
    """Customers, with their contacts inline; every save goes through crm.services."""

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

    def save_formset(self, request, form, formset, change):
        if formset.model is not Contact:
            return super().save_formset(request, form, formset, change)
        # The admin's change message reads these three lists, which formset.save() would fill.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for contact_form in formset.deleted_forms:
            if contact_form.instance.pk:
                services.delete_contact(actor=request.user, contact=contact_form.instance)
                formset.deleted_objects.append(contact_form.instance)
        for contact_form in formset.forms:
            if contact_form in formset.deleted_forms or not contact_form.has_changed():
                continue
            is_new = contact_form.instance.pk is None
            contact = _save_contact_form(request, contact_form, customer=form.instance)
            if is_new:
                formset.new_objects.append(contact)
            else:
                formset.changed_objects.append((contact, contact_form.changed_data))


def _save_contact_form(request, contact_form, *, customer):
    fields = {name: contact_form.cleaned_data[name] for name in services.CONTACT_EDITABLE_FIELDS}
    if contact_form.instance.pk:
        return services.update_contact(actor=request.user, contact=contact_form.instance, **fields)
    return services.add_contact(actor=request.user, customer=customer, **fields)


@admin.register(Contact)
class ContactAdmin(AuditedAdmin):
    form = ContactAdminForm
    list_display = ["name", "customer", "email", "phone", "role", "is_primary"]
    search_fields = ["name", "email", "customer__display_name"]
    list_select_related = ["customer"]
    autocomplete_fields = ["customer"]

    def save_model(self, request, obj, form, change):
        saved = _save_contact_form(request, form, customer=form.cleaned_data["customer"])
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.delete_contact(actor=request.user, contact=obj)

    def get_readonly_fields(self, request, obj=None):
        # A contact stays with its customer; moving it would carry one company's people to another.
        return ["customer"] if obj else []


@admin.register(Activity)
class ActivityAdmin(AuditedAdmin):
    """Activities are a record of what happened: logged or deleted, never rewritten."""

    list_display = ["occurred_at", "kind", "customer", "actor"]
    list_filter = ["kind"]
    search_fields = ["text", "customer__display_name"]
    list_select_related = ["customer", "actor"]
    autocomplete_fields = ["customer", "actor"]
    date_hierarchy = "occurred_at"

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.log_activity(
            actor=request.user,
            customer=form.cleaned_data["customer"],
            kind=form.cleaned_data["kind"],
            text=form.cleaned_data["text"],
            occurred_at=form.cleaned_data["occurred_at"],
            performed_by=form.cleaned_data["actor"],
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.delete_activity(actor=request.user, activity=obj)

    def delete_queryset(self, request, queryset):
        for activity in queryset:
            services.delete_activity(actor=request.user, activity=activity)
