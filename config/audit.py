"""Who is acting: the user of a web request, or a named system actor for tasks and commands.

django-simple-history asks `history_user` for the author of every historical row. Services that
receive an explicit `actor` set it on the instance (simple-history reads `_history_user` first);
otherwise the actor comes from the surrounding context: an `acting_as` block, the logged-in
user of the request, or — in a Celery task, a management command or a shell — a system actor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

SYSTEM_USERNAME_PREFIX = "system."
DEFAULT_SYSTEM_ACTOR = "unattended"


@dataclass
class _ActorSlot:
    """The actor in force for one context; a system actor's user row is looked up lazily, once."""

    user: object | None = None
    system_name: str | None = None
    _resolved: dict = field(default_factory=dict)

    def resolve(self):
        if self.user is not None:
            return self.user
        if "user" not in self._resolved:
            self._resolved["user"] = system_actor(self.system_name or DEFAULT_SYSTEM_ACTOR)
        return self._resolved["user"]


_current: ContextVar[_ActorSlot | None] = ContextVar("concord_actor", default=None)


def system_actor(name: str):
    """The inactive user that stands for an unattended actor, e.g. `system.task:crm.refresh…`."""
    user_model = get_user_model()
    username = f"{SYSTEM_USERNAME_PREFIX}{name}"[: user_model._meta.get_field("username").max_length]
    user, created = user_model.objects.get_or_create(
        username=username,
        defaults={"is_active": False, "first_name": "System", "last_name": name[:150]},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def is_system_actor(user) -> bool:
    return bool(user) and user.username.startswith(SYSTEM_USERNAME_PREFIX)


def begin_system_actor(name: str) -> Token:
    return _current.set(_ActorSlot(system_name=name))


def end_system_actor(token: Token) -> None:
    _current.reset(token)


@contextmanager
def acting_as(user) -> Iterator[None]:
    """Attribute every change made inside the block to `user`."""
    token = _current.set(_ActorSlot(user=user))
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def as_system(name: str) -> Iterator[None]:
    """Attribute every change made inside the block to the system actor called `name`."""
    token = begin_system_actor(name)
    try:
        yield
    finally:
        end_system_actor(token)


def history_user(instance=None, request=None, **kwargs):
    """simple-history's `get_user`: the explicit actor, else the request's user, else the system."""
    slot = _current.get()
    if slot is not None:
        return slot.resolve()
    if request is not None and request.user.is_authenticated:
        return request.user
    return _ActorSlot(system_name=DEFAULT_SYSTEM_ACTOR).resolve()


def save_as(instance, *, actor, **save_kwargs) -> None:
    """Save `instance` with `actor` recorded as the author of its history row.

    simple-history reads `_history_user` first; it is removed again so that a later save of the
    same object, by other code, is not attributed to this actor."""
    instance._history_user = actor
    try:
        instance.save(**save_kwargs)
    finally:
        del instance._history_user


def audit_history(**options):
    """The `HistoricalRecords` every business model declares, wired to `history_user`."""
    from simple_history.models import HistoricalRecords

    return HistoricalRecords(get_user=history_user, **options)
