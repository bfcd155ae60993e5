"""Usability basics on every page: an empty list says what to do next (naming commands and admin
pages that exist), and every control a person fills in has a label."""

import re

import pytest
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve

from apps.core.actors import Actor
from apps.policies import services as policies
from tests.factories import DeploymentFactory, GatewayFactory, IdentityFactory
from tests.ui.demo import demo_with_everything
from tests.ui.pages import empty_states, every_page_url, signed_in, unlabelled_controls

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
ACTION = re.compile(r"\b(add|create|import|build|request|clear|widen|give|check)\b", re.IGNORECASE)


def _empty_states_of(client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    page = response.content.decode()
    for command in re.findall(r"manage\.py (\w+)", page):
        assert command in get_commands(), f"{url} names manage.py {command}, which does not exist"
    for link in re.findall(r'href="(/[^"?#]*)', page):
        if not link.startswith(settings.STATIC_URL):
            resolve(link)  # every page it sends the reader to exists
    return empty_states(page)


def _assert_each_says_what_to_do(url: str, states: list[str], expected: int) -> None:
    assert len(states) == expected, (url, states)
    for state in states:
        assert ACTION.search(state), f"{url}: {state!r} does not say what to do"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/ui/", 4),  # sources, gateways, deployments, audit events
        ("/ui/identities/", 1),
        ("/ui/mappings/", 1),
        ("/ui/applications/", 1),
        ("/ui/audit/", 1),
        ("/ui/deploy/", 2),  # no snapshot, no deploy requests
    ],
)
def test_each_list_on_an_empty_database_says_what_to_do(client, url, expected):
    signed_in(client, "admin")

    _assert_each_says_what_to_do(url, _empty_states_of(client, url), expected)


def test_filters_that_match_nothing_say_how_to_widen_them(client):
    IdentityFactory()
    signed_in(client, "admin")

    for url in ("/ui/identities/?search=nobody", "/ui/mappings/?role=nobody", "/ui/audit/?actor=nobody"):
        states = _empty_states_of(client, url)
        _assert_each_says_what_to_do(url, states, 1)
        assert "clear a filter" in states[0]


def test_each_empty_list_on_an_object_page_says_what_to_do(client):
    """An application without routes, a route without rules, an identity without roles before any
    snapshot, a gateway without deployments, a deployment no worker took up yet."""
    gateway = GatewayFactory()
    bare = policies.application_create(actor=ACTOR, name="Bare", slug="bare")
    application = policies.application_create(actor=ACTOR, name="Wiki", slug="wiki")
    route = policies.route_create(
        actor=ACTOR, application=application, gateway=gateway, host="wiki.example.test", path_prefix="/",
        upstream_url="http://127.0.0.1:9000",
    )  # fmt: skip
    identity = IdentityFactory()
    deployment = DeploymentFactory(state="waiting", finished_at=None)  # on a gateway of its own
    signed_in(client, "admin")

    for url, expected in [
        (f"/ui/applications/{bare.pk}/", 1),
        (f"/ui/routes/{route.pk}/", 1),
        (f"/ui/applications/{application.pk}/matrix/", 1),
        (f"/ui/identities/{identity.pk}/", 2),  # no role mapping, no snapshot
        (f"/ui/deploy/gateways/{gateway.pk}/", 1),
        (f"/ui/deployments/{deployment.pk}/", 1),
    ]:
        _assert_each_says_what_to_do(url, _empty_states_of(client, url), expected)


def test_every_control_on_every_page_has_a_label(client):
    demo_with_everything()
    signed_in(client, "admin")

    for url in [*every_page_url(), "/ui/explain/?url=nowhere.example.test/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert not unlabelled_controls(response.content.decode()), url
