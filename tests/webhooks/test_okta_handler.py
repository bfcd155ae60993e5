"""The Okta event hook handler, through the inbox: each event type refreshes the user it names from
the fake Okta (real HTTP on loopback), and a change of effective roles builds a snapshot and queues
a deploy of exactly the gateways whose routes the user now reaches differently.

Deliveries are the recorded envelope (``event_hook_delivery_group_user_membership_remove.json``)
holding the recorded membership event or Okta's documented ``user.lifecycle.deactivate`` event,
with their user and group ids pointed at the fake's."""

import copy
import json
import uuid

import pytest

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.gateways.choices import DeploymentState
from apps.gateways.models import Deployment
from apps.identities.models import Group, Identity
from apps.identities.sync import identity_source_sync
from apps.policies import services as policies
from apps.policies.choices import AuthMode, MatchKind
from apps.policies.models import PolicySnapshot, Role
from apps.webhooks.choices import EventState
from apps.webhooks.inbox import inbound_event_accept, inbound_event_process, inbound_events_sweep
from apps.webhooks.models import InboundEvent
from tests.fakes.okta import FakeOkta
from tests.support.sources import okta_source
from tests.webhooks.conftest import OKTA_SECRET, payload, post, receiver

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("okta-hook-test")
TOKEN = "00okta-hook-api-token-never-shown"
ENVELOPE = json.loads(payload("event_hook_delivery_group_user_membership_remove.json"))
MEMBERSHIP_EVENT = ENVELOPE["data"]["events"][0]
LIFECYCLE_EVENT = json.loads(payload("event_user_lifecycle_deactivate.docs.json"))
SESSION_DELIVERY = json.loads(payload("event_hook_delivery_user_session_start.docs.json"))


class World:
    """The fake Okta with alice in airflow-admins (role airflow-admin), synced; gateways edge-a (a
    route only airflow-admin reaches), edge-b (a route only viewer reaches: nobody's role changes
    it) and manual-edge (an airflow-admin route, no deploy directory)."""

    def __init__(self, okta: FakeOkta, tmp_path):
        self.okta = okta
        self.alice = okta.add_user(login="alice@acme.test", profile={"department": "Sales"})
        self.bob = okta.add_user(login="bob@acme.test")
        self.admins = okta.add_group("airflow-admins", members=[self.alice, self.bob])
        self.staff = okta.add_group("staff")
        self.source = okta_source(okta, TOKEN)
        self.receiver = receiver("okta", OKTA_SECRET, identity_source=self.source)
        self.tmp_path = tmp_path

    def sync(self) -> None:
        run = identity_source_sync(source=self.source, actor=ACTOR, trigger=Trigger.SCHEDULE, full=True)
        assert run.state == "succeeded", run.messages

    def policy(self) -> None:
        admin, viewer = Role.objects.create(slug="airflow-admin"), Role.objects.create(slug="viewer")
        group = Group.objects.get(source=self.source, external_id=self.admins)
        policies.role_mapping_create(actor=ACTOR, role=admin, match_kind=MatchKind.GROUP, group=group)
        policies.role_mapping_create(
            actor=ACTOR, role=admin, match_kind=MatchKind.CLAIM, claim_name="department", claim_value="Data"
        )
        self.gateways = {
            "edge-a": self._gated("edge-a", admin, deployable=True),
            "edge-b": self._gated("edge-b", viewer, deployable=True),
            "manual-edge": self._gated("manual-edge", admin, deployable=False),
        }

    def _gated(self, name: str, role: Role, *, deployable: bool):
        host = f"{name}.acme.test"
        directory = str(self.tmp_path / name) if deployable else ""
        gateway = policies.gateway_create(
            actor=ACTOR, name=name, kind="haproxy", listen_address="127.0.0.1:8443", public_hostnames=[host],
            deploy_directory=directory,
        )  # fmt: skip
        application = policies.application_create(actor=ACTOR, name=name, slug=name)
        route = policies.route_create(
            actor=ACTOR, gateway=gateway, application=application, host=host, upstream_url="http://127.0.0.1:9000"
        )
        policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[role])
        return gateway

    def identity(self, user_id: str) -> Identity:
        return Identity.objects.get(source=self.source, external_id=user_id)


@pytest.fixture
def okta():
    with FakeOkta(seed=False) as fake:
        fake.add_api_token(TOKEN)
        yield fake


@pytest.fixture
def world(okta, tmp_path) -> World:
    world = World(okta, tmp_path)
    world.sync()
    world.policy()
    return world


def membership_event(event_type: str, user: str, group: str) -> dict:
    event = copy.deepcopy(MEMBERSHIP_EVENT)
    event.update(eventType=event_type, uuid=str(uuid.uuid4()))
    event["target"][0]["id"], event["target"][1]["id"] = user, group
    return event


def user_event(event_type: str, user: str) -> dict:
    """Okta's documented deactivate event, as another type where asked (the same LogEvent shape)."""
    event = copy.deepcopy(LIFECYCLE_EVENT)
    event.update(eventType=event_type, uuid=str(uuid.uuid4()))
    event["target"][0]["id"] = user
    return event


def delivery(*events: dict) -> dict:
    return {**copy.deepcopy(ENVELOPE), "eventId": str(uuid.uuid4()), "data": {"events": list(events)}}


def handle(world: World, body: dict) -> InboundEvent:
    event, _ = inbound_event_accept(
        receiver=world.receiver, delivery_id=body["eventId"], event_type=body["eventType"], payload=body, actor=ACTOR
    )
    inbound_event_process(event_id=event.pk, actor=ACTOR)
    event.refresh_from_db()
    return event


def user_reads(okta: FakeOkta, user: str) -> int:
    return sum(1 for _method, target, _status in okta.log if target.partition("?")[0] == f"/api/v1/users/{user}")


def assert_redeployed_edge_a(event: InboundEvent) -> None:
    """A new snapshot, edge-a's deployment queued with it, edge-b untouched, manual-edge noted."""
    outcome = event.outcome
    (deployment,) = Deployment.objects.all()
    assert (deployment.gateway.name, deployment.state, deployment.trigger) == (
        "edge-a",
        DeploymentState.QUEUED,
        Trigger.WEBHOOK,
    )
    assert (outcome["snapshot"], outcome["deployments"], outcome["not_deployable"]) == (
        PolicySnapshot.objects.latest("created_at", "id").pk,
        [deployment.pk],
        ["manual-edge"],
    )
    assert deployment.snapshot_id == outcome["snapshot"]


# Each event type ------------------------------------------------------------------------------

ADMIN = ["airflow-admin"]


def _leave_admins(world: World) -> None:
    world.okta.move_member(world.alice, world.admins, world.staff)


CASES = {
    # event type: (Okta before the first sync, Okta's change the event reports, roles before, after)
    "user.lifecycle.deactivate": (None, lambda w: w.okta.set_status(w.alice, "DEPROVISIONED"), ADMIN, None),
    "user.lifecycle.suspend": (None, lambda w: w.okta.set_status(w.alice, "SUSPENDED"), ADMIN, None),
    "user.lifecycle.delete.initiated": (None, lambda w: w.okta.set_status(w.alice, "DEPROVISIONED"), ADMIN, None),
    "user.lifecycle.delete": (None, lambda w: w.okta.delete_user(w.alice), ADMIN, None),
    "user.lifecycle.activate": (
        lambda w: w.okta.set_status(w.alice, "STAGED"),
        lambda w: w.okta.set_status(w.alice, "ACTIVE"),
        None,
        ADMIN,
    ),
    "user.lifecycle.reactivate": (
        lambda w: w.okta.set_status(w.alice, "DEPROVISIONED"),
        lambda w: w.okta.set_status(w.alice, "ACTIVE"),
        None,
        ADMIN,
    ),
    "user.lifecycle.unsuspend": (
        lambda w: w.okta.set_status(w.alice, "SUSPENDED"),
        lambda w: w.okta.set_status(w.alice, "ACTIVE"),
        None,
        ADMIN,
    ),
    "group.user_membership.add": (_leave_admins, lambda w: w.okta.add_members(w.admins, [w.alice]), [], ADMIN),
    "group.user_membership.remove": (None, _leave_admins, ADMIN, []),
    "user.account.update_profile": (
        _leave_admins,
        lambda w: w.okta.update_profile(w.alice, department="Data"),  # the claim mapping grants the role
        [],
        ADMIN,
    ),
}


@pytest.mark.parametrize("event_type", list(CASES))
def test_each_event_type_refreshes_the_user_and_redeploys_only_the_gateways_it_affects(okta, tmp_path, event_type):
    before, change, roles_before, roles_after = CASES[event_type]
    world = World(okta, tmp_path)
    if before:
        before(world)
    world.sync()
    world.policy()
    change(world)
    snapshots = PolicySnapshot.objects.count()
    event = (
        membership_event(event_type, world.alice, world.admins)
        if event_type.startswith("group.")
        else user_event(event_type, world.alice)
    )

    handled = handle(world, delivery(event))

    assert (handled.state, handled.last_error) == (EventState.DONE, "")
    (identity,) = handled.outcome["identities"]
    assert (identity["subject"], identity["roles_before"], identity["roles_after"]) == (
        f"okta:{world.alice}",
        roles_before,
        roles_after,
    )
    assert identity["changes"]  # something was written
    assert world.identity(world.alice).active == (roles_after is not None)
    assert handled.outcome["handled"] == [{"uuid": event["uuid"], "event_type": event_type, "users": [world.alice]}]
    assert PolicySnapshot.objects.count() == snapshots + 1
    assert_redeployed_edge_a(handled)


def test_the_recorded_membership_removal_takes_the_role_and_redeploys(world):
    _leave_admins(world)
    body = delivery(membership_event("group.user_membership.remove", world.alice, world.admins))
    body["eventId"] = ENVELOPE["eventId"]  # the recorded delivery, ids pointed at the fake's

    handled = handle(world, body)

    assert handled.delivery_id == "7725f197-576a-4eff-b1ce-668221e8144a"
    assert handled.outcome["identities"][0]["changes"] == {"memberships_added": 1, "memberships_removed": 1}
    assert set(world.identity(world.alice).groups.values_list("name", flat=True)) == {"staff"}
    assert set(world.identity(world.bob).groups.values_list("name", flat=True)) == {"airflow-admins"}
    assert_redeployed_edge_a(handled)


def test_no_change_of_roles_builds_no_snapshot_and_deploys_nothing(world):
    world.okta.update_profile(world.alice, title="Principal engineer")
    snapshots = PolicySnapshot.objects.count()

    handled = handle(world, delivery(user_event("user.account.update_profile", world.alice)))

    assert handled.state == EventState.DONE
    (identity,) = handled.outcome["identities"]
    assert identity["changes"] == {"updated": 1} and identity["roles_before"] == identity["roles_after"] == ADMIN
    assert world.identity(world.alice).attributes["title"] == "Principal engineer"
    assert (handled.outcome["snapshot"], handled.outcome["deployments"]) == (None, [])
    assert PolicySnapshot.objects.count() == snapshots and not Deployment.objects.exists()


def test_unknown_event_types_are_acknowledged_and_ignored_without_a_read(world):
    requests = world.okta.requests

    handled = handle(world, {**SESSION_DELIVERY, "eventId": str(uuid.uuid4())})

    assert handled.state == EventState.DONE
    assert handled.outcome["ignored"] == [
        {
            "uuid": SESSION_DELIVERY["data"]["events"][0]["uuid"],
            "event_type": "user.session.start",
            "why": "not an event that changes access",
        }
    ]
    assert (handled.outcome["identities"], handled.outcome["deployments"]) == ([], [])
    assert world.okta.requests == requests


def test_a_delivery_reads_each_user_once_and_counts_each_event_once(world):
    world.okta.set_status(world.alice, "SUSPENDED")
    deactivated = user_event("user.lifecycle.suspend", world.alice)
    removed = membership_event("group.user_membership.remove", world.alice, world.admins)
    reads = user_reads(world.okta, world.alice)

    handled = handle(world, delivery(deactivated, removed, deactivated, user_event("user.session.start", world.bob)))

    assert [item["uuid"] for item in handled.outcome["handled"]] == [deactivated["uuid"], removed["uuid"]]
    assert [item["event_type"] for item in handled.outcome["ignored"]] == ["user.session.start"]
    assert user_reads(world.okta, world.alice) == reads + 1
    assert [identity["subject"] for identity in handled.outcome["identities"]] == [f"okta:{world.alice}"]
    assert_redeployed_edge_a(handled)


# Failures ---------------------------------------------------------------------------------------


def test_okta_failing_fails_the_event_with_nothing_written_and_the_sweep_finishes_it(world):
    world.okta.set_status(world.alice, "DEPROVISIONED")
    world.okta.fail_next(3)  # every quick retry of the handler's read

    failed = handle(world, delivery(user_event("user.lifecycle.deactivate", world.alice)))

    assert (failed.state, failed.attempts) == (EventState.FAILED, 1)
    assert failed.last_error == (f"GET /api/v1/users/{world.alice}: HTTP 500 (E0000009); gave up after 3 attempts")
    assert world.identity(world.alice).active and not Deployment.objects.exists()

    assert inbound_events_sweep() == [failed.pk]
    failed.refresh_from_db()
    assert (failed.state, failed.attempts, failed.last_error) == (EventState.DONE, 2, "")
    assert not world.identity(world.alice).active
    assert_redeployed_edge_a(failed)


def test_a_receiver_linked_to_no_source_fails_readably(world):
    world.receiver.identity_source = None
    world.receiver.save()

    failed = handle(world, delivery(user_event("user.lifecycle.deactivate", world.alice)))

    assert failed.state == EventState.FAILED
    assert failed.last_error == (
        "webhook receiver okta/okta-main is linked to no identity source: set its identity source to the "
        "Okta source its events update"
    )


# End to end -------------------------------------------------------------------------------------


@pytest.mark.slow  # the deployment it queues runs, with the real haproxy binary
def test_a_deactivation_delivered_to_the_receiver_is_applied_and_deployed_after_commit(
    client, world, django_capture_on_commit_callbacks
):
    world.okta.set_status(world.alice, "DEPROVISIONED")
    body = json.dumps(delivery(user_event("user.lifecycle.deactivate", world.alice))).encode()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, "/webhooks/okta/okta-main", body, {"Authorization": OKTA_SECRET})

    assert (response.status_code, response.content) == (200, b"")
    event = InboundEvent.objects.get()
    assert (event.state, event.attempts) == (EventState.DONE, 1)  # handed to (eager) Celery after commit
    assert not world.identity(world.alice).active
    assert event.outcome["identities"][0]["roles_after"] is None
    (deployment,) = Deployment.objects.all()
    assert event.outcome["deployments"] == [deployment.pk] and deployment.gateway.name == "edge-a"
    assert len(callbacks) == 2  # the delivery's hand-over, then the deployment's
    # which ran the pipeline on the new snapshot up to the reload: no HAProxy runs in this test
    steps = [(step["step"], step["ok"]) for step in deployment.steps]
    assert steps == [("render", True), ("validate", True), ("prove", True), ("push", True), ("reload", False)]
    assert deployment.snapshot_id == event.outcome["snapshot"] and deployment.state == DeploymentState.FAILED
