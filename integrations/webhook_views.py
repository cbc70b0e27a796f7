"""Webhooks in: one endpoint per provider, answered fast (the work is queued)."""

from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services
from .providers import BUILDERS, webhook_module


@csrf_exempt  # signed by the vendor instead; a browser never posts here
@require_POST
def receive(request, provider: str):
    if provider not in BUILDERS:
        return HttpResponseNotFound("Unknown provider.")
    delivery = services.receive_webhook(
        provider=provider,
        body=request.body,
        headers=dict(request.headers),
        remote_addr=request.META.get("REMOTE_ADDR"),
    )
    if not delivery.verified:
        # Said plainly to the sender; details stay in Concord's log and webhook list. The status
        # is the provider's: Xero's intent-to-receive handshake requires 401, QuickBooks takes 400.
        status = getattr(webhook_module(provider), "REJECTED_STATUS", 400)
        return HttpResponse("Signature verification failed.", status=status)
    return HttpResponse(status=200)
