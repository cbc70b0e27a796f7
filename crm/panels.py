"""Panels that other apps add to the customer page, without crm importing them.

crm must not import billing (billing uses crm), yet the customer page shows billing's figures.
So an app registers a panel from its AppConfig.ready(), and the customer page renders every
registered panel that has something to show the person looking:

    register_customer_panel("Billing", order=10, render=billing_panel)

`render(request, customer)` is called only for a customer the user may see. It returns None to
show nothing (e.g. the user lacks the app's permission), a (template name, context) pair, or
HTML already rendered by a template (a SafeString; a plain str is escaped like any other text).
A panel must read what it shows in a fixed number of queries: the page's query count is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest
from django.template.loader import render_to_string

from crm.models import Customer

PanelResult = str | tuple[str, dict] | None
PanelRender = Callable[[HttpRequest, Customer], PanelResult]


@dataclass(frozen=True)
class CustomerPanel:
    name: str
    order: int
    render: PanelRender


@dataclass(frozen=True)
class RenderedPanel:
    name: str
    html: str


_panels: dict[str, CustomerPanel] = {}


def register_customer_panel(name: str, *, render: PanelRender, order: int = 100) -> None:
    """Add (or replace: ready() may run more than once) the panel called `name`."""
    _panels[name] = CustomerPanel(name=name, order=order, render=render)


def customer_panels() -> list[CustomerPanel]:
    """The registered panels, lowest `order` first."""
    return sorted(_panels.values(), key=lambda panel: (panel.order, panel.name))


def render_customer_panels(request: HttpRequest, customer: Customer) -> list[RenderedPanel]:
    rendered = []
    for panel in customer_panels():
        result = panel.render(request, customer)
        if result is None:
            continue
        if isinstance(result, tuple):
            template_name, context = result
            result = render_to_string(template_name, context, request=request)
        rendered.append(RenderedPanel(name=panel.name, html=result))
    return rendered
