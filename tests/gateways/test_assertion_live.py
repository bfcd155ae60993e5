"""Identity assertions on the real HAProxy and lighttpd, from gateways, keys and roots in the database:
the upstream verifies each with the gateway's root alone, before and after the key rotates, and
never receives a client's copy."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.actors import Actor
from apps.credentials.assertions import ASSERTION_HEADER, assertion_verify
from apps.credentials.choices import KeyPurpose
from apps.credentials.links import signed_link_issue
from apps.credentials.mint import mint_edge_token
from apps.credentials.rotate import rotation_complete, rotation_prepare
from apps.credentials.selectors import assertion_signing_key
from apps.credentials.services import assertion_root_reveal, signing_key_activate, signing_key_generate
from apps.identities import services as identities
from apps.identities.choices import SourceKind
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind, IdentityHeader, MatchKind
from tests.support.gateways import Answer, live_gateway

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
ACTOR = Actor.system("assertion-live")
HOST = "app.example.test"
SPOOFED = {ASSERTION_HEADER: "v1;kid=ia-9999999999-0123456789abcdef;ts=1;sig=" + "A" * 43}


def _route(gateway, prefix: str, auth_mode: str, roles=(), headers=(), **options):
    application = policies.application_create(actor=ACTOR, name=f"app {prefix}", slug=f"app-{prefix.strip('/')}")
    route = policies.route_create(actor=ACTOR, gateway=gateway, application=application, host=HOST,
                                  path_prefix=prefix, upstream_url="http://127.0.0.1:9", **options)  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=auth_mode, roles=roles, identity_headers=headers)


@pytest.fixture(params=[GatewayKind.HAPROXY, GatewayKind.LIGHTTPD])
def setup(request):
    gateway = policies.gateway_create(
        actor=ACTOR, name=f"{request.param}-edge", kind=request.param, listen_address="127.0.0.1:8443",
        public_hostnames=[HOST],
    )  # fmt: skip
    an_hour_ago = timezone.now() - timedelta(hours=1)  # a link issued now falls inside its key's window
    for purpose in KeyPurpose:
        key = signing_key_generate(gateway=gateway, actor=ACTOR, purpose=purpose, now=an_hour_ago)
        signing_key_activate(key=key, actor=ACTOR)
    source = identities.identity_source_create(actor=ACTOR, name="local", slug="local", kind=SourceKind.LOCAL)
    group = identities.group_create(actor=ACTOR, source=source, external_id="devs", name="devs")
    role = policies.role_create(actor=ACTOR, slug="dev")
    policies.role_mapping_create(actor=ACTOR, role=role, match_kind=MatchKind.GROUP, group=group)
    ann = identities.identity_create(
        actor=ACTOR, source=source, external_id="ann", username="ann", email="ann@example.test",
        display_name="Zoë Łukasz",  # not ASCII: the headers travel, and are signed, as UTF-8
    )  # fmt: skip
    identities.membership_add(actor=ACTOR, identity=ann, group=group)
    every = [IdentityHeader.SUBJECT, IdentityHeader.USERNAME, IdentityHeader.EMAIL, IdentityHeader.DISPLAY_NAME,
             IdentityHeader.ROLES]  # fmt: skip
    _route(gateway, "/api", AuthMode.ROLES, roles=[role], headers=every)
    _route(gateway, "/whoami", AuthMode.AUTHENTICATED)
    _route(gateway, "/files", AuthMode.ROLES, roles=[role], methods=["GET", "HEAD"], signed_links=True)
    _route(gateway, "/", AuthMode.PUBLIC)
    return gateway, ann, policies.snapshot_build(actor=ACTOR)


def _upstream_check(answer: Answer, root: str):
    """What an upstream does with what it received (http.server reads header bytes as latin-1)."""
    assert answer.status == 200 and answer.echoed is not None
    received = {name: value.encode("latin-1").decode() for name, value in answer.echoed["headers"].items()}
    return assertion_verify(
        header=received.get(ASSERTION_HEADER.lower()),
        root_secret=root,
        host=received["host"],
        method=answer.echoed["method"],
        path=answer.echoed["path"],
        identity_headers=received,
        now=time.time(),
    )


def test_the_upstream_verifies_what_the_proxy_vouches_for_and_never_gets_a_clients_copy(setup):
    gateway, ann, snapshot = setup
    root = assertion_root_reveal(gateway=gateway, actor=ACTOR).reveal()  # what the operator configured
    token = mint_edge_token(identity=ann, gateway=gateway).token
    link = signed_link_issue(identity=ann, url=f"https://{HOST}/files/build.tgz", actor=ACTOR).url
    with live_gateway(gateway, snapshot) as live:
        verified = _upstream_check(live.request("GET", HOST, "/api/items?page=2", token=token, headers=SPOOFED), root)
        assert verified.kid == assertion_signing_key(gateway=gateway).kid
        assert (verified.subject, verified.roles) == (ann.subject, ("dev",))
        assert verified.headers["X-Policyhub-Display-Name"] == "Zoë Łukasz"

        # the host as the client spelled it, and a rule that forwards no identity header
        answer = live.request("GET", "APP.Example.Test.:8443", "/whoami", token=token, headers=SPOOFED)
        assert _upstream_check(answer, root).headers == {}

        # a public rule and a signed link admit without an identity: no assertion, not even the client's
        for answer in (
            live.request("GET", HOST, "/", token=token, headers=SPOOFED),
            live.request("GET", HOST, link.removeprefix(f"https://{HOST}"), headers=SPOOFED),
        ):
            assert answer.status == 200
            assert ASSERTION_HEADER.lower() not in answer.echoed["headers"]


def test_after_a_rotation_the_new_kid_verifies_under_the_same_root_and_so_does_the_old_one(setup):
    gateway, ann, snapshot = setup
    root = assertion_root_reveal(gateway=gateway, actor=ACTOR).reveal()
    token = mint_edge_token(identity=ann, gateway=gateway).token
    answers = []
    for _deploy in range(2):
        rotation_prepare(gateway=gateway, actor=ACTOR)
        with live_gateway(gateway, snapshot) as live:
            answers.append(live.request("GET", HOST, "/api/x", token=token))
        published = assertion_signing_key(gateway=gateway).kid
        rotation_complete(gateway=gateway, actor=ACTOR, live_kids={KeyPurpose.IDENTITY_ASSERTION: {published}})

    kids = [_upstream_check(answer, root).kid for answer in answers]  # the old one still within its window
    assert kids[0] != kids[1]
