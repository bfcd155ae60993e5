"""What a sender hears back once its delivery is stored."""

from django.http import HttpResponse, JsonResponse
from django.urls import reverse

from apps.webhooks.choices import Sender
from apps.webhooks.models import InboundEvent
from apps.webhooks.receivers import AUTOMATION

DEPLOYMENT_DETAIL = "api:gateways-api:deployment-detail"


def accepted_response(request, event: InboundEvent, *, created: bool):
    """Okta wants a quick 200 with an empty body; Buildkite any 2xx; Space a 202, and an automation
    job the deployments it asked for, to poll (``Location`` too when there is one). A redelivery hears
    what the first delivery heard, with the states as they are now."""
    if event.sender != Sender.SPACE:
        return HttpResponse(status=200)
    body = {"event": event.pk, "delivery_id": event.delivery_id, "state": event.state, "duplicate": not created}
    if event.event_type != AUTOMATION:
        return JsonResponse(body, status=202)
    body["deployments"] = [
        {
            "id": deployment.pk,
            "url": request.build_absolute_uri(reverse(DEPLOYMENT_DETAIL, args=[deployment.pk])),
            "gateway": deployment.gateway.name,
            "state": deployment.state,
        }
        for deployment in event.deployments.select_related("gateway").order_by("gateway__name")
    ]
    response = JsonResponse(body, status=202)
    if len(body["deployments"]) == 1:
        response["Location"] = body["deployments"][0]["url"]
    return response
