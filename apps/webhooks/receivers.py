"""What each sender's delivery must carry to be accepted: its authentication (checked over the raw
body before anything is parsed), and the id that makes a redelivery recognizable.

- Space: ``X-Space-Timestamp`` with ``X-Space-Signature`` (signing key) or ``X-Space-Public-Key-Signature``
  (public key), as the receiver is configured. Space sends no delivery id; the signed timestamp and
  body identify a delivery (a redelivery of the same request repeats both). A body without Space's
  ``className`` is an automation job's request (``AutomationRequest``), checked here in full; it
  names its execution (``requestId``), so a retried job step is one delivery.
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
    if "className" not in payload:
        return Delivery(f"automation:{automation_request_parse(payload).request_id}", AUTOMATION)
    inner = payload.get("payload")
    class_name = (inner.get("className") if isinstance(inner, dict) else None) or payload.get("className") or "unknown"
    timestamp = headers.get("X-Space-Timestamp", "")
    return Delivery(f"{timestamp}:{hashlib.sha256(body).hexdigest()}", str(class_name))


AUTOMATION = "automation"  # the event type of a Space automation job's request
_AUTOMATION_FIELDS = ("requestId", "sync", "deploy")
_REQUEST_ID_MAX = 150  # within the delivery id's 200 characters


@dataclass(frozen=True)
class AutomationRequest:
    """What a Space automation job asks: sync identity sources, then deploy the snapshot built after
    the sync to gateways, and answer with the deployments to poll.

    ``{"requestId": "<the job's JB_SPACE_EXECUTION_ID>", "sync": ["<source slug>", …],
    "deploy": ["<gateway name>", …] | "all"}``; ``sync`` omitted: the receiver's identity source
    (none: no sync), ``[]``: no sync. ``sources``/``gateways`` are None for those defaults.
    """

    request_id: str
    sources: tuple[str, ...] | None
    gateways: tuple[str, ...] | None  # None: every deployable gateway


def _names(payload: dict, key: str, what: str) -> tuple[str, ...]:
    value = payload[key]
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise MalformedDelivery(f"{key} must be a list of {what}")
    return tuple(dict.fromkeys(name.strip() for name in value))


def automation_request_parse(payload: dict) -> AutomationRequest:
    """The request an automation job's body makes, or ``MalformedDelivery`` saying what is wrong."""
    unknown = sorted(set(payload) - set(_AUTOMATION_FIELDS))
    if unknown:
        raise MalformedDelivery(
            f"unknown field(s) {', '.join(unknown)}: an automation request carries requestId, sync and deploy "
            "(a Space webhook payload carries className)"
        )
    request_id = payload.get("requestId")
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id.strip()) > _REQUEST_ID_MAX:
        raise MalformedDelivery(
            f"requestId must be a non-empty string of at most {_REQUEST_ID_MAX} characters "
            "(e.g. the job's JB_SPACE_EXECUTION_ID)"
        )
    sources = _names(payload, "sync", "identity source slugs") if "sync" in payload else None
    if "deploy" not in payload:
        raise MalformedDelivery('deploy is required: a list of gateway names, or "all"')
    gateways = None if payload["deploy"] == "all" else _names(payload, "deploy", 'gateway names, or "all"')
    if gateways == ():
        raise MalformedDelivery('deploy names no gateway: list at least one, or "all"')
    return AutomationRequest(request_id.strip(), sources, gateways)


__all__ = [
    "AUTOMATION",
    "AutomationRequest",
    "Delivery",
    "MalformedDelivery",
    "SignatureRefused",
    "automation_request_parse",
    "delivery_authenticate",
    "delivery_identify",
]
