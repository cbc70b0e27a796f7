"""The admin console's audit history viewer (/console/audit/): every change any app recorded.

Sources: each model with django-simple-history (found in the app registry, so a model that gains
history later shows up by itself) and crm.AccessChange (roles and customer grants, which live in
other apps' tables without history of their own). config may read every app.

One page is read in a bounded number of queries, whatever its size:
1. the page's keys (source, id, date) from one UNION ALL over the sources, newest first, and its
   count — on PostgreSQL each source is cut to the rows the page can reach before the union;
2. per source on the page, its rows (with the author and the records they point to joined in),
   each annotated with the id of the same record's previous historical row;
3. per source on the page, those previous rows, for the field-level diffs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django import forms
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import CharField, F, ForeignKey, Model, OuterRef, Q, QuerySet, Subquery, Value
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from simple_history.models import DeletedObject, HistoricalChanges
from simple_history.utils import get_history_model_for_model

from crm.console_views import finance_admin_required
from crm.models import AccessChange, Customer

ACCESS_CHANGES = "crm.accesschange"
PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
ACTION_LABELS = {"+": "Created", "~": "Changed", "-": "Deleted"}
ACCESS_ACTIONS = {
    AccessChange.Kind.ROLE_ADDED: "+",
    AccessChange.Kind.ACCESS_GRANTED: "+",
    AccessChange.Kind.ROLE_REMOVED: "-",
    AccessChange.Kind.ACCESS_REVOKED: "-",
}


# --- Sources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditSource:
    label: str  # "crm.customer"
    name: str  # "Customer", for people
    model: type[Model]
    history: type[Model] | None  # the historical model; None for access changes

    @property
    def is_access_changes(self) -> bool:
        return self.history is None

    @property
    def object_field(self) -> str:
        """The column naming the record a row is about (for access changes: the person)."""
        return "user_id" if self.is_access_changes else self.model._meta.pk.attname

    @property
    def date_field(self) -> str:
        return "changed_at" if self.is_access_changes else "history_date"

    @property
    def author_field(self) -> str:
        return "changed_by" if self.is_access_changes else "history_user"

    @property
    def id_field(self) -> str:
        return "pk" if self.is_access_changes else "history_id"

    def foreign_keys(self) -> list[str]:
        """The tracked model's foreign keys that its history keeps (joined for names and links)."""
        if self.history is None:
            return ["user", "customer"]
        kept = {f.name for f in self.history._meta.concrete_fields}
        return [f.name for f in self.model._meta.concrete_fields if isinstance(f, ForeignKey) and f.name in kept]


def audit_sources() -> dict[str, AuditSource]:
    """Every model with an audit history, plus the access changes, by label."""
    sources = {}
    for model in apps.get_models():
        if issubclass(model, HistoricalChanges) or not hasattr(model._meta, "simple_history_manager_attribute"):
            continue
        label = model._meta.label_lower
        sources[label] = AuditSource(
            label, str(model._meta.verbose_name).capitalize(), model, get_history_model_for_model(model)
        )
    sources[ACCESS_CHANGES] = AuditSource(ACCESS_CHANGES, "Roles and customer access", AccessChange, None)
    return dict(sorted(sources.items(), key=lambda item: item[1].name))


# --- Filters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    source: str = ""
    record: str = ""
    user_id: int | None = None
    date_from: object = None
    date_to: object = None


class AuditFilterForm(forms.Form):
    model = forms.ChoiceField(required=False, label="What")
    record = forms.IntegerField(
        required=False,
        min_value=1,
        label="Record id",
        help_text="The record's id; for roles and access, the id of the person whose access changed.",
    )
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.order_by("username"),
        required=False,
        label="Changed by",
        empty_label="Anyone",
        to_field_name="pk",
    )
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    per_page = forms.TypedChoiceField(
        required=False,
        label="Per page",
        choices=[(size, size) for size in PAGE_SIZES],
        coerce=int,
        empty_value=DEFAULT_PAGE_SIZE,
        initial=DEFAULT_PAGE_SIZE,
    )

    def __init__(self, *args, sources: dict[str, AuditSource], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Everything")] + [(label, s.name) for label, s in sources.items()]
        # The menu's options, read once (the template's loop would count them first, then read them).
        self.user_choices = [("", "Anyone")] + [(user.pk, user.get_username()) for user in self.fields["user"].queryset]

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date comes before the start date.")
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            source=data.get("model") or "",
            record=str(data["record"]) if data.get("record") else "",
            user_id=data["user"].pk if data.get("user") else None,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# --- Reading the entries -----------------------------------------------------------------------


def _keys(source: AuditSource, filters: AuditFilters) -> QuerySet:
    """(source label, row id, date) of the rows of one source that pass the filters."""
    rows = source.model.objects.all() if source.is_access_changes else source.history.objects.all()
    conditions = {}
    if filters.record:
        conditions[source.object_field] = filters.record
    if filters.user_id is not None:
        conditions[f"{source.author_field}_id"] = filters.user_id
    if filters.date_from:
        conditions[f"{source.date_field}__gte"] = _day_start(filters.date_from)
    if filters.date_to:
        conditions[f"{source.date_field}__lt"] = _day_start(filters.date_to + timedelta(days=1))
    return (
        rows.filter(**conditions)
        .annotate(
            audit_source=Value(source.label, output_field=CharField()),
            audit_row=F(source.id_field),
            audit_date=F(source.date_field),
        )
        .values_list("audit_source", "audit_row", "audit_date")
        .order_by()
    )


ORDER = ("-audit_date", "-audit_source", "-audit_row")


class EntryIndex:
    """The filtered entries of every source as one newest-first sequence that a Paginator can
    count and slice, without reading more than the requested slice."""

    def __init__(self, sources: list[AuditSource], filters: AuditFilters):
        self.parts = [_keys(source, filters) for source in sources]

    def _union(self, parts: list[QuerySet]) -> QuerySet:
        first, *others = parts
        return first.union(*others, all=True) if others else first

    def count(self) -> int:
        return self._union(self.parts).count() if self.parts else 0

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, page: slice) -> list[tuple[str, int, datetime]]:
        if not self.parts or page.stop == 0:  # an empty page (a sliced-to-nothing part is no query)
            return []
        parts = self.parts
        if len(parts) > 1 and connection.features.supports_slicing_ordering_in_compound:
            # No source can contribute more rows than the page's end; PostgreSQL then reads each
            # history table's newest rows by its history_date index instead of all of them.
            parts = [part.order_by(*ORDER)[: page.stop] for part in parts]
        return list(self._union(parts).order_by(*ORDER)[page])


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str


@dataclass
class AuditEntry:
    source: AuditSource
    when: datetime
    who: object | None
    action: str  # "+", "~" or "-"
    action_label: str
    record: str
    record_id: str
    customer_id: int | None = None
    changes: list[FieldChange] = field(default_factory=list)
    subject_user: object | None = None  # access changes: whose access changed
    detail: str = ""

    @property
    def customer_url(self) -> str:
        return reverse("crm:customer_detail", args=[self.customer_id]) if self.customer_id else ""


def _shown(model_field, value) -> str:
    """A value as people read it: choices by their label, yes/no, a dash for nothing."""
    if value is None or value == "" or (isinstance(value, DeletedObject) and value.pk is None):
        return "—"
    if getattr(model_field, "flatchoices", None):
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _customer_of(source: AuditSource, row, instance) -> int | None:
    """The customer a historical row belongs to, read from what is already loaded."""
    if source.model is Customer:
        return getattr(row, source.model._meta.pk.attname)
    customer_id = getattr(instance, "customer_id", None)
    if customer_id:
        return customer_id
    # One step further: an invoice line's, allocation's or write-off's invoice names the customer.
    for name in source.foreign_keys():
        related = getattr(row, name, None) if source.history._meta.get_field(name).is_cached(row) else None
        if related is not None and getattr(related, "customer_id", None):
            return related.customer_id
    return None


def _history_entries(source: AuditSource, ids: list[int]) -> dict[int, AuditEntry]:
    history = source.history
    pk_name = source.model._meta.pk.attname
    foreign_keys = source.foreign_keys()
    previous = (
        history.objects.filter(**{pk_name: OuterRef(pk_name)})
        .filter(
            Q(history_date__lt=OuterRef("history_date"))
            | Q(history_date=OuterRef("history_date"), history_id__lt=OuterRef("history_id"))
        )
        .order_by("-history_date", "-history_id")
        .values("history_id")[:1]
    )
    rows = list(
        history.objects.filter(history_id__in=ids)
        .select_related("history_user", *foreign_keys)
        .annotate(previous_id=Subquery(previous))
    )
    wanted = [row.previous_id for row in rows if row.history_type == "~" and row.previous_id]
    previous_rows = (
        {row.history_id: row for row in history.objects.filter(history_id__in=wanted).select_related(*foreign_keys)}
        if wanted
        else {}
    )
    labels = {f.name: f for f in source.model._meta.fields}
    entries = {}
    for row in rows:
        instance = row.history_object
        # The record's own name may use what it points to (e.g. a journal line's account):
        # hand over what the join loaded, so naming it reads nothing more.
        for name in foreign_keys:
            history_field = history._meta.get_field(name)
            if history_field.is_cached(row):
                source.model._meta.get_field(name).set_cached_value(instance, history_field.get_cached_value(row))
        changes = []
        before = previous_rows.get(row.previous_id)
        if before is not None:
            delta = row.diff_against(before, foreign_keys_are_objs=True)
            for change in delta.changes:
                model_field = labels.get(change.field)
                label = str(model_field.verbose_name) if model_field else change.field
                changes.append(
                    FieldChange(label.capitalize(), _shown(model_field, change.old), _shown(model_field, change.new))
                )
        entries[row.history_id] = AuditEntry(
            source=source,
            when=row.history_date,
            who=row.history_user,
            action=row.history_type,
            action_label=ACTION_LABELS.get(row.history_type, row.history_type),
            record=str(instance),
            record_id=str(getattr(row, pk_name)),
            customer_id=_customer_of(source, row, instance),
            changes=changes,
        )
    return entries


def _access_entries(source: AuditSource, ids: list[int]) -> dict[int, AuditEntry]:
    entries = {}
    for change in AccessChange.objects.filter(pk__in=ids).select_related("user", "customer", "changed_by"):
        what = change.role or (str(change.customer) if change.customer else "")
        entries[change.pk] = AuditEntry(
            source=source,
            when=change.changed_at,
            who=change.changed_by,
            action=ACCESS_ACTIONS.get(change.kind, "~"),
            action_label=change.get_kind_display(),
            record=f"{change.user.get_username()}: {what}" if what else change.user.get_username(),
            record_id=str(change.user_id),
            customer_id=change.customer_id,
            subject_user=change.user,
            detail=change.detail,
        )
    return entries


def audit_entries(keys: list[tuple[str, int, datetime]], sources: dict[str, AuditSource]) -> list[AuditEntry]:
    """The entries for a page's keys, in the keys' order: two queries per source on the page."""
    ids_by_source: dict[str, list[int]] = {}
    for label, entry_id, _ in keys:
        ids_by_source.setdefault(label, []).append(entry_id)
    loaded: dict[str, dict[int, AuditEntry]] = {}
    for label, ids in ids_by_source.items():
        source = sources[label]
        loaded[label] = _access_entries(source, ids) if source.is_access_changes else _history_entries(source, ids)
    return [loaded[label][entry_id] for label, entry_id, _ in keys if entry_id in loaded[label]]


def entry_index(filters: AuditFilters, sources: dict[str, AuditSource] | None = None) -> EntryIndex:
    sources = sources or audit_sources()
    chosen = [sources[filters.source]] if filters.source else list(sources.values())
    return EntryIndex(chosen, filters)


def count_changes_since(since: datetime) -> int:
    """How many changes every source recorded since `since` (for the console's home page)."""
    return EntryIndex(list(audit_sources().values()), AuditFilters(date_from=since.date())).count()


# --- The page ----------------------------------------------------------------------------------


@finance_admin_required
@require_GET
def audit_log(request):
    sources = audit_sources()
    form = AuditFilterForm(request.GET or None, sources=sources)
    filters = form.filters() if form.is_valid() else AuditFilters()
    per_page = (form.cleaned_data.get("per_page") if form.is_valid() else None) or DEFAULT_PAGE_SIZE
    page = Paginator(entry_index(filters, sources), per_page).get_page(request.GET.get("page"))
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    return render(
        request,
        "console/audit_log.html",
        {
            "form": form,
            "page": page,
            "entries": audit_entries(list(page.object_list), sources),
            "query_without_page": query_without_page.urlencode(),
            "filtered": form.is_valid() and filters != AuditFilters(),
            "filters": filters,
        },
    )
