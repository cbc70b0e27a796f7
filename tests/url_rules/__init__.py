"""Access rules of the role × URL matrix (tests/test_url_matrix.py), one module per area.

Each module here may define:
- `RULES: dict[str, Rule]` — URL name → who may use it (see `Rule`);
- `url_kwargs(objects: dict) -> dict[str, str]` — values for URL arguments the matrix does not
  know yet (e.g. "invoice_pk"), from the matrix's objects;
- `make_objects(customer, actor) -> dict` — extra rows the area's URLs need, written through the
  services, merged into the matrix's objects.

Roles: "anonymous", "sales_owner" (owns the customer in the URL), "sales_other" (does not),
"ar", "finance_admin".
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

ROLES = ("anonymous", "sales_owner", "sales_other", "ar", "finance_admin")
SIGNED_IN = frozenset(ROLES) - {"anonymous"}
EVERYONE = frozenset(ROLES)
CUSTOMER_READERS = frozenset({"sales_owner", "ar", "finance_admin"})
AR_AND_ADMIN = frozenset({"ar", "finance_admin"})
FINANCE_ADMIN = frozenset({"finance_admin"})


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    method: str = "get"
    ok_statuses: tuple[int, ...] = (200,)
    # What to send; a function of the matrix's objects when it must name one of them.
    data: dict | Callable[[dict], dict] = field(default_factory=dict)
    # A public URL may answer anyone with a redirect to the login page (e.g. after logging out).
    public: bool = False
    # The exact refusal some roles must get, e.g. 404 (not 403) for a customer out of reach.
    denied_statuses: dict[str, int] = field(default_factory=dict)


def area_modules() -> list:
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ]


def area_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for module in area_modules():
        for name, rule in getattr(module, "RULES", {}).items():
            assert name not in rules, f"{name} has rules in two modules"
            rules[name] = rule
    return rules


def area_objects(customer, actor) -> dict:
    objects: dict = {}
    for module in area_modules():
        if hasattr(module, "make_objects"):
            objects.update(module.make_objects(customer, actor))
    return objects


def area_url_kwargs(objects: dict) -> dict[str, str]:
    kwargs: dict[str, str] = {}
    for module in area_modules():
        if hasattr(module, "url_kwargs"):
            kwargs.update(module.url_kwargs(objects))
    return kwargs
