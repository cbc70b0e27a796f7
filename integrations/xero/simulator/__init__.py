"""A local stand-in for Xero's Accounting API 2.0 and Xero's identity (OAuth 2) server.

Used by Concord's contract and chaos tests and by the demo; it does not import Concord (it plays
Xero). Wire contract: shared/contracts/xero.md; every answer validates against Xero's OpenAPI
specification (vendored in tests/integrations/xero/openapi/); usage: docs/simulators.md.
"""

from .errors import Invalid, NotFound
from .limits import FaultSettings, LimitSettings
from .server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_WEBHOOK_KEY,
    DEMO_TENANT_ID,
    SimulatorConfig,
    XeroSimulator,
)
from .webhooks import WebhookSettings, sign

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_WEBHOOK_KEY",
    "DEMO_TENANT_ID",
    "FaultSettings",
    "Invalid",
    "LimitSettings",
    "NotFound",
    "SimulatorConfig",
    "WebhookSettings",
    "XeroSimulator",
    "sign",
]
