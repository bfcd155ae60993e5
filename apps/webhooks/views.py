"""``/webhooks/<sender>/<slug>``: authenticate the raw body, store it, answer. Nothing else happens
before the delivery is verified, and nothing is acted on before it is stored."""

import dataclasses
import json
import logging

from django.conf import settings
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.api.exceptions import problem_response
from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.webhooks.choices import Sender
from apps.webhooks.inbox import inbound_event_accept
from apps.webhooks.models import WebhookReceiver
from apps.webhooks.receivers import MalformedDelivery, SignatureRefused, delivery_authenticate, delivery_identify
from apps.webhooks.responses import accepted_response

logger = logging.getLogger(__name__)


def _refuse(request, receiver: WebhookReceiver, status: int, code: str, detail: str):
    """Answer a refused delivery, and audit it (what was wrong, never the secret or the body)."""
    audit_record(
        actor=_sender_actor(request, receiver),
        action="webhook.refuse",
        object_type="webhookreceiver",
        object_id=receiver.pk,
        after={"receiver": str(receiver), "status": status, "reason": detail},
    )
    return problem_response(status, code, detail)


def _sender_actor(request, receiver: WebhookReceiver) -> Actor:
    # the sender, not the (anonymous) Django user: kind webhook, named after its receiver
    return dataclasses.replace(Actor.from_request(request), kind="webhook", name=str(receiver))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook_receive(request, sender: str, slug: str):
    receiver = WebhookReceiver.objects.filter(sender=sender, slug=slug, enabled=True).first()
    if receiver is None:
        return problem_response(404, "not_found", f"no enabled webhook receiver at {request.path}")
    if request.method == "GET":
        return _okta_verification(request, receiver)
    length = int(request.headers.get("Content-Length") or 0)
    if length > settings.WEBHOOK_MAX_BODY_BYTES:
        return _refuse(request, receiver, 413, "too_large", f"the body exceeds {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
    if request.content_type != "application/json":
        return _refuse(request, receiver, 415, "unsupported_media_type", "the body must be application/json")
    body = request.body[: settings.WEBHOOK_MAX_BODY_BYTES + 1]
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:  # a sender that lied about its length
        return _refuse(request, receiver, 413, "too_large", f"the body exceeds {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
    try:
        delivery_authenticate(receiver=receiver, headers=request.headers, body=body, now=timezone.now())
    except SignatureRefused as refused:
        return _refuse(request, receiver, 401, "bad_signature", str(refused))
    try:
        payload = json.loads(body)
        delivery = delivery_identify(sender=sender, payload=payload, headers=request.headers, body=body)
    except (ValueError, MalformedDelivery) as malformed:
        detail = f"not JSON: {malformed}" if isinstance(malformed, ValueError) else str(malformed)
        return _refuse(request, receiver, 400, "malformed", detail)
    try:
        event, created = inbound_event_accept(
            receiver=receiver,
            delivery_id=delivery.delivery_id,
            event_type=delivery.event_type,
            payload=payload,
            actor=_sender_actor(request, receiver),
        )
    except MalformedDelivery as refused:  # its accept hook refused it (e.g. an unknown gateway): nothing stored
        return _refuse(request, receiver, 400, "malformed", str(refused))
    return accepted_response(request, event, created=created)


def _okta_verification(request, receiver: WebhookReceiver):
    """Okta's one-time check of a new event hook: echo the challenge, once the secret matches."""
    challenge = request.headers.get("X-Okta-Verification-Challenge")
    if receiver.sender != Sender.OKTA or not challenge:
        return problem_response(405, "method_not_allowed", "deliveries are POSTed")
    try:
        delivery_authenticate(receiver=receiver, headers=request.headers, body=b"", now=timezone.now())
    except SignatureRefused as refused:
        return _refuse(request, receiver, 401, "bad_signature", str(refused))
    return JsonResponse({"verification": challenge})
