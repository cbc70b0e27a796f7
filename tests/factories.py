"""Factories that build through crm.services, so test data obeys the same rules as real data
(an owner is granted access to the customer it owns, history records an actor)."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from config import audit
from crm import services
from crm.models import Activity, Contact, Customer


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("a-long-test-password")

    @factory.post_generation
    def role(user, create, role, **kwargs):
        if role:
            user.groups.add(Group.objects.get(name=role.value))
            if role.value == "Finance Admin":
                user.is_staff = True
                user.save(update_fields=["is_staff"])


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    account_number = factory.Sequence(lambda n: f"T-{n:06d}")
    display_name = factory.Faker("company")
    legal_name = factory.LazyAttribute(lambda customer: f"{customer.display_name} Ltd")
    billing_city = factory.Faker("city")
    billing_country = "US"
    currency = "USD"
    payment_terms_days = 30
    owner = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.create_customer(actor=audit.system_actor("tests"), **kwargs)


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    customer = factory.SubFactory(CustomerFactory)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    role = "Accounts payable"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.add_contact(actor=audit.system_actor("tests"), **kwargs)


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    customer = factory.SubFactory(CustomerFactory)
    kind = Activity.Kind.CALL
    text = factory.Faker("sentence")
    actor = factory.LazyAttribute(lambda activity: activity.customer.owner)

    @classmethod
    def _create(cls, model_class, *args, actor, **kwargs):
        return services.log_activity(actor=actor, **kwargs)
