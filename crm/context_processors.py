from crm.roles import Role, roles_of


def roles(request):
    """The signed-in user's roles, for the navigation bar."""
    user_roles = roles_of(request.user) if hasattr(request, "user") else set()
    return {"user_roles": sorted(role.label for role in user_roles), "Role": Role}
