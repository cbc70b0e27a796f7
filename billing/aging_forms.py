"""The aging page's filters and its export request: they parse what a person picked."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.aging import DEFAULT_SORT, NO_OWNER, SORTS, AgingFilters
from billing.exports import FORMATS


class AgingFilterForm(forms.Form):
    """Every field may be left out: the page opens on today's aging of every customer."""

    as_of = forms.DateField(required=False, label="As of", widget=forms.DateInput(attrs={"type": "date"}))
    owner = forms.ChoiceField(required=False, label="Sales rep")
    currency = forms.ChoiceField(required=False, label="Customer currency")
    sort = forms.ChoiceField(required=False, label="Sort", choices=list(SORTS.items()))

    def __init__(self, *args, owners=(), currencies=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [
            ("", "Any rep"),
            *((str(owner.pk), owner.get_full_name() or owner.get_username()) for owner in owners),
            (NO_OWNER, "No owner"),
        ]
        self.fields["owner"].error_messages["invalid_choice"] = "That rep owns none of the customers; pick one."
        self.fields["currency"].choices = [("", "Any currency"), *((code, code) for code in currencies)]
        self.fields["currency"].error_messages["invalid_choice"] = "No customer is invoiced in that currency."

    def clean_as_of(self):
        as_of = self.cleaned_data["as_of"] or timezone.localdate()
        if as_of > timezone.localdate():
            # The aging says what was owed on a day; nothing is known yet about payments to come.
            raise ValidationError("Pick today or an earlier day: the aging shows what was owed on a day.")
        return as_of

    def filters(self) -> AgingFilters:
        data = self.cleaned_data
        return AgingFilters(
            as_of=data["as_of"], owner=data["owner"], currency=data["currency"], sort=data["sort"] or DEFAULT_SORT
        )


class AgingExportForm(AgingFilterForm):
    export_format = forms.ChoiceField(label="Format", choices=[(key, spec.label) for key, spec in FORMATS.items()])
