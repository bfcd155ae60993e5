"""A Space organization synced end to end: the real connector against the fake Space, the sync
service writing, a role mapping on a team turning into access and out of it again."""

import pytest

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.identities.choices import SyncState
from apps.identities.models import Group, Identity
from apps.identities.sync import identity_source_sync
from tests.fakes.space import FakeSpace
from tests.support.gated_route import allowed_now, group_gated_route
from tests.support.sources import space_source

ACTOR = Actor.system("space-sync-test")
HOST = "packages.test"


@pytest.fixture
def space():
    with FakeSpace(client_secret="s3cret-space-client") as fake:
        yield fake


@pytest.fixture
def source(db, space):
    return space_source(space)


def _sync(source):
    run = identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI)
    run.refresh_from_db()
    assert run.state == SyncState.SUCCEEDED, run.messages
    return run


def _may_publish(subject: str) -> bool:
    return allowed_now(subject, "PUT", HOST, "/maven/lib.jar")


def test_a_space_team_mapped_to_a_role_grants_access_to_its_and_its_sub_teams_members(space, source):
    release = space.add_team("Release")
    hotfix = space.add_team("Release hotfixes", parent=release)
    ann = space.add_profile("Ann.Lee", first="Ann", last="Lee")
    ben = space.add_profile("Ben.Ode", first="Ben", last="Ode")
    space.add_profile("Cy.Ray", first="Cy", last="Ray")
    space.add_membership(ann, release)
    space.add_membership(ben, hotfix)

    run = _sync(source)

    assert (run.created, run.counts["groups_created"]) == (3, 2)
    assert Identity.objects.get(username="Ann.Lee").display_name == "Ann Lee"
    group_gated_route(
        group=Group.objects.get(source=source, name="Release"),
        role="package-publisher",
        host=HOST,
        path_prefix="/maven",
    )
    assert _may_publish(f"space:{ann}") and _may_publish(f"space:{ben}")  # ben through the sub-team

    space.profiles[ben]["archived"] = True  # an admin archives Ben in Space
    space.move_member(ann, source=release, target=space.add_team("Design"))

    run = _sync(source)

    assert run.deactivated == 1 and run.counts["roles_changed"] == 2
    assert not _may_publish(f"space:{ann}") and not _may_publish(f"space:{ben}")


def test_a_sync_failing_on_a_permission_keeps_the_last_import_and_never_shows_the_secret(space, source, caplog):
    space.add_profile("Ann.Lee")
    _sync(source)
    space.permissions.discard("Team.View")

    run = identity_source_sync(source=source, actor=ACTOR, trigger=Trigger.CLI)

    run.refresh_from_db()
    assert run.state == SyncState.FAILED
    assert "Team.View" in run.messages[-1]["text"] and "nothing was changed" in run.messages[-1]["text"]
    assert Identity.objects.filter(source=source, active=True).count() == 1
    leaked = [text for text in (run.messages[-1]["text"], caplog.text) if "s3cret-space-client" in text]
    assert leaked == []
