from django import forms


class NewTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'Web shop'.")
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, help_text="Leave empty for the longest allowed."
    )
