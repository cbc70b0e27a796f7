"""The form of the admin console's dunning level page (billing.dunning_level_views)."""

from __future__ import annotations

from django import forms

from billing.models import DunningLevel

LETTER_VARIABLES = (
    ("customer.display_name", "the customer's name"),
    ("customer.legal_name", "the customer's legal name"),
    ("customer.account_number", "the customer's account number"),
    ("contact_name", "the contact the letter goes to"),
    ("invoice.number", "the invoice number"),
    ("invoice.issue_date", "its issue date (e.g. |date:'j F Y')"),
    ("invoice.due_date", "its due date"),
    ("invoice.gross_total", "its total"),
    ("open_amount", "what is still open on it"),
    ("currency", "its currency"),
    ("days_overdue", "days past the due date"),
    ("level.name", "this level's name"),
    ("company_name", "our company's name"),
)


class DunningLevelForm(forms.Form):
    number = forms.IntegerField(
        label="Level", min_value=1, max_value=99, help_text="1 for the first reminder, 2 for the next, …"
    )
    name = forms.CharField(max_length=100)
    days_overdue = forms.IntegerField(
        label="Days overdue",
        min_value=1,
        max_value=3650,
        help_text="Sent once an invoice is this many days past its due date; rises with the level.",
    )
    subject = forms.CharField(
        max_length=200, help_text="A Django template, e.g. Reminder: invoice {{ invoice.number }}"
    )
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 12, "class": "font-monospace"}))
    attach_statement = forms.BooleanField(required=False, label="Attach the customer's statement (PDF)")
    is_active = forms.BooleanField(required=False, label="Active (sent by the daily run)")

    @classmethod
    def for_level(cls, level: DunningLevel | None, data=None) -> DunningLevelForm:
        if level is None:
            following = DunningLevel.objects.order_by("-level").values_list("level", "days_overdue").first()
            initial = {"attach_statement": True, "is_active": True}
            if following:
                initial.update(number=following[0] + 1, days_overdue=following[1] + 14)
            else:
                initial.update(number=1, days_overdue=7)
            return cls(data, initial=initial)
        return cls(
            data,
            initial={
                "number": level.level,
                "name": level.name,
                "days_overdue": level.days_overdue,
                "subject": level.subject,
                "body": level.body,
                "attach_statement": level.attach_statement,
                "is_active": level.is_active,
            },
        )


class PreviewForm(forms.Form):
    """What the live preview renders: the form's fields as typed so far, none required."""

    number = forms.IntegerField(required=False)
    name = forms.CharField(required=False)
    days_overdue = forms.IntegerField(required=False)
    subject = forms.CharField(required=False, strip=False)
    body = forms.CharField(required=False, strip=False)
