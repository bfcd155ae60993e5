"""Effective roles from role mappings: groups, single identities, claims, source scope, inactivity."""

import pytest
from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.identities.services import identity_deactivate
from apps.policies import services
from apps.policies.roles import effective_roles, effective_roles_by_identity, role_grants, role_grants_for
from apps.policies.snapshot import snapshot_content
from tests.factories import GroupFactory, IdentityFactory, IdentitySourceFactory, MembershipFactory, RoleFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def world():
    okta, space = IdentitySourceFactory(slug="okta"), IdentitySourceFactory(slug="space", kind="space")
    admins = GroupFactory(source=okta, name="platform-admins")
    release = GroupFactory(source=space, name="Release")
    alice = IdentityFactory(source=okta, username="alice", attributes={"department": "Data", "teams": ["x", "y"]})
    bob = IdentityFactory(source=space, username="bob", attributes={"department": "Data", "contractor": True})
    carol = IdentityFactory(source=okta, username="carol")
    MembershipFactory(identity=alice, group=admins)
    MembershipFactory(identity=bob, group=release)
    roles = {slug: RoleFactory(slug=slug) for slug in ("airflow-admin", "publisher", "data", "ci", "contractor", "y")}
    mapping = services.role_mapping_create
    mapping(actor=ACTOR, role=roles["airflow-admin"], match_kind="group", group=admins)
    mapping(actor=ACTOR, role=roles["publisher"], match_kind="group", group=release)
    mapping(
        actor=ACTOR, role=roles["data"], match_kind="claim", claim_name="department", claim_value="Data", source=okta
    )
    mapping(actor=ACTOR, role=roles["ci"], match_kind="identity", identity=carol)
    mapping(actor=ACTOR, role=roles["contractor"], match_kind="claim", claim_name="contractor", claim_value="true")
    mapping(actor=ACTOR, role=roles["y"], match_kind="claim", claim_name="teams", claim_value="y")
    mapping(actor=ACTOR, role=roles["ci"], match_kind="group", group=admins, enabled=False)
    return {"alice": alice, "bob": bob, "carol": carol}


def test_each_kind_of_mapping_grants_its_role(world):
    assert effective_roles(world["alice"]) == {"airflow-admin", "data", "y"}
    # bob's department claim matches, but that mapping is scoped to the Okta source
    assert effective_roles(world["bob"]) == {"publisher", "contractor"}
    assert effective_roles(world["carol"]) == {"ci"}


def test_grants_say_which_mapping_gave_each_role(world):
    grants = role_grants(world["alice"])
    assert [(g.role, g.because) for g in grants] == [
        ("airflow-admin", "group platform-admins"),
        ("data", "claim department=Data"),
        ("y", "claim teams=y"),
    ]


def test_grants_for_several_identities_at_once_are_each_ones_own_and_narrow_to_roles(world):
    identities = list(world.values())
    together = role_grants_for(identities)
    assert dict(together) == {identity.pk: role_grants(identity) for identity in identities}
    assert [(g.role, g.because) for g in together[world["carol"].pk]] == [("ci", "identity carol")]
    narrowed = role_grants_for(identities, roles={"publisher", "y"})
    assert {pk: [g.role for g in grants] for pk, grants in narrowed.items()} == {
        world["alice"].pk: ["y"],
        world["bob"].pk: ["publisher"],
        world["carol"].pk: [],
    }
    assert not any(role_grants_for(identities, roles=set()).values())


def test_inactive_identities_have_no_roles(world):
    identity_deactivate(identity=world["alice"], actor=ACTOR)
    assert effective_roles(world["alice"]) == frozenset()
    assert world["alice"].pk not in effective_roles_by_identity()
    assert "okta:" + world["alice"].external_id not in snapshot_content()["identities"]


def test_bulk_computation_agrees_with_the_single_one(world):
    bulk = effective_roles_by_identity()
    for identity in world.values():
        assert bulk[identity.pk] == set(effective_roles(identity))


def test_role_mapping_fields_must_fit_the_match_kind(world):
    role = RoleFactory()
    with pytest.raises(ValidationError) as error:
        services.role_mapping_create(actor=ACTOR, role=role, match_kind="group", claim_name="x")
    assert error.value.message_dict == {
        "group": ["A group membership mapping needs group."],
        "claim_name": ["Only claim (attribute) value mappings set claim name."],
    }
    other_source = IdentitySourceFactory()
    with pytest.raises(ValidationError) as error:
        services.role_mapping_create(
            actor=ACTOR, role=role, match_kind="identity", identity=world["alice"], source=other_source
        )
    assert "another source" in error.value.message_dict["identity"][0]
