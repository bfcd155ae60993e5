"""What each sender's delivery must carry to be accepted: its authentication (checked over the raw
body before anything is parsed), and the id that makes a redelivery recognizable.

- Space: ``X-Space-Timestamp`` with ``X-Space-Signature`` (signing key) or ``X-Space-Public-Key-Signature``
  (public key), as the receiver is configured. Space sends no delivery id; the signed timestamp and
  body identify a delivery (a redelivery of the same request repeats both). Automation jobs name
  their execution instead (``requestId``), so a retried job step is one delivery.
- Okta: the configured ``Authorization`` value; each delivery carries ``eventId``.
- Buildkite: ``X-Buildkite-Signature`` or ``X-Buildkite-Token`` as configured; there is no delivery id,
  so (pipeline, build number, event, build state) identifies one.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from apps.webhooks.choices import BuildkiteAuth, Sender, SpaceAuth
from apps.webhooks.models import WebhookReceiver
from apps.webhooks.signatures import (
    SignatureRefused,
    buildkite_signature_verify,
    shared_secret_verify,
    space_public_key_verify,
    space_public_keys,
    space_signing_key_verify,
)


class MalformedDelivery(Exception):
    """Authentic, but not a delivery this receiver understands; the message says what is missing."""


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    event_type: str


def delivery_authenticate(*, receiver: WebhookReceiver, headers, body: bytes, now: datetime) -> None:
    """Raise ``SignatureRefused`` unless the delivery is authentic for ``receiver``."""
    secret = receiver.secret.reveal()
    settings = receiver.settings or {}
    if receiver.sender == Sender.SPACE:
        timestamp = headers.get("X-Space-Timestamp", "")
        if settings.get("auth", SpaceAuth.SIGNING_KEY) == SpaceAuth.PUBLIC_KEY:
            space_public_key_verify(
                keys=space_public_keys(settings["public_keys"]),
                timestamp=timestamp,
                signature=headers.get("X-Space-Public-Key-Signature", ""),
                body=body,
                now=now,
            )
        else:
            signature = headers.get("X-Space-Signature", "")
            space_signing_key_verify(signing_key=secret, timestamp=timestamp, signature=signature, body=body, now=now)
    elif receiver.sender == Sender.OKTA:
        shared_secret_verify(expected=secret, presented=headers.get("Authorization"), header="Authorization")
    elif settings.get("auth", BuildkiteAuth.SIGNATURE) == BuildkiteAuth.TOKEN:
        shared_secret_verify(expected=secret, presented=headers.get("X-Buildkite-Token"), header="X-Buildkite-Token")
    else:
        buildkite_signature_verify(token=secret, header=headers.get("X-Buildkite-Signature"), body=body, now=now)


def delivery_identify(*, sender: str, payload, headers, body: bytes) -> Delivery:
    """The delivery's id and event type, from an authentic, parsed body."""
    if not isinstance(payload, dict):
        raise MalformedDelivery("the body must be a JSON object")
    if sender == Sender.OKTA:
        event_id = payload.get("eventId")
        events = (payload.get("data") or {}).get("events") if isinstance(payload.get("data"), dict) else None
        if not isinstance(event_id, str) or not event_id or not isinstance(events, list):
            raise MalformedDelivery("an Okta event hook delivery carries eventId and data.events")
        return Delivery(event_id, payload.get("eventType", ""))
    if sender == Sender.BUILDKITE:
        event = payload.get("event") or headers.get("X-Buildkite-Event", "")
        build, pipeline = payload.get("build") or {}, payload.get("pipeline") or {}
        if not event:
            raise MalformedDelivery("a Buildkite delivery names its event (body 'event' or X-Buildkite-Event)")
        if event == "ping":
            return Delivery(f"ping:{hashlib.sha256(body).hexdigest()}", event)
        if not isinstance(build, dict) or not isinstance(pipeline, dict) or "number" not in build:
            raise MalformedDelivery(f"a Buildkite {event} delivery carries build.number and pipeline.slug")
        return Delivery(f"{pipeline.get('slug')}#{build['number']}:{event}:{build.get('state', '')}", event)
    request_id = payload.get("requestId")
    if request_id is not None:
        if not isinstance(request_id, str) or not request_id.strip():
            raise MalformedDelivery("requestId must be a non-empty string (e.g. the job's JB_SPACE_EXECUTION_ID)")
        return Delivery(f"automation:{request_id.strip()}", "automation")
    inner = payload.get("payload")
    class_name = (inner.get("className") if isinstance(inner, dict) else None) or payload.get("className") or "unknown"
    timestamp = headers.get("X-Space-Timestamp", "")
    return Delivery(f"{timestamp}:{hashlib.sha256(body).hexdigest()}", str(class_name))


__all__ = ["Delivery", "MalformedDelivery", "SignatureRefused", "delivery_authenticate", "delivery_identify"]
