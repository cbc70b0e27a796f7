"""Template filters for who may use the sync pages, so templates (the main navigation) ask
integrations/access.py rather than repeat its rule: `{% load sync_access %}{% if user|may_see_sync %}`."""

from django import template

from integrations import access

register = template.Library()


@register.filter
def may_see_sync(user) -> bool:
    return access.may_see_sync(user)
