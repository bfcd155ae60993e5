"""The demo story: written only through audited services, idempotent, and deciding as the story says."""

import dataclasses
import json
import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import TextField
from django.db.models.functions import Cast

from apps.api.selectors import user_hub_roles
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.core.demo import DEMO_ADMIN_USERNAME, demo_seed
from apps.edge.models import PersonLink
from apps.identities.models import Group, Identity, IdentitySource, Membership, SyncRun
from apps.identities.sync import identity_source_sync
from apps.policies.decide import ReasonCode, decide
from apps.policies.models import AccessRule, Application, Gateway, PolicySnapshot, Role, RoleMapping, Route
from apps.policies.selectors import compiled_policy
from apps.policies.services import snapshot_build
from tests.fakes.demo_orgs import demo_orgs

ACTOR = Actor.system("test")

# Subjects from the recorded payloads (apps/core/demo_data/README.md) and the invented service accounts.
OKTA_ADMIN = "okta:00unwlw0tbo8E6aVj5d7"  # okta.admin@example.com: ACTIVE, Platform Admins, Engineering users
OKTA_ENGINEER = "okta:00upynhrehMaqXPgU5d7"  # ACTIVE, Engineering users
OKTA_CONTRACTOR = "okta:00uowwcs8cTcBPGMc5d7"  # isaac.brock: PASSWORD_EXPIRED, Platform Admins, Contractors
OKTA_RECOVERY = "okta:00uqrks9ig7XuWV7X5d7"  # RECOVERY (not let in by Okta), Platform Admins
OKTA_SUSPENDED = "okta:00usfdd3eO3sfObs54x6"  # SUSPENDED, Platform Admins
OKTA_STAGED = "okta:00usfbpcapvcITLwi4x6"  # STAGED, from the Group-Target-Test members page
SPACE_PUBLISHER = "space:4TUpet38n3Ow"  # p.empl, Package Publishers team
SPACE_MEMBER = "space:2asfen24Jx6u"  # John.Doe, in no team
BACKSTAGE_BACKEND = "local:backstage-backend"
BUILDKITE_AGENT = "local:buildkite-agent"

ARTIFACT = "artifacts.example.test/artifacts/0184990a/build.log"
JAR = "packages.example.test/maven/com/acme/lib/1.0/lib-1.0.jar"
OFFICE_IP = "10.20.30.40"
INTERNET_IP = "203.0.113.7"
LOGIN_LINE = re.compile(r"Sign in at http://127\.0\.0\.1:8000/login/ as (\S+) / (\S+) \((\w+)\)")


@pytest.fixture
def summary(db):
    return demo_seed(actor=ACTOR)


@pytest.fixture
def policy(summary):
    return compiled_policy(snapshot=PolicySnapshot.objects.get(sha256=summary.snapshot_sha256))


def _identity(subject: str) -> Identity:
    slug, _, external_id = subject.partition(":")
    return Identity.objects.get(source__slug=slug, external_id=external_id)


def test_seeding_creates_the_story(summary):
    assert summary.seeded
    counts = dataclasses.asdict(summary)
    assert counts.pop("snapshot_sha256") == PolicySnapshot.objects.get().sha256
    assert counts == {
        "existing_sources": (),
        "identity_sources": 3,
        "identities": 15,
        "active_identities": 12,  # the suspended, staged and in-recovery Okta users are not
        "groups": 8,
        "memberships": 20,
        "roles": 5,
        "role_mappings": 6,
        "applications": 4,
        "gateways": 2,
        "routes": 6,
        "access_rules": 7,
        "signing_keys": 6,  # per gateway: edge-token, signed-link and identity-assertion
    }
    assert {(s.slug, s.kind, s.base_url) for s in IdentitySource.objects.all()} == {
        ("okta", "okta", "http://127.0.0.1:8701"),  # the demo organizations make demo starts
        ("space", "space", "http://127.0.0.1:8702"),
        ("local", "local", ""),
    }
    assert {(g.name, g.kind, g.listen_address, tuple(g.public_hostnames)) for g in Gateway.objects.all()} == {
        ("haproxy-edge", "haproxy", "127.0.0.1:8081", ("airflow.example.test", "portal.example.test")),
        ("lighttpd-edge", "lighttpd", "127.0.0.1:8082", ("artifacts.example.test", "packages.example.test")),
    }
    assert Application.objects.get(slug="backstage").backstage_entity_ref == "component:default/backstage"


def test_source_credentials_are_stored_encrypted(summary):
    # Cast to plain text so the encrypted field does not decrypt what the database holds.
    stored = dict(IdentitySource.objects.values_list("slug", Cast("credential", TextField())))
    assert stored["local"] == ""
    for slug in ("okta", "space"):
        assert stored[slug].startswith("gAAAA")  # a Fernet token, not the credential's text
        assert json.loads(IdentitySource.objects.get(slug=slug).credential.reveal())["token"].startswith("demo-")


def test_okta_users_keep_login_status_and_profile(summary):
    admin = _identity(OKTA_ADMIN)
    assert (admin.username, admin.email, admin.display_name, admin.active) == (
        "okta.admin@example.com",
        "okta.admin@example.com",
        "Fixture Admin",
        True,
    )
    assert admin.attributes["login"] == "okta.admin@example.com"
    recovering = _identity(OKTA_RECOVERY)
    assert (recovering.display_name, recovering.active) == ("John Doe Comprehensive", False)  # displayName wins
    assert not _identity(OKTA_SUSPENDED).active
    assert not _identity(OKTA_STAGED).active
    everyone = Group.objects.get(source__slug="okta", name="Everyone")
    assert set(everyone.members.all()) == set(Identity.objects.filter(source__slug="okta"))
    assert list(Group.objects.get(name="Group-Target-Test").members.all()) == [_identity(OKTA_STAGED)]
    assert {i.username for i in Identity.objects.filter(kind="service")} == {"backstage-backend", "buildkite-agent"}


def test_every_row_has_its_create_event_and_the_chain_verifies(summary):
    for model in (
        IdentitySource,
        Identity,
        Group,
        Membership,
        Role,
        RoleMapping,
        Application,
        Gateway,
        Route,
        AccessRule,
    ):
        audited = AuditEvent.objects.filter(action=f"{model._meta.model_name}.create")
        assert set(audited.values_list("object_id", flat=True)) == {
            str(pk) for pk in model.objects.values_list("pk", flat=True)
        }, model.__name__
    snapshot = PolicySnapshot.objects.get()
    assert AuditEvent.objects.filter(action="snapshot.build", object_id=str(snapshot.pk)).exists()
    verification = audit_chain_verify()
    assert verification.intact, verification.problem
    assert verification.checked == AuditEvent.objects.count()


def test_seeding_twice_changes_nothing(summary):
    events = AuditEvent.objects.count()
    again = demo_seed(actor=ACTOR)
    assert not again.seeded
    assert set(again.existing_sources) == {"okta", "space", "local"}
    assert dataclasses.replace(again, existing_sources=()) == summary
    assert AuditEvent.objects.count() == events
    assert PolicySnapshot.objects.count() == 1


def test_mappings_grant_the_story_roles(policy):
    assert {subject: set(roles) for subject, roles in policy.identity_roles.items() if roles} == {
        OKTA_ADMIN: {"airflow-admin", "engineer"},
        OKTA_ENGINEER: {"engineer"},
        OKTA_CONTRACTOR: {"airflow-admin", "contractors", "engineer"},
        SPACE_PUBLISHER: {"package-publisher"},
        BACKSTAGE_BACKEND: {"artifact-reader"},  # identity mapping
        BUILDKITE_AGENT: {"artifact-reader"},  # claim mapping on organization_slug
    }


@pytest.mark.parametrize(
    ("subject", "method", "url", "client_ip", "expected"),
    [
        # Airflow's admin UI: admins from private networks; the deny rule beats a contractor's admin role.
        (OKTA_ADMIN, "GET", "airflow.example.test/admin/users", OFFICE_IP, ReasonCode.ALLOWED),
        (OKTA_ADMIN, "GET", "airflow.example.test/admin", INTERNET_IP, ReasonCode.NETWORK_NOT_ALLOWED),
        (OKTA_ENGINEER, "GET", "airflow.example.test/admin", OFFICE_IP, ReasonCode.MISSING_ROLE),
        (OKTA_CONTRACTOR, "GET", "airflow.example.test/admin", OFFICE_IP, ReasonCode.DENIED_BY_RULE),
        # The rest of Airflow: read-only for any active identity; the health check is public.
        (OKTA_CONTRACTOR, "GET", "airflow.example.test/dags", INTERNET_IP, ReasonCode.ALLOWED),
        (OKTA_ENGINEER, "POST", "airflow.example.test/dags", OFFICE_IP, ReasonCode.METHOD_NOT_ALLOWED),
        (None, "GET", "airflow.example.test/dags", OFFICE_IP, ReasonCode.AUTHENTICATION_REQUIRED),
        (None, "GET", "airflow.example.test/health", INTERNET_IP, ReasonCode.ALLOWED),
        # Backstage: any one of the roles, whichever source granted it.
        (OKTA_ENGINEER, "GET", "portal.example.test/backstage/catalog", INTERNET_IP, ReasonCode.ALLOWED),
        (SPACE_PUBLISHER, "GET", "portal.example.test/backstage", INTERNET_IP, ReasonCode.ALLOWED),
        (SPACE_MEMBER, "GET", "portal.example.test/backstage", INTERNET_IP, ReasonCode.MISSING_ROLE),
        # Artifacts: service accounts through an identity mapping and a claim mapping; downloads only.
        (BACKSTAGE_BACKEND, "GET", ARTIFACT, OFFICE_IP, ReasonCode.ALLOWED),
        (BUILDKITE_AGENT, "GET", ARTIFACT, OFFICE_IP, ReasonCode.ALLOWED),
        (BUILDKITE_AGENT, "PUT", ARTIFACT, OFFICE_IP, ReasonCode.METHOD_NOT_ALLOWED),
        # The Maven feed: the Space team publishes; an Okta admin is not a publisher.
        (SPACE_PUBLISHER, "PUT", JAR, OFFICE_IP, ReasonCode.ALLOWED),
        (OKTA_ADMIN, "PUT", JAR, OFFICE_IP, ReasonCode.MISSING_ROLE),
    ],
)
def test_decisions_follow_the_story(policy, subject, method, url, client_ip, expected):
    host, _, path = url.partition("/")
    decision = decide(policy, subject, method, host, f"/{path}", client_ip)
    assert decision.allowed == (expected == ReasonCode.ALLOWED)
    assert expected in {reason.code for reason in decision.reasons}, decision.reasons


def test_the_admin_rule_carries_its_upstream_behaviour(policy):
    decision = decide(policy, OKTA_ADMIN, "GET", "airflow.example.test", "/admin", OFFICE_IP)
    assert decision.route.gateway == "haproxy-edge"
    assert (decision.rule.rate_limit_per_minute, decision.rule.identity_headers) == (60, ("roles", "username"))
    health = decide(policy, None, "GET", "airflow.example.test", "/health", INTERNET_IP)
    assert health.rule.cache_seconds == 5
    elsewhere = decide(policy, OKTA_ADMIN, "GET", "airflow.example.test", "/admin", OFFICE_IP, gateway="lighttpd-edge")
    assert [reason.code for reason in elsewhere.reasons] == [ReasonCode.NO_ROUTE]


def test_a_suspended_okta_user_gets_nothing_but_public_routes(policy):
    assert OKTA_SUSPENDED not in policy.identity_roles
    for route in policy.routes:
        decision = decide(policy, OKTA_SUSPENDED, "GET", route.host, route.path_prefix, OFFICE_IP)
        public = any(rule.auth_mode == "public" for rule in route.allow_rules)
        assert decision.allowed == public, route.key
        if not public:
            assert ReasonCode.IDENTITY_NOT_ACTIVE in {reason.code for reason in decision.reasons}


def _seed_demo_command(*args: str) -> tuple[str, str, str]:
    """The output, and the first login it prints (the admin's)."""
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    username, password, _ = LOGIN_LINE.search(out.getvalue()).groups()
    return out.getvalue(), username, password


@pytest.fixture
def local_login(settings):
    """Password sign-in, as make demo runs (POLICYHUB_LOCAL_LOGIN=1 adds Django's ModelBackend)."""
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "django.contrib.auth.backends.ModelBackend"]


@pytest.mark.django_db
def test_command_prints_a_working_login_every_time(settings, local_login):
    settings.DEBUG = True
    output, username, password = _seed_demo_command()
    assert "Seeded the demo: 3 identity sources, 15 identities (12 active)" in output
    assert username == DEMO_ADMIN_USERNAME
    user = authenticate(username=username, password=password)
    assert user is not None and user.is_superuser and user.is_staff

    output, _, new_password = _seed_demo_command()
    assert "already exist (" in output and "nothing was seeded" in output
    assert new_password != password
    assert authenticate(username=username, password=password) is None
    assert authenticate(username=username, password=new_password) is not None
    audit_text = json.dumps(list(AuditEvent.objects.values("before", "after")))
    assert password not in audit_text and new_password not in audit_text
    assert AuditEvent.objects.filter(action="user.password_reset", object_type="auth.user").count() == 3


@pytest.mark.django_db
def test_command_prints_a_login_per_hub_role(settings, local_login):
    settings.DEBUG = True
    output, _, _ = _seed_demo_command()
    logins = {username: (password, role) for username, password, role in LOGIN_LINE.findall(output)}
    assert {username: role for username, (_, role) in logins.items()} == {
        "demo": "admin", "demo-editor": "editor", "demo-auditor": "auditor",
    }  # fmt: skip
    for username, (password, role) in logins.items():
        user = authenticate(username=username, password=password)
        assert user_hub_roles(user=user) == {role}
        assert user.is_staff == (role == "admin")
    # who they are when they sign in at the demo gateways in a browser
    people = {
        link.user.username: link.identity.username for link in PersonLink.objects.select_related("user", "identity")
    }
    assert people == {"demo": "okta.admin@example.com", "demo-editor": "John.Doe-Assign-User-Role@example.com"}


@pytest.mark.django_db
def test_command_refuses_without_debug_unless_forced(settings, local_login):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG=1"):
        call_command("seed_demo", stdout=StringIO())
    assert not IdentitySource.objects.exists()
    assert not get_user_model().objects.exists()

    _, username, password = _seed_demo_command("--force")
    assert authenticate(username=username, password=password) is not None


def test_demo_gateways_can_mint_edge_tokens(summary):
    from apps.credentials.mint import mint_edge_token

    for gateway in Gateway.objects.all():
        edge = mint_edge_token(identity=_identity(OKTA_ADMIN), gateway=gateway)
        assert edge.claims["aud"] == gateway.name
        assert "airflow-admin" in edge.claims["roles"]


@pytest.mark.django_db
def test_the_demo_sources_sync_from_the_demo_organizations_and_the_story_holds(settings):
    with demo_orgs() as (okta, space):
        settings.POLICYHUB_DEMO_OKTA_URL, settings.POLICYHUB_DEMO_SPACE_URL = okta.url, space.url
        summary = demo_seed(actor=ACTOR)
        roles_before = compiled_policy(snapshot=PolicySnapshot.objects.get(sha256=summary.snapshot_sha256))
        for slug in ("okta", "space"):
            identity_source_sync(source=IdentitySource.objects.get(slug=slug), actor=ACTOR, trigger=Trigger.CLI)

    runs = {run.source.slug: run for run in SyncRun.objects.select_related("source")}
    assert {slug: run.state for slug, run in runs.items()} == {"okta": "succeeded", "space": "succeeded"}
    # the organizations serve the story the seed wrote: Okta's identities come back as they are
    okta_run = runs["okta"]
    assert (okta_run.created, okta_run.updated, okta_run.deactivated, okta_run.unchanged) == (0, 0, 0, 10)
    assert okta_run.counts["memberships_added"] == okta_run.counts["memberships_removed"] == 0
    assert (runs["space"].created, runs["space"].deactivated) == (0, 0)
    policy = compiled_policy(snapshot=snapshot_build(actor=ACTOR))
    assert dict(policy.identity_roles) == dict(roles_before.identity_roles)
