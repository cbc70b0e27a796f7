"""A local stand-in for QuickBooks Online's Accounting API v3 and Intuit's OAuth server.

Used by Concord's contract and chaos tests and by the demo; it does not import Concord (it plays
Intuit). Wire contract: shared/contracts/quickbooks.md; usage: docs/simulators.md.
"""

from .limits import FaultSettings, LimitSettings
from .server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_VERIFIER_TOKEN,
    DEMO_REALM_ID,
    QuickBooksSimulator,
    SimulatorConfig,
)
from .webhooks import WebhookSettings, sign

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_VERIFIER_TOKEN",
    "DEMO_REALM_ID",
    "FaultSettings",
    "LimitSettings",
    "QuickBooksSimulator",
    "SimulatorConfig",
    "WebhookSettings",
    "sign",
]
