"""The customer page's sync badge: `{% load sync_badge %}{% sync_badge customer %}`.

crm must not import integrations, but a template may load a tag library: this is how the
customer 360 shows where the customer is synced without crm knowing about sync. One query
(integrations.selectors.customer_sync_badge); the links go only to those who may open them.
"""

from django import template

from integrations import access, selectors

register = template.Library()


@register.inclusion_tag("integrations/_sync_badge.html", takes_context=True)
def sync_badge(context, customer):
    user = context.get("user") or context["request"].user
    return {
        "rows": selectors.customer_sync_badge(customer.pk),
        "customer_pk": customer.pk,
        "with_links": access.may_link_from_badge(user),
    }
