"""Issuing signed links: judged against the newest snapshot, signed with the gateway's link key, audited."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.links import LinkRefused, link_mac, signed_link_issue
from apps.credentials.models import SigningKey
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.policies import services as policy_services
from tests.factories import (
    ApplicationFactory,
    GatewayFactory,
    GroupFactory,
    IdentityFactory,
    IdentitySourceFactory,
    RoleFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def gateway():
    gateway = GatewayFactory(name="artifacts-edge", kind="lighttpd", public_hostnames=["artifacts.example.test"])
    route = policy_services.route_create(
        actor=ACTOR, gateway=gateway, application=ApplicationFactory(), host="artifacts.example.test",
        path_prefix="/builds", upstream_url="http://127.0.0.1:9000", signed_links=True,
    )  # fmt: skip
    policy_services.access_rule_create(
        actor=ACTOR, route=route, auth_mode="roles", roles=[RoleFactory(slug="ci")], allowed_cidrs=["10.20.0.0/16"]
    )
    return gateway


@pytest.fixture
def agent(gateway):
    source = IdentitySourceFactory(slug="space")
    identity = IdentityFactory(source=source, external_id="agent-1")
    group = GroupFactory(source=source, name="ci-agents")
    identity.groups.add(group)
    ci = gateway.routes.get().rules.get().roles.get()
    policy_services.role_mapping_create(actor=ACTOR, role=ci, match_kind="group", group=group)
    return identity


@pytest.fixture
def link_key(gateway):
    key = signing_key_generate(gateway=gateway, actor=ACTOR, purpose=KeyPurpose.SIGNED_LINK, now=NOW)
    return signing_key_activate(key=key, actor=ACTOR)


def _issue(identity, url="https://artifacts.example.test/builds/42/app.tgz", **kwargs):
    policy_services.snapshot_build(actor=ACTOR)
    return signed_link_issue(identity=identity, url=url, actor=ACTOR, now=NOW, **kwargs)


def test_a_link_carries_kid_expiry_rule_and_a_mac_over_them_host_and_path(agent, link_key):
    link = _issue(agent, ttl=timedelta(minutes=5))
    parts = urlsplit(link.url)
    query = parse_qs(parts.query)
    assert parts.path == "/builds/42/app.tgz"
    assert list(query) == ["ph_kid", "ph_exp", "ph_rule", "ph_sig"]
    assert query["ph_kid"] == [link_key.kid]
    assert int(query["ph_exp"][0]) == int((NOW + timedelta(minutes=5)).timestamp())
    expected = link_mac(
        link_key.private_material.reveal(), expires=int(query["ph_exp"][0]), rule=link.rule,
        host="artifacts.example.test", path="/builds/42/app.tgz",
    )  # fmt: skip
    assert query["ph_sig"] == [expected]
    assert link.url not in repr(link)
    event = AuditEvent.objects.get(action="signed_link.issue")
    assert event.after["rule"] == link.rule
    assert event.after["route"] == "artifacts-edge/artifacts.example.test/builds"
    assert link.url not in str(event.after)


def test_the_edge_token_key_never_signs_links(agent, gateway):
    signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    with pytest.raises(LinkRefused, match="no active signed-link key"):
        _issue(agent)


def test_link_keys_are_hmac_and_one_is_active_per_purpose(gateway, link_key):
    assert link_key.algorithm == "HS256"
    edge = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    assert {edge.state, link_key.state} == {"active"}
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.filter(pk=edge.pk).update(purpose=KeyPurpose.SIGNED_LINK)


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("https://artifacts.example.test/builds/1?x=1", {}, "without query"),
        ("https://artifacts.example.test/elsewhere", {}, "no route"),
        ("https://artifacts.example.test/builds/1", {"ttl": timedelta(seconds=5)}, "lifetime must be between"),
        ("https://artifacts.example.test/builds/1", {"ttl": timedelta(days=2)}, "lifetime must be between"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(agent, link_key, url, kwargs, message):
    with pytest.raises(LinkRefused, match=message):
        _issue(agent, url, **kwargs)


def test_an_identity_without_the_role_gets_no_link(gateway, link_key):
    stranger = IdentityFactory(source=IdentitySourceFactory(slug="okta"))
    with pytest.raises(LinkRefused, match="requires one of the roles: ci"):
        _issue(stranger)
    stranger.active = False
    with pytest.raises(LinkRefused, match="not active"):
        _issue(stranger)
    assert not AuditEvent.objects.filter(action="signed_link.issue").exists()
