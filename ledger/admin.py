"""The ledger in the admin console: the chart of accounts, exchange rates, lock dates, and the
journal to read.

Journal entries are append-only, so their admin only shows them. Exchange rates and lock dates
are saved through ledger.services. The admin base class here is shared with billing's admin
(billing may import ledger; ledger imports no other app).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin

from ledger import services
from ledger.errors import LedgerError
from ledger.models import Account, ExchangeRate, JournalEntry, JournalLine, PeriodLock
from ledger.money import base_currency


def refused_message(error: Exception) -> str:
    """A refused write (nothing was changed) as one sentence for the person who tried it."""
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


class AuditedAdmin(SimpleHistoryAdmin):
    """History to read, never to revert: simple-history's revert saves an old version of the row
    directly, around the services (and it accepts a POST from anyone who may view the row).

    A write a service refuses after the form was valid (a locked period, a missing rate, ...)
    rolls back with the admin's transaction and comes back as an error message.
    """

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("History is kept to read; correct a record through its own form.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # Shown, not edited: said outright, because simple-history's page of an old version
            # builds its form without asking for the change permission.
            return [field.name for field in self.model._meta.fields if not field.primary_key]
        return self.get_fixed_fields(request, obj)

    def get_fixed_fields(self, request, obj=None):
        """The fields shown read-only to someone who may change the row."""
        return super().get_readonly_fields(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (LedgerError, ValidationError) as error:
            self.message_user(request, f"Nothing was saved: {refused_message(error)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def run_service_action(self, request, queryset, service, done: str) -> None:
        """Call `service(obj)` for each selected row; report what was done and what was refused."""
        succeeded, refused = 0, []
        for obj in queryset:
            try:
                service(obj)
            except (LedgerError, ValidationError) as error:
                refused.append(f"{obj}: {refused_message(error)}")
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)


class ReadOnlyAdminMixin:
    """Shown, never added, changed or deleted here: the rows are written only by services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Account)
class AccountAdmin(AuditedAdmin):
    """The chart of accounts. Posting rules find accounts by role, so assigning a role here is how
    the chart is configured; an account with postings keeps its type (the trial balance reads it)."""

    list_display = ["code", "name", "type", "role", "is_active"]
    list_filter = ["type", "is_active"]
    search_fields = ["code", "name"]

    def get_fixed_fields(self, request, obj=None):
        if obj is not None and obj.lines.exists():
            return ["type"]
        return []

    def has_delete_permission(self, request, obj=None):
        return False  # lines refer to accounts; deactivate one instead


class ExchangeRateForm(forms.ModelForm):
    class Meta:
        model = ExchangeRate
        fields = ["currency", "rate_date", "rate", "source"]

    def clean_currency(self):
        currency = self.cleaned_data["currency"]
        if currency == base_currency():
            raise ValidationError(f"{currency} is the base currency; its rate is always 1.")
        return currency


@admin.register(ExchangeRate)
class ExchangeRateAdmin(AuditedAdmin):
    """Rates are entered and corrected through ledger.services.set_exchange_rate. A corrected rate
    applies to documents booked from now on; booked ones keep the rate they were booked at."""

    form = ExchangeRateForm
    list_display = ["currency", "rate_date", "rate", "source"]
    list_filter = ["currency", "source"]
    date_hierarchy = "rate_date"

    def get_fixed_fields(self, request, obj=None):
        return ["currency", "rate_date"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        saved = services.set_exchange_rate(
            actor=request.user,
            currency=obj.currency,
            rate_date=obj.rate_date,
            rate=form.cleaned_data["rate"],
            source=form.cleaned_data["source"] or "manual",
        )
        obj.pk = saved.pk

    def has_delete_permission(self, request, obj=None):
        return False  # a rate in use explains booked amounts; correct it instead


@admin.register(PeriodLock)
class PeriodLockAdmin(AuditedAdmin):
    """A new lock date is added through ledger.services.lock_period; the latest one is in force.
    Locks are never edited or deleted, so the record of when the books were closed stays whole."""

    list_display = ["locked_through", "reason", "created_by", "created_at"]
    list_select_related = ["created_by"]
    fields = ["locked_through", "reason"]

    def save_model(self, request, obj, form, change):
        lock = services.lock_period(
            actor=request.user,
            locked_through=form.cleaned_data["locked_through"],
            reason=form.cleaned_data["reason"],
        )
        obj.pk = lock.pk

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class JournalLineInline(ReadOnlyInline):
    model = JournalLine
    fields = ["account", "debit", "credit", "customer", "currency", "amount_currency"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "customer")


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, AuditedAdmin):
    """The journal, to read: entries are posted by ledger.posting and corrected by reversal."""

    list_display = ["entry_date", "memo", "event", "source_type", "source_id", "reversal_of", "created_by"]
    list_filter = ["event", "source_type"]
    list_select_related = ["reversal_of", "created_by"]
    search_fields = ["memo", "source_id"]
    date_hierarchy = "entry_date"
    inlines = [JournalLineInline]
