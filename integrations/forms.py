"""Forms of the sync pages: they parse what a person typed; integrations.services decides the rest."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from .core import canonical
from .core.merge import ASK, CONCORD, REMOTE
from .models import Conflict, Connection, EntitySetting, Provider
from .providers import BUILDERS
from .selectors import ENTITY_LABELS, MAPPING_TABLE_LABELS, QUARANTINE_STATUSES, canonical_fields
from .services import MAPPING_TABLES

POLICY_CHOICES = [
    (CONCORD, "Concord wins"),
    (REMOTE, "The package wins"),
    (ASK, "Ask a person"),
]
ENTITY_CHOICES = [(entity, ENTITY_LABELS[entity]) for entity in canonical.ENTITIES]
IGNORE_REASON_LENGTH = 100


class StyledForm(forms.Form):
    """Bootstrap's classes on every widget, so templates render fields with `{{ field }}`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.style_widgets()

    def style_widgets(self) -> None:
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.RadioSelect | forms.HiddenInput):
                continue
            css = "form-select" if isinstance(widget, forms.Select) else "form-control"
            classes = widget.attrs.get("class", "").split()
            if css not in classes:
                widget.attrs["class"] = " ".join([css, *classes])


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """A refusal from a service: next to the field it names when the form has it, else above."""
    if hasattr(error, "error_dict"):
        for name, messages in error.message_dict.items():
            form.add_error(name if name in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)


class ConnectionForm(StyledForm):
    provider = forms.ChoiceField(
        # Only the packages Concord has an adapter for can be connected.
        choices=[(provider.value, provider.label) for provider in Provider if provider.value in BUILDERS],
    )
    name = forms.CharField(
        max_length=Connection._meta.get_field("name").max_length,
        help_text="How Concord's pages name this company file, e.g. “Acme US books”.",
    )


class ScheduleForm(StyledForm):
    every_minutes = forms.IntegerField(
        label="Run every (minutes)",
        min_value=1,
        max_value=24 * 60,
        help_text="Webhooks bring single changes sooner; the schedule is the safety net.",
    )


class DirectionsForm(StyledForm):
    """One direction per entity of the connection."""

    def __init__(self, *args, settings: list[EntitySetting], **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = {setting.entity: setting for setting in settings}
        for setting in settings:
            self.fields[setting.entity] = forms.ChoiceField(
                label=ENTITY_LABELS.get(setting.entity, setting.entity),
                choices=EntitySetting.Direction.choices,
                initial=setting.direction,
            )
        self.style_widgets()

    def changed_directions(self) -> dict[str, str]:
        return {
            entity: direction
            for entity, direction in self.cleaned_data.items()
            if self.settings[entity].direction != direction
        }


class FieldPolicyForm(StyledForm):
    """Who wins when both sides changed the same field: one field of one entity at a time."""

    target = forms.ChoiceField(label="Field")
    policy = forms.ChoiceField(label="When both sides changed it", choices=POLICY_CHOICES, initial=ASK)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [
            (ENTITY_LABELS[entity], [(f"{entity}:{name}", name) for name in names])
            for entity, names in canonical_fields().items()
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("target"):
            cleaned["entity"], cleaned["field"] = cleaned["target"].split(":", 1)
        return cleaned


class ResolveConflictForm(StyledForm):
    """A choice per conflicting field: Concord's value or the package's."""

    def __init__(self, *args, conflict: Conflict, **kwargs):
        super().__init__(*args, **kwargs)
        self.conflict = conflict
        for name in conflict.fields:
            self.fields[name] = forms.ChoiceField(
                label=name,
                choices=[("concord", "Concord's value"), ("remote", "The package's value")],
                widget=forms.RadioSelect,
                error_messages={"required": "Choose Concord's value or the package's."},
            )

    def choices(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in self.conflict.fields}


class IgnoreQuarantineForm(StyledForm):
    reason = forms.CharField(
        max_length=IGNORE_REASON_LENGTH,
        help_text="Why this record need not be synced; kept in its history.",
        error_messages={"required": "Say why this record need not be synced."},
    )


def table_as_text(table: dict[str, str]) -> str:
    return "\n".join(f"{key} = {value}" for key, value in sorted(table.items()))


def parse_table(text: str) -> dict[str, str]:
    """`key = value` lines into a table; blank lines and lines starting with # are skipped.
    Every malformed line is reported with its number, at once."""
    table: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            problems.append(f"Line {number}: write it as “Concord value = package value”.")
        elif not key or not value:
            problems.append(f"Line {number}: both sides of “=” need a value.")
        elif key in table:
            problems.append(f"Line {number}: “{key}” is already mapped on line {first_seen[key]}.")
        else:
            table[key], first_seen[key] = value, number
    if problems:
        raise ValidationError(problems)
    return table


class MappingVersionForm(StyledForm):
    """The five mapping tables as `Concord value = package value` lines; saving makes a new version."""

    note = forms.CharField(
        max_length=300, required=False, help_text="What changed and why, for whoever reads the history."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in MAPPING_TABLES:
            self.fields[name] = forms.CharField(
                label=MAPPING_TABLE_LABELS[name],
                required=False,
                widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace", "spellcheck": "false"}),
            )
        self.style_widgets()

    def clean(self):
        cleaned = super().clean()
        for name in MAPPING_TABLES:
            if name in cleaned:
                try:
                    cleaned[name] = parse_table(cleaned[name])
                except ValidationError as error:
                    self.add_error(name, error)
        return cleaned

    def tables(self) -> dict[str, dict[str, str]]:
        return {name: self.cleaned_data[name] for name in MAPPING_TABLES}


class RepushForm(StyledForm):
    entity = forms.ChoiceField(choices=ENTITY_CHOICES)


def _connection_choices() -> list[tuple[str, str]]:
    return [("", "Any connection")] + [(str(pk), name) for pk, name in Connection.objects.values_list("pk", "name")]


class ConflictFilterForm(StyledForm):
    connection = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)
    entity = forms.ChoiceField(label="Record type", choices=[("", "Any record type"), *ENTITY_CHOICES], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *Conflict.Status.choices], required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].choices = _connection_choices()


class QuarantineFilterForm(StyledForm):
    connection = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)
    entity = forms.ChoiceField(label="Record type", choices=[("", "Any record type"), *ENTITY_CHOICES], required=False)
    status = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in QUARANTINE_STATUSES.items()], required=False
    )
    # The local record's id, as the customer page's badge links it.
    record = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].choices = _connection_choices()
