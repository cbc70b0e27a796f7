"""The three roles, as Django groups. The groups and their model permissions are created by the
data migration `crm.0002_roles`; people are put in them by an admin (or by `seed_demo`)."""

from django.db.models import TextChoices


class Role(TextChoices):
    SALES = "Sales", "Sales"
    ACCOUNTS_RECEIVABLE = "Accounts Receivable", "Accounts receivable"
    FINANCE_ADMIN = "Finance Admin", "Finance admin"


# Each role's start page (a URL name), used by the home page to send people where they work.
START_PAGE = {
    Role.SALES: "crm:customer_list",
    Role.ACCOUNTS_RECEIVABLE: "worklist:index",
    Role.FINANCE_ADMIN: "console:home",
}


def roles_of(user) -> set[Role]:
    if not user.is_authenticated:
        return set()
    names = {group.name for group in user.groups.all()}
    return {role for role in Role if role.value in names}
