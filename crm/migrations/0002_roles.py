"""Create the three role groups with their model permissions.

The permission lists are frozen here as they stood when this migration was written; a later
migration that adds a model also grants its permissions to the roles that need them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CRM_CUSTOMER_WORK = [
    "crm.view_contact",
    "crm.add_contact",
    "crm.change_contact",
    "crm.view_activity",
    "crm.add_activity",
]

ROLE_PERMISSIONS = {
    # Reps see the customers granted to them per object (crm.access); this global
    # view_customer only opens the customer pages to the role.
    "Sales": ["crm.view_customer", *CRM_CUSTOMER_WORK],
    "Accounts Receivable": [
        "crm.view_customer",
        "crm.view_all_customers",
        "crm.change_customer",
        *CRM_CUSTOMER_WORK,
    ],
    "Finance Admin": [
        "crm.*",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "auth.change_group",
        "django_celery_beat.*",
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
        "axes.view_accesslog",
        "axes.view_accessfailurelog",
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations have run; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            matching = Permission.objects.filter(content_type__app_label=app_label)
            if codename != "*":
                matching = matching.filter(codename=codename)
            found = list(matching)
            if not found:
                raise RuntimeError(f"Role {role!r} names permission {name!r}, which does not exist.")
            permissions.extend(found)
        group.permissions.add(*permissions)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
