"""The demo story ``manage.py seed_demo`` loads: identity sources, people and service accounts, roles
and mappings, applications, gateways, routes and access rules, and finally a policy snapshot.

Everything is written through the services, so every row has its audit event. People and groups
come from vendor payloads recorded in ``demo_data/`` (provenance in ``demo_data/README.md``). What
those payloads lack is invented here, and each invention says so.
"""

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.db import transaction

from apps.api.choices import HubRole
from apps.api.selectors import HUB_ROLE_GROUP_PREFIX
from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.demo_policy import demo_policy_seed
from apps.credentials.models import SigningKey
from apps.edge.services import person_link_to
from apps.identities.choices import IdentityKind, SourceKind
from apps.identities.connectors.okta import identity_record as okta_identity_record
from apps.identities.models import Group, Identity, IdentitySource, Membership
from apps.identities.services import group_create, identity_create, identity_source_create, membership_add
from apps.policies.models import AccessRule, Application, Gateway, PolicySnapshot, Role, RoleMapping, Route
from apps.policies.services import snapshot_build

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
DEMO_ADMIN_USERNAME = "demo"
# One account per hub role: an editor's deploy request needs another person, an admin, to approve
# it (POLICYHUB_DEPLOY_TWO_PERSON), and the auditor shows what read-only access looks like.
DEMO_ACCOUNTS = {
    DEMO_ADMIN_USERNAME: HubRole.ADMIN,
    "demo-editor": HubRole.EDITOR,
    "demo-auditor": HubRole.AUDITOR,
}

# Who the demo logins are at the gateways (browser sign-in), by Okta login: the admin reaches
# Backstage and Airflow's admin UI; the editor is an engineer, whom Airflow's admin UI refuses.
DEMO_PEOPLE = {DEMO_ADMIN_USERNAME: "okta.admin@example.com", "demo-editor": "John.Doe-Assign-User-Role@example.com"}

# The demo's Okta and Space are fake organizations on loopback (``tests/fakes/demo_orgs.py``, which
# ``make demo`` starts) serving this same story, so ``sync_identities`` has something to import.
DEMO_OKTA_TOKEN = "demo-okta-api-token"  # noqa: S105 (the fake demo organization's, nothing real)
DEMO_SPACE_TOKEN = "demo-space-permanent-token"  # noqa: S105


def _sources() -> tuple[dict, ...]:
    return (
        {
            "slug": "okta",
            "name": "Acme Okta",
            "kind": SourceKind.OKTA,
            "base_url": settings.POLICYHUB_DEMO_OKTA_URL,
            "credential": json.dumps({"token": DEMO_OKTA_TOKEN}),
        },
        {
            "slug": "space",
            "name": "Acme Space",
            "kind": SourceKind.SPACE,
            "base_url": settings.POLICYHUB_DEMO_SPACE_URL,
            "credential": json.dumps({"token": DEMO_SPACE_TOKEN}),
        },
        {"slug": "local", "name": "Local service accounts", "kind": SourceKind.LOCAL},
    )


DEMO_SOURCE_SLUGS = ("okta", "space", "local")

OKTA_USER_PAGES = ("okta/users_page_mixed_statuses.json", "okta/users_page_filter_suspended.json")
OKTA_GROUP_PAGES = ("okta/groups_page.json", "okta/groups_page_okta_and_app_group.openapi-example.json")
# Recorded in another run of the same SDK test, when the group had another id: matched by name.
OKTA_MEMBER_PAGES = {"Group-Target-Test": "okta/group_members_page.json"}

# Invented for the demo: the recordings have no admin or contractor group. The ids follow the
# fixtures' convention for invented Okta ids (00g0...), so they cannot pass for recorded ones.
OKTA_INVENTED_GROUPS = (
    {
        "id": "00g0demoplatformadm1",
        "type": "OKTA_GROUP",
        "profile": {"name": "Platform Admins", "description": "Run the data platform (Airflow)"},
    },
    {
        "id": "00g0democontractors1",
        "type": "OKTA_GROUP",
        "profile": {"name": "Contractors", "description": "External contractors"},
    },
)
# Invented for the demo: who sits in which group, by Okta login. No recording lists these members.
# The contractor is also a platform admin, so the deny rule on Airflow's admin UI has something to do.
# The suspended admin, and the one in password recovery, show that an account Okta does not let in
# keeps its memberships but gets no roles.
OKTA_INVENTED_MEMBERSHIPS = {
    "Platform Admins": (
        "okta.admin@example.com",
        "isaac.brock@example.com",
        "John.Doe-Comprehensive@example.com",
        "John.Doe-Suspend@example.com",
    ),
    "Contractors": ("isaac.brock@example.com",),
    "Engineering users": (
        "okta.admin@example.com",
        "John.Doe-Assign-User-Role@example.com",
        "isaac.brock@example.com",
    ),
}

# Invented for the demo: no Space team list was ever recorded (Space was discontinued in 2025).
SPACE_INVENTED_TEAM = {"id": "0demoPkgPubl", "name": "Package Publishers", "members": ("p.empl",)}

# Invented for the demo: no recording holds a service account, so the two the story needs are kept
# in the local source. The Buildkite agent carries the claims of Buildkite's documented OIDC token,
# the same claims a claim mapping would see for a real agent.
_SERVICE_ACCOUNTS = (
    {
        "username": "backstage-backend",
        "display_name": "Backstage backend (Buildkite plugin)",
        "attributes_file": None,
    },
    {
        "username": "buildkite-agent",
        "display_name": "Buildkite agent, organization acme-inc",
        "attributes_file": "buildkite/oidc_token_claims.docs.json",
    },
)


@dataclass(frozen=True)
class DemoSummary:
    """The rows policyhub holds after ``demo_seed``, and whether this run wrote them."""

    existing_sources: tuple[str, ...]  # non-empty: these demo sources already existed, nothing was written
    identity_sources: int
    identities: int
    active_identities: int
    groups: int
    memberships: int
    roles: int
    role_mappings: int
    applications: int
    gateways: int
    routes: int
    access_rules: int
    signing_keys: int
    snapshot_sha256: str

    @property
    def seeded(self) -> bool:
        return not self.existing_sources


@dataclass(frozen=True)
class DemoLogin:
    username: str
    hub_role: str
    password: Secret


def demo_recording(name: str):
    """A recorded payload of ``demo_data/`` (provenance in its README), parsed."""
    return json.loads((DEMO_DATA / name).read_text(encoding="utf-8"))


def _summary(*, existing_sources: tuple[str, ...], snapshot: PolicySnapshot | None) -> DemoSummary:
    return DemoSummary(
        existing_sources=existing_sources,
        identity_sources=IdentitySource.objects.count(),
        identities=Identity.objects.count(),
        active_identities=Identity.objects.filter(active=True).count(),
        groups=Group.objects.count(),
        memberships=Membership.objects.count(),
        roles=Role.objects.count(),
        role_mappings=RoleMapping.objects.count(),
        applications=Application.objects.count(),
        gateways=Gateway.objects.count(),
        routes=Route.objects.count(),
        access_rules=AccessRule.objects.count(),
        signing_keys=SigningKey.objects.count(),
        snapshot_sha256=snapshot.sha256 if snapshot else "",
    )


@transaction.atomic
def demo_seed(*, actor: Actor) -> DemoSummary:
    """Load the demo story and build its snapshot. Skips everything when any demo source exists:
    one transaction wrote them all, so their presence means the story is already there."""
    existing = tuple(IdentitySource.objects.filter(slug__in=DEMO_SOURCE_SLUGS).values_list("slug", flat=True))
    if existing:
        # Building is idempotent: unchanged policy returns the stored snapshot without writing.
        return _summary(existing_sources=existing, snapshot=snapshot_build(actor=actor))
    sources = {spec["slug"]: identity_source_create(actor=actor, **spec) for spec in _sources()}
    okta_groups = _seed_okta(actor=actor, source=sources["okta"])
    space_team = _seed_space(actor=actor, source=sources["space"])
    service_accounts = _seed_service_accounts(actor=actor, source=sources["local"])
    demo_policy_seed(
        actor=actor,
        sources=sources,
        okta_groups=okta_groups,
        space_team=space_team,
        service_accounts=service_accounts,
    )
    return _summary(existing_sources=(), snapshot=snapshot_build(actor=actor))


def _seed_okta(*, actor: Actor, source: IdentitySource) -> dict[str, Group]:
    """Okta users and groups as recorded: login → username, id → external id, profile → attributes."""
    users = {}
    for page in (*OKTA_USER_PAGES, *OKTA_MEMBER_PAGES.values()):
        for user in demo_recording(page):
            users.setdefault(user["id"], user)
    people = {}
    for user in users.values():
        record = okta_identity_record(user)  # exactly what a sync of this user writes
        people[record.username] = identity_create(
            actor=actor,
            source=source,
            external_id=record.external_id,
            username=record.username,
            kind=record.kind,
            email=record.email,
            display_name=record.display_name,
            active=record.active,
            attributes=record.attributes,
        )

    groups = {}
    recorded = [group for page in OKTA_GROUP_PAGES for group in demo_recording(page)]
    for okta_group in (*recorded, *OKTA_INVENTED_GROUPS):
        name = okta_group["profile"]["name"]
        group = group_create(
            actor=actor,
            source=source,
            external_id=okta_group["id"],
            name=name,
            description=okta_group["profile"].get("description") or "",
        )
        groups[name] = group
        # Okta's one built-in group, Everyone, holds every user of the organization.
        if okta_group["type"] == "BUILT_IN":
            logins = list(people)
        elif name in OKTA_MEMBER_PAGES:
            logins = [user["profile"]["login"] for user in demo_recording(OKTA_MEMBER_PAGES[name])]
        else:
            logins = OKTA_INVENTED_MEMBERSHIPS.get(name, ())
        for login in logins:
            membership_add(actor=actor, identity=people[login], group=group)
    return groups


def _space_profiles() -> list[tuple[str, str, dict]]:
    """(username, id, payload) for each Space member a recording names."""
    # The team directory answer holds the id; the username is in its request path (username:John.Doe).
    profile = demo_recording("space/profile_fields_id_about.docs.json")
    people = [("John.Doe", profile["id"], profile)]
    for webhook in (
        "space/webhook_code_review_participant_event.json",
        "space/webhook_profile_organization_event.docs.json",
    ):
        principal = demo_recording(webhook)["payload"]["meta"]["principal"]
        people.append((principal["name"], principal["details"]["user"]["id"], principal))
    return people


def _seed_space(*, actor: Actor, source: IdentitySource) -> Group:
    people = {
        username: identity_create(
            actor=actor, source=source, external_id=space_id, username=username, attributes=payload
        )
        for username, space_id, payload in _space_profiles()
    }
    team = group_create(
        actor=actor,
        source=source,
        external_id=SPACE_INVENTED_TEAM["id"],
        name=SPACE_INVENTED_TEAM["name"],
        description="Publish to the Maven feed",
    )
    for username in SPACE_INVENTED_TEAM["members"]:
        membership_add(actor=actor, identity=people[username], group=team)
    return team


def _seed_service_accounts(*, actor: Actor, source: IdentitySource) -> dict[str, Identity]:
    return {
        account["username"]: identity_create(
            actor=actor,
            source=source,
            external_id=account["username"],
            username=account["username"],
            kind=IdentityKind.SERVICE,
            display_name=account["display_name"],
            attributes=demo_recording(account["attributes_file"]) if account["attributes_file"] else {},
        )
        for account in _SERVICE_ACCOUNTS
    }


@transaction.atomic
def demo_login_reset(*, actor: Actor, username: str, hub_role: str) -> DemoLogin:
    """Create a demo account holding ``hub_role``, or give the existing one a fresh random password;
    return the login. The admin is a superuser (the admin site too); the others hold their hub role
    through its ``policyhub-<role>`` group, as API sessions read it."""
    password = secrets.token_urlsafe(16)
    user, created = get_user_model().objects.get_or_create(username=username)
    superuser = hub_role == HubRole.ADMIN
    user.is_active = True
    user.is_staff = user.is_superuser = superuser
    user.set_password(password)
    user.save()
    if not superuser:
        user.groups.add(AuthGroup.objects.get_or_create(name=f"{HUB_ROLE_GROUP_PREFIX}{hub_role}")[0])
    person = Identity.objects.filter(source__kind=SourceKind.OKTA, username=DEMO_PEOPLE.get(username, "")).first()
    person_link_to(user=user, identity=person, actor=actor)
    audit_record(
        actor=actor,
        action="user.create" if created else "user.password_reset",
        object_type="auth.user",
        object_id=user.pk,
        after={"username": username, "is_staff": superuser, "is_superuser": superuser, "hub_role": hub_role},
    )
    return DemoLogin(username=username, hub_role=hub_role, password=Secret(password))


def demo_logins_reset(*, actor: Actor) -> list[DemoLogin]:
    """The demo's accounts, one per hub role, with fresh passwords."""
    return [
        demo_login_reset(actor=actor, username=username, hub_role=hub_role)
        for username, hub_role in DEMO_ACCOUNTS.items()
    ]
