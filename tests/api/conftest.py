"""API fixtures: service tokens of each hub role, an identity with roles, a gateway with an active key."""

import itertools

import pytest
from rest_framework.test import APIClient

from apps.api.services import service_token_create
from apps.core.actors import Actor
from apps.credentials.services import signing_key_activate, signing_key_generate
from tests.factories import GatewayFactory

ACTOR = Actor.system("test")


@pytest.fixture
def api():
    return APIClient()


def gateway_with_active_key(name: str, **fields):
    gateway = GatewayFactory(name=name, **fields)
    signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    return gateway


@pytest.fixture
def haproxy_gateway():
    return gateway_with_active_key("haproxy-edge", kind="haproxy")


@pytest.fixture
def make_token():
    """``make_token(role, identity=None, name=...)`` -> the plaintext of a new service token."""
    numbers = itertools.count()

    def make(role: str = "service", identity=None, name: str = "") -> str:
        issued = service_token_create(name=name or f"token-{next(numbers)}", role=role, identity=identity, actor=ACTOR)
        return issued.plaintext.reveal()

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
