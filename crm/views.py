"""Customer pages: thin views that parse the request, call a selector or service, and render."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from crm import selectors, services
from crm.forms import ActivityForm, CustomerFilterForm
from crm.panels import render_customer_panels

CUSTOMERS_PER_PAGE = 25


@login_required
@permission_required("crm.view_customer", raise_exception=True)
def customer_list(request):
    owners = selectors.customer_owners(user=request.user)
    form = CustomerFilterForm(request.GET or None, owners=owners)
    filters = selectors.CustomerListFilters()
    if form.is_valid():
        data = form.cleaned_data
        filters = selectors.CustomerListFilters(
            search=data["q"], status=data["status"], owner_id=data["owner"], ordering=data["sort"] or "name"
        )
    page = Paginator(selectors.customer_list_rows(user=request.user, filters=filters), CUSTOMERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    return render(
        request,
        "crm/customer_list.html",
        {"form": form, "page": page, "query_without_page": query_without_page.urlencode(), "filters": filters},
    )


def _render_detail(request, customer, activity_form, status=200):
    return render(
        request,
        "crm/customer_detail.html",
        {
            "customer": customer,
            "contacts": customer.contacts.all(),
            "activities": selectors.recent_activities(customer=customer),
            "history": selectors.customer_history(customer=customer),
            "activity_form": activity_form,
            "can_log_activity": request.user.has_perm("crm.add_activity"),
            # Other apps' sections of the page (billing's balance, invoices and payments).
            "panels": render_customer_panels(request, customer),
        },
        status=status,
    )


@login_required
@permission_required("crm.view_customer", raise_exception=True)
def customer_detail(request, pk):
    customer = selectors.customer_detail(user=request.user, pk=pk)
    return _render_detail(request, customer, ActivityForm())


@login_required
@permission_required("crm.add_activity", raise_exception=True)
@require_POST
def log_activity(request, pk):
    customer = selectors.customer_detail(user=request.user, pk=pk)
    form = ActivityForm(request.POST)
    if form.is_valid():
        try:
            services.log_activity(actor=request.user, customer=customer, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
    if request.htmx:
        # Swap just the timeline and its form: a fresh form after success, the bound one with its
        # errors otherwise (200 either way, since htmx does not swap 4xx responses by default).
        return render(
            request,
            "crm/_activity_panel.html",
            {
                "customer": customer,
                "activities": selectors.recent_activities(customer=customer),
                "activity_form": ActivityForm() if not form.errors else form,
                "can_log_activity": True,
            },
        )
    if form.errors:
        return _render_detail(request, customer, form, status=422)
    messages.success(request, "Activity logged.")
    return redirect("crm:customer_detail", pk=customer.pk)
