"""Forms of the admin console's users-and-roles pages (crm.console_views)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from crm.models import Customer
from crm.roles import Role


class UserFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=150)
    role = forms.ChoiceField(required=False, choices=[("", "Any role"), ("none", "No role"), *Role.choices])
    active = forms.ChoiceField(
        required=False,
        label="Status",
        choices=[("", "Active and inactive"), ("yes", "Active"), ("no", "Inactive")],
    )


class RoleToggleForm(forms.Form):
    """Give (`held` = 1) or take away (`held` = 0) one role."""

    role = forms.ChoiceField(choices=Role.choices)
    held = forms.TypedChoiceField(choices=[("1", "Give"), ("0", "Take away")], coerce=lambda value: value == "1")

    def role_value(self) -> Role:
        return Role(self.cleaned_data["role"])


class CustomerSearchForm(forms.Form):
    q = forms.CharField(label="Find a customer", max_length=200, required=False)


class GrantCustomerForm(forms.Form):
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.all(),
        error_messages={"invalid_choice": "That customer no longer exists; search again."},
    )


class GrantRepCustomersForm(forms.Form):
    """Whose customers to grant. `candidates`: active people annotated with `owned_count`."""

    rep = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        label="Every customer of",
        empty_label="Choose a sales rep…",
        error_messages={
            "required": "Choose whose customers to grant.",
            "invalid_choice": "That person cannot be chosen: they are inactive or no longer exist.",
        },
    )

    def __init__(self, *args, candidates=None, **kwargs):
        super().__init__(*args, **kwargs)
        if candidates is not None:
            self.fields["rep"].queryset = candidates

    def clean_rep(self):
        rep = self.cleaned_data["rep"]
        if not getattr(rep, "owned_count", 0):
            raise forms.ValidationError(f"{rep.get_username()} owns no customers; choose a rep who does.")
        return rep
