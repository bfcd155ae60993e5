"""What a sender hears back once its delivery is stored."""

from django.http import HttpResponse, JsonResponse

from apps.webhooks.choices import Sender
from apps.webhooks.models import InboundEvent


def accepted_response(request, event: InboundEvent, *, created: bool):
    """Okta wants a quick 200 with an empty body; Buildkite any 2xx; a Space automation job a 202
    naming what it can poll. A redelivery hears what the first delivery heard."""
    if event.sender != Sender.SPACE:
        return HttpResponse(status=200)
    body = {"event": event.pk, "delivery_id": event.delivery_id, "state": event.state, "duplicate": not created}
    return JsonResponse(body, status=202)
