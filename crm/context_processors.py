from crm.models import Notification
from crm.roles import Role, roles_of


def roles(request):
    """The signed-in user's roles and unread notifications, for the navigation bar.

    Read once per request and kept on it: a page renders its panels as templates of their own,
    and each render runs the context processors again."""
    cached = getattr(request, "_concord_nav", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    user_roles = roles_of(user) if user is not None else set()
    unread = []
    if user is not None and user.is_authenticated:
        # Eleven, to tell "10" from "more than 10" in the badge.
        unread = list(Notification.objects.filter(recipient=user, read_at__isnull=True)[:11])
    cached = {
        "user_roles": sorted(role.label for role in user_roles),
        "user_role_values": {role.value for role in user_roles},
        "Role": Role,
        "unread_notifications": unread[:10],
        "more_unread_notifications": len(unread) > 10,
    }
    request._concord_nav = cached
    return cached
