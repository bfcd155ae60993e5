"""The semantic diff between two snapshots on a gateway: exactly who gains, loses or moves access to
which routes, worked out per change of role set."""

from apps.policies import semantic_diff
from apps.policies.semantic_diff import AccessShift, access_diff
from tests.policies.builder import policy, route, rule

ADMIN_ONLY = route("airflow.test", "/admin", rule("roles", roles=["airflow-admin"]))
SIGNED_IN = route("airflow.test", "/", rule("authenticated"))
HOME = route("www.test", "/", rule("public"))
EVERYONE = {"okta:ann": ["viewer"], "okta:bob": ["airflow-admin"], "okta:cy": []}


def test_a_role_granted_to_one_identity_gives_it_exactly_the_routes_of_that_role():
    before = policy(ADMIN_ONLY, SIGNED_IN, HOME, identities=EVERYONE)
    after = policy(ADMIN_ONLY, SIGNED_IN, HOME, identities={**EVERYONE, "okta:ann": ["airflow-admin", "viewer"]})

    diff = access_diff(before=before, after=after, gateway="edge")

    assert diff.gains == (AccessShift(("okta:ann",), ("edge/airflow.test/admin",)),)
    assert (diff.losses, diff.moves, diff.anyone_gains, diff.anyone_losses) == ((), (), (), ())
    assert (diff.routes_added, diff.routes_removed, diff.routes_changed) == ((), (), ())
    assert (diff.identities_gaining, diff.identities_losing) == (1, 0)


def test_a_rule_admitting_another_role_counts_the_route_changed_and_its_holders_gain_it():
    wider = route("airflow.test", "/admin", rule("roles", roles=["airflow-admin", "viewer"]))
    before = policy(ADMIN_ONLY, SIGNED_IN, identities={**EVERYONE, "okta:dee": ["viewer"]})
    after = policy(wider, SIGNED_IN, identities={**EVERYONE, "okta:dee": ["viewer"]})

    diff = access_diff(before=before, after=after, gateway="edge")

    assert diff.routes_changed == ("edge/airflow.test/admin",)
    assert diff.gains == (AccessShift(("okta:ann", "okta:dee"), ("edge/airflow.test/admin",)),)
    assert diff.losses == ()


def test_a_removed_route_is_lost_by_those_who_reached_it_and_a_new_public_one_is_gained_by_anyone():
    before = policy(ADMIN_ONLY, SIGNED_IN, identities=EVERYONE)
    after = policy(SIGNED_IN, HOME, identities=EVERYONE)

    diff = access_diff(before=before, after=after, gateway="edge")

    assert (diff.routes_added, diff.routes_removed) == (("edge/www.test/",), ("edge/airflow.test/admin",))
    assert diff.losses == (AccessShift(("okta:bob",), ("edge/airflow.test/admin",)),)
    # public: said once, for anyone, not once per identity
    assert (diff.gains, diff.anyone_gains, diff.anyone_losses) == ((), ("edge/www.test/",), ())


def test_a_deactivated_identity_loses_what_it_reached_signed_in_and_a_new_one_gains_it():
    before = policy(ADMIN_ONLY, SIGNED_IN, HOME, identities=EVERYONE)
    after = policy(ADMIN_ONLY, SIGNED_IN, HOME, identities={"okta:ann": ["viewer"], "okta:cy": [], "okta:eve": []})

    diff = access_diff(before=before, after=after, gateway="edge")

    assert diff.losses == (AccessShift(("okta:bob",), ("edge/airflow.test/", "edge/airflow.test/admin")),)
    assert diff.gains == (AccessShift(("okta:eve",), ("edge/airflow.test/",)),)


def test_a_deny_rule_for_a_role_takes_the_route_from_its_holders_only():
    denied = route("airflow.test", "/", rule("authenticated"), rule("roles", effect="deny", roles=["viewer"]))
    before = policy(SIGNED_IN, identities=EVERYONE)
    after = policy(denied, identities=EVERYONE)

    diff = access_diff(before=before, after=after, gateway="edge")

    assert diff.losses == (AccessShift(("okta:ann",), ("edge/airflow.test/",)),)
    assert diff.gains == () and diff.routes_changed == ("edge/airflow.test/",)


def test_with_nothing_live_every_identity_gains_what_it_will_reach():
    after = policy(ADMIN_ONLY, SIGNED_IN, HOME, identities=EVERYONE)

    diff = access_diff(before=None, after=after, gateway="edge")

    assert diff.routes_added == ("edge/airflow.test/", "edge/airflow.test/admin", "edge/www.test/")
    assert diff.gains == (
        AccessShift(("okta:ann", "okta:cy"), ("edge/airflow.test/",)),
        AccessShift(("okta:bob",), ("edge/airflow.test/", "edge/airflow.test/admin")),
    )
    assert diff.anyone_gains == ("edge/www.test/",)


def test_networks_narrowed_on_a_rule_move_its_holders_without_a_gain_or_loss():
    office_only = route("airflow.test", "/", rule("authenticated", cidrs=["10.0.0.0/8"]))
    before = policy(SIGNED_IN, identities=EVERYONE)
    after = policy(office_only, identities=EVERYONE)

    diff = access_diff(before=before, after=after, gateway="edge")

    assert diff.moves == (AccessShift(("okta:ann", "okta:bob", "okta:cy"), ("edge/airflow.test/",)),)
    assert (diff.gains, diff.losses, diff.access_unchanged) == ((), (), False)


def test_only_the_gateways_own_routes_count():
    elsewhere = route("intra.test", "/", rule("roles", roles=["viewer"]), gateway="inner")
    before = policy(SIGNED_IN, identities=EVERYONE)
    after = policy(SIGNED_IN, elsewhere, identities=EVERYONE)

    edge = access_diff(before=before, after=after, gateway="edge")
    inner = access_diff(before=before, after=after, gateway="inner")

    assert edge.access_unchanged and edge.routes_added == ()
    assert inner.gains == (AccessShift(("okta:ann",), ("inner/intra.test/",)),)


def test_the_same_policy_changes_nothing():
    same = policy(ADMIN_ONLY, SIGNED_IN, HOME, identities=EVERYONE)
    diff = access_diff(before=same, after=same, gateway="edge")
    assert diff.access_unchanged and (diff.routes_added, diff.routes_removed, diff.routes_changed) == ((), (), ())


def test_reach_is_worked_out_per_role_set_not_per_identity(monkeypatch):
    routes = [route(f"app{n}.test", "/", rule("roles", roles=[f"r{n % 3}"])) for n in range(20)]
    many = {f"okta:{n}": [f"r{n % 3}"] for n in range(3000)}
    promoted = {**many, **{f"okta:{n}": ["r0", "r1"] for n in range(0, 3000, 3)}}  # r0 holders also get r1
    calls = []
    counted = semantic_diff.route_reach

    def counting(route_view, roles):
        calls.append(roles)
        return counted(route_view, roles)

    monkeypatch.setattr(semantic_diff, "route_reach", counting)

    diff = access_diff(
        before=policy(*routes, identities=many), after=policy(*routes, identities=promoted), gateway="edge"
    )

    (shift,) = diff.gains
    assert len(shift.subjects) == 1000
    assert shift.routes == tuple(sorted(f"edge/app{n}.test/" for n in (1, 4, 7, 10, 13, 16, 19)))
    # one role set changed: its old and new reach over 20 routes, plus anyone's over the (no) changed routes
    assert len(calls) == 2 * 20
