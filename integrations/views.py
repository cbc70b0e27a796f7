"""The sync pages (/sync/): connections and their health, the connect flow, runs with their
progress, conflicts, quarantine and mapping versions.

Thin: parse the request, ask integrations.selectors or call integrations.services, render. Who may
use what is decided in integrations/access.py: people who see every customer read the pages and
work conflicts and quarantine; Finance Admins also change connections and mappings. A service's
refusal (ValidationError) is shown next to the form that asked (422) or as a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import access, providers, selectors, services
from .access import sync_admin_required, sync_viewer_required, sync_worker_required
from .core.errors import SyncError
from .forms import (
    ConflictFilterForm,
    ConnectionForm,
    DirectionsForm,
    FieldPolicyForm,
    IgnoreQuarantineForm,
    MappingVersionForm,
    QuarantineFilterForm,
    RepushForm,
    ResolveConflictForm,
    ScheduleForm,
    add_service_error,
    table_as_text,
)
from .models import Conflict, Connection, SyncRun

RECENT_RUNS_SHOWN = 10
RUNS_PER_PAGE = 25
CONFLICTS_PER_PAGE = 50
QUARANTINE_PER_PAGE = 50
# The run page asks for its progress again this often while the run is queued or running.
RUN_POLL_SECONDS = 2
# Ids handed to the re-push service at a time: each becomes a row of one INSERT, and PostgreSQL
# takes at most 65 535 bound parameters per statement.
REPUSH_BATCH = 1000


def _context(request, **extra) -> dict:
    return {
        "can_manage": access.may_manage_sync(request.user),
        "can_work": access.may_work_sync(request.user),
        "now": timezone.now(),
        **extra,
    }


def _page(request, queryset, per_page: int):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def _refusal(error: ValidationError) -> str:
    return " ".join(error.messages)


# --- connections -----------------------------------------------------------------------------------


@sync_viewer_required
@require_GET
def connection_list(request):
    return render(request, "integrations/connection_list.html", _context(request, rows=selectors.connection_rows()))


@sync_admin_required
@require_http_methods(["GET", "POST"])
def connection_create(request):
    form = ConnectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.create_connection(
                actor=request.user, provider=form.cleaned_data["provider"], name=form.cleaned_data["name"]
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(
                request, f"“{connection}” is set up. Connect it to {connection.get_provider_display()} to start."
            )
            return redirect("integrations:connection_detail", connection_pk=connection.pk)
    return render(
        request,
        "integrations/connection_form.html",
        _context(request, form=form),
        status=422 if form.errors else 200,
    )


def _detail_context(request, connection_pk: int, **forms) -> dict:
    row = selectors.connection_row(connection_pk)
    connection = row.connection
    context = _context(
        request,
        row=row,
        connection=connection,
        runs=selectors.recent_runs(connection, limit=RECENT_RUNS_SHOWN),
        entity_settings=selectors.entity_settings(connection),
        policies=selectors.field_policy_rows(connection),
    )
    if context["can_manage"]:
        context["schedule_form"] = forms.get("schedule_form") or ScheduleForm(
            initial={"every_minutes": row.schedule.every_minutes or services.DEFAULT_EVERY_MINUTES}
        )
        context["directions_form"] = forms.get("directions_form") or DirectionsForm(settings=context["entity_settings"])
        context["policy_form"] = forms.get("policy_form") or FieldPolicyForm()
    return context


def _render_detail(request, connection_pk: int, *, status: int = 200, **forms):
    return render(
        request, "integrations/connection_detail.html", _detail_context(request, connection_pk, **forms), status=status
    )


@sync_viewer_required
@require_GET
def connection_detail(request, connection_pk):
    return _render_detail(request, connection_pk)


def _back_to_connection(connection: Connection):
    return redirect("integrations:connection_detail", connection_pk=connection.pk)


@sync_admin_required
@require_POST
def connection_connect(request, connection_pk):
    """Send the browser to the package's consent page; it comes back to `oauth_callback`."""
    connection = selectors.get_connection_or_404(connection_pk)
    redirect_uri = request.build_absolute_uri(reverse("integrations:oauth_callback"))
    try:
        consent_url = services.begin_authorization(actor=request.user, connection=connection, redirect_uri=redirect_uri)
    except ValidationError as error:
        messages.error(request, f"Could not start connecting: {_refusal(error)}")
        return _back_to_connection(connection)
    except SyncError as error:
        messages.error(request, f"Could not start connecting: {error}")
        return _back_to_connection(connection)
    return HttpResponseRedirect(consent_url)


@sync_admin_required
@require_GET
def oauth_callback(request):
    """The package's redirect back: a code to exchange, or the `error` it answered with (the
    person refused consent, say). Either way the person lands on the connection with a message."""
    state = request.GET.get("state", "")
    connection = selectors.connection_for_oauth_state(state)
    back = _back_to_connection(connection) if connection else redirect("integrations:connection_list")
    if request.GET.get("error"):
        package = connection.get_provider_display() if connection else "The accounting package"
        description = request.GET.get("error_description", "")
        messages.error(
            request,
            f"{package} did not grant access ({request.GET['error']}{': ' + description if description else ''}). "
            "Nothing was changed; connect again when ready.",
        )
        return back
    tenant_parameter = "realmId"  # QuickBooks' name; a provider's connect module may name its own
    if connection is not None:
        tenant_parameter = getattr(
            providers.authorization_module(connection.provider), "TENANT_PARAMETER", tenant_parameter
        )
    try:
        connection = services.complete_authorization(
            actor=request.user,
            state=state,
            code=request.GET.get("code", ""),
            tenant_id=request.GET.get(tenant_parameter, ""),
            redirect_uri=request.build_absolute_uri(reverse("integrations:oauth_callback")),
        )
    except ValidationError as error:
        messages.error(request, f"Not connected: {_refusal(error)}")
        return back
    except SyncError as error:
        messages.error(request, f"Not connected: the package refused the exchange ({error}). Connect again.")
        return back
    if not connection.tenant_id:
        # The grant reaches several organisations (Xero): the person picks the one to sync.
        return redirect("integrations:connection_tenant", connection_pk=connection.pk)
    _say_connected(request, connection)
    return _back_to_connection(connection)


def _say_connected(request, connection: Connection) -> None:
    messages.success(
        request,
        f"Connected “{connection}” to {connection.get_provider_display()} (company {connection.tenant_id}). "
        "It syncs on its schedule; “Run now” syncs at once.",
    )


@sync_admin_required
@require_http_methods(["GET", "POST"])
def connection_tenant(request, connection_pk):
    """After connecting to a package whose grant reaches several organisations: which one this
    connection syncs. The list is asked of the package each time, and the choice checked against it."""
    connection = selectors.get_connection_or_404(connection_pk)
    error = ""
    if request.method == "POST":
        try:
            connection = services.choose_tenant(
                actor=request.user, connection=connection, tenant_id=request.POST.get("tenant_id", "")
            )
        except ValidationError as refused:
            error = _refusal(refused)
        except SyncError as failed:
            error = f"{connection.get_provider_display()} did not answer: {failed}"
        else:
            _say_connected(request, connection)
            return _back_to_connection(connection)
    try:
        tenants = services.tenants_to_choose(connection=connection)
    except ValidationError as refused:
        messages.error(request, _refusal(refused))
        return _back_to_connection(connection)
    except SyncError as failed:
        messages.error(request, f"Could not list the organisations ({failed}). Connect again.")
        return _back_to_connection(connection)
    taken = dict(
        Connection.objects.filter(provider=connection.provider, tenant_id__in=[t.tenant_id for t in tenants])
        .exclude(pk=connection.pk)
        .values_list("tenant_id", "name")
    )
    return render(
        request,
        "integrations/connection_tenant.html",
        _context(request, connection=connection, tenants=tenants, taken=taken, error=error),
        status=422 if error else 200,
    )


@sync_admin_required
@require_POST
def connection_pause(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    services.pause_connection(actor=request.user, connection=connection)
    messages.success(request, f"“{connection}” is paused: no runs until it is resumed. Local changes keep queueing.")
    return _back_to_connection(connection)


@sync_admin_required
@require_POST
def connection_resume(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    try:
        services.resume_connection(actor=request.user, connection=connection)
    except ValidationError as error:
        messages.error(request, _refusal(error))
    else:
        messages.success(request, f"“{connection}” is running on its schedule again.")
    return _back_to_connection(connection)


@sync_admin_required
@require_POST
def connection_run(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    if not connection.is_runnable:
        # A run would only be skipped by the engine: say why here instead.
        messages.error(
            request, f"“{connection}” is {connection.get_status_display().lower()}: it cannot run until that is fixed."
        )
        return _back_to_connection(connection)
    try:
        run = services.request_run(actor=request.user, connection=connection, trigger=SyncRun.Trigger.MANUAL)
    except ValidationError as refused:  # held by the package's daily limit, say
        messages.error(request, _refusal(refused))
        return _back_to_connection(connection)
    return redirect("integrations:run_detail", run_pk=run.pk)


@sync_admin_required
@require_POST
def connection_schedule(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        try:
            services.set_schedule(actor=request.user, connection=connection, **form.cleaned_data)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"“{connection}” now runs every {form.cleaned_data['every_minutes']} minutes.")
            return _back_to_connection(connection)
    return _render_detail(request, connection.pk, status=422, schedule_form=form)


@sync_admin_required
@require_POST
def connection_directions(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    form = DirectionsForm(request.POST, settings=selectors.entity_settings(connection))
    if form.is_valid():
        changed = form.changed_directions()
        try:
            # All or none: a half-applied set of directions is not what anyone chose.
            with transaction.atomic():
                for entity, direction in changed.items():
                    services.set_direction(
                        actor=request.user, connection=connection, entity=entity, direction=direction
                    )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Directions saved." if changed else "No direction changed.")
            return _back_to_connection(connection)
    return _render_detail(request, connection.pk, status=422, directions_form=form)


@sync_admin_required
@require_POST
def connection_policy(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    form = FieldPolicyForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.set_field_policy(
                actor=request.user,
                connection=connection,
                entity=data["entity"],
                field=data["field"],
                policy=data["policy"],
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            label = dict(form.fields["policy"].choices)[data["policy"]]
            messages.success(request, f"{selectors.ENTITY_LABELS[data['entity']]} · {data['field']}: {label.lower()}.")
            return _back_to_connection(connection)
    return _render_detail(request, connection.pk, status=422, policy_form=form)


# --- runs ----------------------------------------------------------------------------------------


@sync_viewer_required
@require_GET
def run_history(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    page = _page(request, selectors.run_history(connection), RUNS_PER_PAGE)
    return render(
        request,
        "integrations/run_history.html",
        _context(request, connection=connection, page=page, query_without_page=_query_without_page(request)),
    )


@sync_viewer_required
@require_GET
def run_detail(request, run_pk):
    """The run's progress; while it is queued or running, htmx asks for the fragment again."""
    progress = selectors.run_progress(selectors.get_run_or_404(run_pk))
    context = _context(request, progress=progress, run=progress.run, poll_seconds=RUN_POLL_SECONDS)
    template = "integrations/_run_progress.html" if request.htmx else "integrations/run_detail.html"
    return render(request, template, context)


# --- conflicts -----------------------------------------------------------------------------------


@sync_viewer_required
@require_GET
def conflict_list(request):
    form = ConflictFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    conflicts = selectors.conflict_rows(
        connection_pk=filters.get("connection"), entity=filters.get("entity", ""), status=filters.get("status", "")
    )
    page = _page(request, conflicts, CONFLICTS_PER_PAGE)
    rows = [(conflict, _conflict_title(conflict)) for conflict in page]
    return render(
        request,
        "integrations/conflict_list.html",
        _context(request, form=form, page=page, rows=rows, query_without_page=_query_without_page(request)),
    )


def _conflict_title(conflict: Conflict) -> str:
    return selectors.record_title(conflict.entity, conflict.local or conflict.remote, conflict.remote_id)


def _conflict_context(request, conflict: Conflict, form: ResolveConflictForm | None = None) -> dict:
    context = _context(
        request,
        conflict=conflict,
        title=_conflict_title(conflict),
        comparison=selectors.conflict_comparison(conflict),
    )
    if context["can_work"] and conflict.status == Conflict.Status.OPEN:
        context["form"] = form or ResolveConflictForm(conflict=conflict)
    return context


@sync_viewer_required
@require_GET
def conflict_detail(request, conflict_pk):
    conflict = selectors.get_conflict_or_404(conflict_pk)
    return render(request, "integrations/conflict_detail.html", _conflict_context(request, conflict))


@sync_worker_required
@require_POST
def conflict_resolve(request, conflict_pk):
    conflict = selectors.get_conflict_or_404(conflict_pk)
    form = ResolveConflictForm(request.POST, conflict=conflict)
    if form.is_valid():
        try:
            services.resolve_conflict(actor=request.user, conflict=conflict, choices=form.choices())
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(
                request,
                "Conflict resolved. Where the package's value was chosen, Concord has it now; where Concord's "
                "was, the next run pushes it.",
            )
            return redirect("integrations:conflict_list")
    conflict = selectors.get_conflict_or_404(conflict.pk)
    context = _conflict_context(request, conflict, form)
    if conflict.status != Conflict.Status.OPEN:
        # Settled meanwhile (by someone else): the page shows that settlement, the reason above it.
        context["refusal"] = " ".join(form.non_field_errors())
    return render(request, "integrations/conflict_detail.html", context, status=422)


# --- quarantine ----------------------------------------------------------------------------------


def _quarantine_row(item, *, form: IgnoreQuarantineForm | None = None, notice: str = "", refusal: str = "") -> dict:
    return {
        "item": item,
        "payload": selectors.pretty_payload(item),
        "ignore_form": form or IgnoreQuarantineForm(),
        "notice": notice,
        "refusal": refusal,
    }


@sync_viewer_required
@require_GET
def quarantine_list(request):
    form = QuarantineFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    items = selectors.quarantine_rows(
        connection_pk=filters.get("connection"),
        entity=filters.get("entity", ""),
        status=filters.get("status") or "open",
        local_id=filters.get("record"),
    )
    page = _page(request, items, QUARANTINE_PER_PAGE)
    return render(
        request,
        "integrations/quarantine_list.html",
        _context(
            request,
            form=form,
            page=page,
            rows=[_quarantine_row(item) for item in page],
            query_without_page=_query_without_page(request),
            next=request.get_full_path(),
        ),
    )


def _after_quarantine_action(request, item_pk: int, *, notice: str = "", refusal: str = "", form=None):
    """With htmx, the item's row again (its new status, or the refusal); otherwise back to the list."""
    if request.htmx:
        item = selectors.get_quarantine_item_or_404(item_pk)
        context = _context(
            request,
            row=_quarantine_row(item, form=form, notice=notice, refusal=refusal),
            next=_safe_next(request, reverse("integrations:quarantine_list")),
        )
        return render(request, "integrations/_quarantine_row.html", context)
    if refusal:
        messages.error(request, refusal)
    else:
        messages.success(request, notice)
    return redirect(_safe_next(request, reverse("integrations:quarantine_list")))


@sync_worker_required
@require_POST
def quarantine_retry(request, quarantine_pk):
    item = selectors.get_quarantine_item_or_404(quarantine_pk)
    try:
        services.retry_quarantined(actor=request.user, item=item)
    except ValidationError as error:
        return _after_quarantine_action(request, item.pk, refusal=_refusal(error))
    return _after_quarantine_action(request, item.pk, notice="Queued: the next run tries this record again.")


@sync_worker_required
@require_POST
def quarantine_ignore(request, quarantine_pk):
    item = selectors.get_quarantine_item_or_404(quarantine_pk)
    form = IgnoreQuarantineForm(request.POST)
    if not form.is_valid():
        return _after_quarantine_action(request, item.pk, refusal=" ".join(form.errors["reason"]), form=form)
    try:
        services.ignore_quarantined(actor=request.user, item=item, reason=form.cleaned_data["reason"])
    except ValidationError as error:
        return _after_quarantine_action(request, item.pk, refusal=_refusal(error))
    return _after_quarantine_action(request, item.pk, notice="Ignored: this record is no longer tried.")


# --- mappings ------------------------------------------------------------------------------------


@sync_admin_required
@require_GET
def mapping_list(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    versions = selectors.mapping_versions(connection)
    latest = versions[0] if versions else None
    return render(
        request,
        "integrations/mapping_list.html",
        _context(
            request,
            connection=connection,
            versions=versions,
            latest=latest,
            stale=selectors.stale_links(connection, latest),
        ),
    )


@sync_admin_required
@require_GET
def mapping_detail(request, mapping_pk):
    version = selectors.get_mapping_version_or_404(mapping_pk)
    latest = selectors.latest_mapping_version(version.connection)
    return render(
        request,
        "integrations/mapping_detail.html",
        _context(
            request,
            connection=version.connection,
            version=version,
            is_latest=latest is not None and latest.pk == version.pk,
            tables=selectors.mapping_tables(version),
        ),
    )


@sync_admin_required
@require_http_methods(["GET", "POST"])
def mapping_create(request, connection_pk):
    connection = selectors.get_connection_or_404(connection_pk)
    latest = selectors.latest_mapping_version(connection)
    initial = {name: table_as_text(getattr(latest, name)) for name in services.MAPPING_TABLES} if latest else {}
    form = MappingVersionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.create_mapping_version(
                actor=request.user, connection=connection, note=form.cleaned_data["note"], **form.tables()
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(
                request,
                f"Mapping version {version.version} saved: runs use it from now on. Records synced with an "
                "older version can be pushed again from the mapping list.",
            )
            return redirect("integrations:mapping_detail", mapping_pk=version.pk)
    return render(
        request,
        "integrations/mapping_form.html",
        _context(request, connection=connection, latest=latest, form=form),
        status=422 if form.errors else 200,
    )


@sync_admin_required
@require_POST
def mapping_repush(request, connection_pk):
    """Queue every record of one entity last synced with an older mapping for another push."""
    connection = selectors.get_connection_or_404(connection_pk)
    back = redirect("integrations:mapping_list", connection_pk=connection.pk)
    form = RepushForm(request.POST)
    latest = selectors.latest_mapping_version(connection)
    if not form.is_valid() or latest is None:
        messages.error(request, "Choose a record type to push again.")
        return back
    entity = form.cleaned_data["entity"]
    label = selectors.ENTITY_LABELS[entity].lower()
    if not selectors.entity_pushes(connection, entity):
        messages.error(request, f"{label.capitalize()} do not flow to the package: change their direction first.")
        return back
    local_ids = selectors.stale_local_ids(connection, entity=entity, latest=latest.version)
    if not local_ids:
        messages.info(request, f"Every linked record of {label} was synced with version {latest.version} already.")
        return back
    with transaction.atomic():
        for start in range(0, len(local_ids), REPUSH_BATCH):
            services.repush_with_latest_mapping(
                actor=request.user,
                connection=connection,
                entity=entity,
                local_ids=local_ids[start : start + REPUSH_BATCH],
            )
    count = len(local_ids)
    records = selectors.ENTITY_NAMES[entity].lower() if count == 1 else label
    messages.success(request, f"{count} {records} queued to be pushed again with mapping version {latest.version}.")
    return back
