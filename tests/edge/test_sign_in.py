"""policyhub's side of browser sign-in (apps/edge): who may be sent back to which page with a token
for which gateway, what is refused and recorded, and signing out."""

from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.credentials.selectors import signing_key_for_minting
from apps.credentials.services import certificate_add
from apps.edge.models import PersonLink
from apps.identities import services as identities
from apps.identities.choices import SourceKind
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind
from apps.ui.oidc import HubRoleOIDCBackend
from tests.support.policy_scene import (
    ACTOR,
    scene_gateway,
    scene_member,
    scene_role_for_group,
    scene_route,
    scene_source,
)
from tests.support.tls import self_signed

pytestmark = pytest.mark.django_db
STATE = "s" * 43
PAGE = "https://portal.example.test/backstage/catalog?filter=kind%3Dapi"


@pytest.fixture
def portal():
    """A lighttpd gateway over TLS for portal.example.test: /backstage needs the engineer role."""
    okta = scene_source(SourceKind.OKTA, "okta")
    engineers = identities.group_create(actor=ACTOR, source=okta, external_id="00g-eng", name="Engineers")
    engineer = scene_role_for_group("engineer", engineers)
    gateway = scene_gateway(GatewayKind.LIGHTTPD, "portal-edge", "portal.example.test", "*.tools.example.test")
    chain, key = self_signed("portal.example.test")
    certificate_add(gateway=gateway, chain_pem=chain, private_key_pem=key, actor=ACTOR)
    backstage = scene_route(gateway, "portal.example.test", "/backstage")
    policies.access_rule_create(actor=ACTOR, route=backstage, auth_mode=AuthMode.ROLES, roles=[engineer])
    jane = scene_member(okta, "00u-jane", engineers, display_name="Jane Dawe")
    joe = scene_member(okta, "00u-joe", display_name="Joe Bloggs")
    policies.snapshot_build(actor=ACTOR)
    return gateway, jane, joe


def _browser(identity=None) -> Client:
    user = get_user_model().objects.create_user(f"oidc-{identity.external_id if identity else 'nobody'}")
    if identity is not None:
        PersonLink.objects.create(user=user, identity=identity)
    client = Client()
    client.force_login(user)
    return client


def _sign_in(client: Client, rd: str = PAGE, gateway: str = "portal-edge", state: str = STATE):
    return client.get("/edge/signin", {"gateway": gateway, "rd": rd, "state": state})


def test_a_person_with_the_role_is_sent_to_the_gateway_callback_with_a_sign_in_token(portal):
    gateway, jane, _ = portal

    answer = _sign_in(_browser(jane))

    assert answer.status_code == 302
    callback = urlsplit(answer["Location"])
    assert (callback.scheme, callback.netloc, callback.path) == ("https", "portal.example.test", "/.policyhub/callback")
    query = parse_qs(callback.query)
    assert query["rd"] == ["/backstage/catalog?filter=kind%3Dapi"]
    key = signing_key_for_minting(gateway=gateway, now=timezone.now())  # lighttpd's HS256: the gateway's own secret
    claims = jwt.decode(query["token"][0], key.private_material.reveal(), algorithms=["HS256"], audience="portal-edge")
    assert (claims["sub"], claims["purpose"], claims["nonce"]) == ("okta:00u-jane", "browser-sign-in", STATE)
    assert claims["roles"] == ["engineer"]
    assert claims["exp"] - claims["iat"] == 900
    assert answer["Cache-Control"].startswith("max-age=0")
    issued = AuditEvent.objects.get(action="edge_sign_in.issue")
    assert issued.after["subject"] == "okta:00u-jane"
    assert issued.after["url"] == PAGE
    assert query["token"][0] not in str(issued.after)


def test_a_wildcard_host_of_the_gateway_is_a_place_to_return_to(portal):
    gateway, jane, _ = portal
    route = scene_route(gateway, "*.tools.example.test", "/")
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.AUTHENTICATED)
    policies.snapshot_build(actor=ACTOR)

    answer = _sign_in(_browser(jane), rd="https://grafana.tools.example.test:8443/d/1")

    assert answer["Location"].startswith("https://grafana.tools.example.test:8443/.policyhub/callback?")


@pytest.mark.parametrize(
    "rd",
    [
        "https://evil.example.test/backstage/",  # another host
        "http://portal.example.test/backstage/",  # not the scheme the gateway speaks: the token would go in clear
        "https://attacker@portal.example.test/backstage/",
        "https://portal.example.test\\@evil.example.test/",
        "//portal.example.test/backstage/",
        "/backstage/",
        "https://portal.example.test:99999/backstage/",
        "javascript:alert(1)",
    ],
)
def test_an_open_redirect_is_refused_with_400_and_recorded(portal, rd):
    _, jane, _ = portal

    answer = _sign_in(_browser(jane), rd=rd)

    assert answer.status_code == 400
    assert b"Sign-in refused" in answer.content
    refused = AuditEvent.objects.get(action="edge_sign_in.refuse")
    assert (refused.after["reason"], refused.after["return_url"]) == ("open_redirect", rd)
    assert not AuditEvent.objects.filter(action="edge_sign_in.issue").exists()


@pytest.mark.parametrize(("gateway", "state"), [("nope", STATE), ("portal-edge", ""), ("portal-edge", "short")])
def test_an_unknown_gateway_or_a_missing_state_is_refused(portal, gateway, state):
    _, jane, _ = portal
    answer = _sign_in(_browser(jane), gateway=gateway, state=state)
    assert answer.status_code == 400
    assert AuditEvent.objects.filter(action="edge_sign_in.refuse").count() == 1


def test_a_person_without_the_role_sees_which_role_is_missing(portal):
    _, _, joe = portal

    answer = _sign_in(_browser(joe))

    assert answer.status_code == 403
    page = answer.content.decode()
    assert "Access denied" in page
    assert "Requires one of the roles: engineer." in page
    assert "Joe Bloggs" in page
    refused = AuditEvent.objects.get(action="edge_sign_in.refuse")
    assert refused.after["reasons"] == ["requires one of the roles: engineer"]


def test_a_deactivated_identity_cannot_renew_its_sign_in(portal):
    _, jane, _ = portal
    browser = _browser(jane)
    assert _sign_in(browser).status_code == 302
    identities.identity_update(actor=ACTOR, identity=jane, data={"active": False})
    policies.snapshot_build(actor=ACTOR)

    answer = _sign_in(browser)

    assert answer.status_code == 403
    assert "is not active" in answer.content.decode()


def test_someone_who_is_no_identity_is_told_so(portal):
    answer = _sign_in(_browser())
    assert answer.status_code == 403
    assert "not linked to an identity" in answer.content.decode()


def test_a_browser_without_a_policyhub_session_signs_in_first_and_comes_back(portal, settings):
    answer = Client().get("/edge/signin", {"gateway": "portal-edge", "rd": PAGE, "state": STATE})
    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer["Location"]).query)["next"][0]
    assert urlsplit(answer["Location"]).path == "/login/"
    assert parse_qs(urlsplit(back).query) == {"gateway": ["portal-edge"], "rd": [PAGE], "state": [STATE]}

    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "http://localhost:1/oauth2/authorize"
    settings.POLICYHUB_LOCAL_LOGIN = False
    answer = Client().get("/edge/signin", {"gateway": "portal-edge", "rd": PAGE, "state": STATE})
    assert urlsplit(answer["Location"]).path == "/oidc/authenticate/"


def test_signing_out_ends_the_session_and_is_recorded(portal):
    _, jane, _ = portal
    browser = _browser(jane)

    answer = browser.get("/edge/signout", {"gateway": "portal-edge"})

    assert answer.status_code == 302
    assert answer["Location"].endswith("/edge/signed-out")
    assert _sign_in(browser).status_code == 302  # to the login page now
    assert urlsplit(_sign_in(browser)["Location"]).path == "/login/"
    signed_out = AuditEvent.objects.get(action="edge_sign_in.sign_out")
    assert signed_out.after == {"gateway": "portal-edge", "user": "oidc-00u-jane"}
    assert b"You are signed out" in browser.get(answer["Location"]).content


def test_each_oidc_sign_in_links_the_person_to_the_identity_with_the_provider_subject(portal):
    _, jane, _ = portal
    backend = HubRoleOIDCBackend()
    user = backend.create_user({"sub": "00u-jane", "email": "jane@example.test"})
    assert user.person_link.identity == jane

    backend.update_user(user, {"sub": "00u-somebody-else"})

    assert not PersonLink.objects.filter(user=user).exists()
    actions = list(AuditEvent.objects.filter(action__startswith="person_link.").values_list("action", flat=True))
    assert actions == ["person_link.create", "person_link.delete"]


def test_the_sign_in_page_on_the_way_to_a_gateway_lets_its_form_end_there(portal):
    """CSP form-action covers the redirects after a form is sent: a password sign-in's chain ends at
    the gateway's callback, which must be allowed on that page only, and only for a page of the gateway."""

    def form_action(rd: str) -> str:
        query = urlencode({"gateway": "portal-edge", "rd": rd, "state": STATE})
        answer = Client().get("/login/", {"next": f"/edge/signin?{query}"})
        policy = dict(
            part.strip().split(" ", 1) for part in answer["Content-Security-Policy"].split(";") if part.strip()
        )
        return policy["form-action"]

    assert form_action(PAGE) == "'self' https://portal.example.test"
    assert form_action("https://evil.example.test/") == "'self'"
    assert "portal" not in Client().get("/login/")["Content-Security-Policy"]
