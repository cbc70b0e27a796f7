from django import forms
from django.core.exceptions import ValidationError

from crm.listing import CustomerListOptions
from crm.models import Activity, Customer

LOGGED_KIND_CHOICES = [(kind.value, kind.label) for kind in Activity.LOGGED_KINDS]


class ActivityForm(forms.Form):
    """A call, e-mail, meeting or note a person logs by hand; letters and promises are written by
    Concord itself, so they are not offered."""

    kind = forms.ChoiceField(label="Type", choices=LOGGED_KIND_CHOICES, initial=Activity.Kind.NOTE)
    outcome = forms.ChoiceField(
        label="Call outcome",
        required=False,
        choices=[("", "—"), *Activity.Outcome.choices],
        help_text="Calls only.",
    )
    subject = forms.CharField(
        required=False,
        max_length=200,
        help_text="Optional: what it was about, e.g. an invoice number.",
    )
    text = forms.CharField(
        label="What happened",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What happened?"}),
        max_length=5000,
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("outcome") and cleaned.get("kind") != Activity.Kind.CALL:
            self.add_error("outcome", ValidationError("Only a call has an outcome; choose Call or clear the outcome."))
        return cleaned


class CustomerFilterForm(forms.Form):
    """The customer list's search, filters and sort; the named filters and sort keys come from
    crm.listing (crm's own and those other apps contribute for this user)."""

    q = forms.CharField(required=False, label="Search")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Customer.Status.choices])
    owner = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=[])
    show = forms.MultipleChoiceField(required=False, label="Show only", choices=[])
    sort = forms.ChoiceField(required=False, choices=[])

    def __init__(self, *args, owners=(), options: CustomerListOptions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "Any owner")] + [
            (owner.pk, owner.get_full_name() or owner.get_username()) for owner in owners
        ]
        self.fields["show"].choices = options.filter_choices()
        self.fields["sort"].choices = options.sort_choices()
