"""API fixtures: service tokens of each hub role, an identity with roles, a gateway with an active key."""

import itertools

import pytest
from rest_framework.test import APIClient

from apps.api.services import service_token_create
from apps.core.actors import Actor
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.policies import services as policy_services
from tests.factories import GatewayFactory, GroupFactory, IdentityFactory, IdentitySourceFactory, RoleFactory

ACTOR = Actor.system("test")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def airflow_admin():
    """okta:00u1abc, with the roles airflow-admin and viewer through a group."""
    source = IdentitySourceFactory(slug="okta")
    identity = IdentityFactory(source=source, external_id="00u1abc", username="alice@example.test")
    group = GroupFactory(source=source, name="platform-admins")
    identity.groups.add(group)
    for slug in ("airflow-admin", "viewer"):
        policy_services.role_mapping_create(actor=ACTOR, role=RoleFactory(slug=slug), match_kind="group", group=group)
    return identity


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
