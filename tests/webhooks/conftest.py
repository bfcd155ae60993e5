"""Receivers of each sender with known secrets, and deliveries signed as each sender signs them."""

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from apps.core.actors import Actor
from apps.core.services import model_create
from apps.webhooks.models import WebhookReceiver

ACTOR = Actor.system("test")
PAYLOADS = Path(__file__).parent / "payloads"
SPACE_KEY = "space-signing-key-5f1e"
OKTA_SECRET = "okta-hook-secret-9c2d"
BUILDKITE_TOKEN = "buildkite-webhook-token-77ab"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def receiver(sender: str, secret: str, **fields) -> WebhookReceiver:
    data = {"sender": sender, "slug": f"{sender}-main", "name": f"{sender} main", "secret": secret, **fields}
    return model_create(model=WebhookReceiver, actor=ACTOR, data=data)


@pytest.fixture
def space_receiver(db):
    return receiver("space", SPACE_KEY)


@pytest.fixture
def okta_receiver(db):
    return receiver("okta", OKTA_SECRET)


@pytest.fixture
def buildkite_receiver(db):
    return receiver("buildkite", BUILDKITE_TOKEN)


def space_headers(body: bytes, *, key: str = SPACE_KEY, at: float | None = None, unit: int = 1000) -> dict:
    timestamp = str(int((at or time.time()) * unit))  # milliseconds, as Space most likely sends
    signature = hmac.new(key.encode(), timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Space-Timestamp": timestamp, "X-Space-Signature": signature}


def buildkite_headers(body: bytes, *, token: str = BUILDKITE_TOKEN, at: float | None = None, event="build.finished"):
    timestamp = str(int(at or time.time()))
    signature = hmac.new(token.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Buildkite-Event": event, "X-Buildkite-Signature": f"timestamp={timestamp},signature={signature}"}


def build_finished(number: int = 2, state: str = "passed") -> bytes:
    build = json.loads(payload("rest_get_build.docs.json"))
    body = {
        "event": "build.finished",
        "build": {**build, "number": number, "state": state},
        "pipeline": build["pipeline"],
        "sender": {"id": "8a7693f8-dbae-4783-9137-84090fce9045", "name": "Some Person"},
    }
    return json.dumps(body).encode()


def post(client, url: str, body: bytes, headers: dict, content_type: str = "application/json"):
    return client.post(url, data=body, content_type=content_type, headers=headers)
