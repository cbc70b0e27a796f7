from django import forms

from crm.models import Activity, Customer


class ActivityForm(forms.Form):
    kind = forms.ChoiceField(choices=Activity.Kind.choices, initial=Activity.Kind.NOTE)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What happened?"}), max_length=5000)


class CustomerFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Customer.Status.choices])
    owner = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=[])
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("name", "Name A–Z"),
            ("-name", "Name Z–A"),
            ("-last_activity", "Most recent activity"),
            ("last_activity", "Least recent activity"),
            ("-credit_limit", "Highest credit limit"),
        ],
    )

    def __init__(self, *args, owners=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "Any owner")] + [
            (owner.pk, owner.get_full_name() or owner.get_username()) for owner in owners
        ]
