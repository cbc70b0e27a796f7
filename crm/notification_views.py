"""A person's notifications: listed, and marked read when followed or dismissed."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from crm import services
from crm.models import Notification

RECENT_NOTIFICATION_LIMIT = 50


@login_required
def notification_list(request):
    notifications = Notification.objects.filter(recipient=request.user).select_related("customer")
    return render(request, "crm/notifications.html", {"notifications": notifications[:RECENT_NOTIFICATION_LIMIT]})


@login_required
@require_POST
def open_notification(request, notification_pk):
    """Mark one notification read and go where it points (only within this site)."""
    notification = get_object_or_404(Notification, pk=notification_pk, recipient=request.user)
    services.mark_notifications_read(user=request.user, ids=[notification.pk])
    target = notification.url
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect("notifications:list")
    return redirect(target)


@login_required
@require_POST
def mark_all_read(request):
    services.mark_notifications_read(user=request.user)
    return redirect("notifications:list")
