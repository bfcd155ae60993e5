"""Properties of decide() and snapshots that must hold for every policy, not just the examples."""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from apps.core.actors import Actor
from apps.core.canonical import canonical_json
from apps.policies import services
from apps.policies.decide import ReasonCode, decide
from apps.policies.snapshot import content_sha256, snapshot_content
from tests.factories import ApplicationFactory, GatewayFactory, GroupFactory, IdentityFactory, IdentitySourceFactory
from tests.policies.builder import policy, route, rule

ROLES = ["r1", "r2", "r3", "r4"]
HOSTS = ["a.example.test", "b.example.test", "*.example.test", "*.x.example.test"]
PREFIXES = ["/", "/a", "/a/b", "/c"]
CIDRS = ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"]
SUBJECTS = ["s:1", "s:2", "s:3"]

rules = st.builds(
    lambda effect, mode, roles, cidrs: rule(mode, effect=effect, roles=roles if mode == "roles" else (), cidrs=cidrs),
    effect=st.sampled_from(["allow", "allow", "deny"]),
    mode=st.sampled_from(["public", "authenticated", "roles"]),
    roles=st.sets(st.sampled_from(ROLES), min_size=1, max_size=2),
    cidrs=st.lists(st.sampled_from(CIDRS), max_size=2, unique=True),
)
routes = st.dictionaries(
    keys=st.tuples(st.sampled_from(HOSTS), st.sampled_from(PREFIXES)),
    values=st.tuples(st.lists(rules, max_size=3), st.sets(st.sampled_from(["GET", "POST"]), max_size=1)),
    max_size=8,
).map(lambda table: [route(h, p, *rs, methods=ms) for (h, p), (rs, ms) in table.items()])
identities = st.fixed_dictionaries({subject: st.sets(st.sampled_from(ROLES), max_size=3) for subject in SUBJECTS})
requests = st.tuples(
    st.sampled_from([*SUBJECTS, None, "s:unknown"]),
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["a.example.test", "b.example.test", "z.example.test", "q.x.example.test", "other.test"]),
    st.sampled_from(["/", "/a", "/a/b/c", "/ab", "/c/d.txt"]),
    st.sampled_from(["10.1.2.3", "192.0.2.9", "198.51.100.1", "2001:db8::1", None]),
)


def _compiled(route_list, roles_by_subject):
    return policy(*route_list, identities={s: sorted(r) for s, r in roles_by_subject.items()})


@given(requests)
def test_an_empty_policy_denies_everything(request):
    decision = decide(policy(), *request)
    assert not decision.allowed
    assert decision.reasons[0].code in {ReasonCode.NO_ROUTE, ReasonCode.PATH_NOT_CANONICAL}


@given(routes, identities, requests)
def test_a_route_without_allow_rules_denies(route_list, roles_by_subject, request):
    stripped = [{**r, "rules": [x for x in r["rules"] if x["effect"] == "deny"]} for r in route_list]
    assert not decide(_compiled(stripped, roles_by_subject), *request).allowed


@given(routes, identities, requests, st.sampled_from(SUBJECTS), st.sampled_from(ROLES))
def test_adding_a_role_never_removes_access(route_list, roles_by_subject, request, subject, extra_role):
    # Deny rules naming a role are the one, intended, exception: they exist to take access away.
    assume(not any(extra_role in x["roles"] for r in route_list for x in r["rules"] if x["effect"] == "deny"))
    before = decide(_compiled(route_list, roles_by_subject), *request)
    more = {**roles_by_subject, subject: roles_by_subject[subject] | {extra_role}}
    after = decide(_compiled(route_list, more), *request)
    assert after.allowed or not before.allowed


@given(routes, identities, requests, st.data())
def test_a_matching_deny_rule_always_wins(route_list, roles_by_subject, request, data):
    compiled = _compiled(route_list, roles_by_subject)
    decision = decide(compiled, *request)
    assume(decision.route is not None)
    # Add a deny rule that matches every request on the matched route: nothing may get through.
    blocked = [
        {**r, "rules": [*r["rules"], {**rule("public", effect="deny"), "key": "blocker"}]}
        if r["key"] == decision.route.key
        else r
        for r in route_list
    ]
    after = decide(_compiled(blocked, roles_by_subject), *request)
    assert not after.allowed
    assert after.reasons[0].code in {ReasonCode.DENIED_BY_RULE, ReasonCode.METHOD_NOT_ALLOWED}


@given(routes, identities, requests, rules.filter(lambda r: r["effect"] == "deny"))
def test_adding_any_deny_rule_never_grants_access(route_list, roles_by_subject, request, deny_rule):
    before = decide(_compiled(route_list, roles_by_subject), *request)
    assume(route_list)
    first, *rest = route_list
    extended = [{**first, "rules": [*first["rules"], {**deny_rule, "key": "extra"}]}, *rest]
    after = decide(_compiled(extended, roles_by_subject), *request)
    assert before.allowed or not after.allowed


class SnapshotHashTests(TestCase):
    """The same policy inserted in any order yields the same canonical snapshot and hash."""

    ROUTES = [
        ("a.example.test", "/", "public", []),
        ("a.example.test", "/admin", "roles", ["ops", "dev"]),
        ("b.example.test", "/api", "authenticated", []),
        ("*.example.test", "/", "roles", ["dev"]),
    ]
    IDENTITIES = [("u1", ["ops-team"]), ("u2", ["dev-team"]), ("u3", ["ops-team", "dev-team"]), ("u4", [])]
    seen_hashes: set[str] = set()

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        route_order=st.permutations(range(4)),
        identity_order=st.permutations(range(4)),
        role_order=st.permutations(["ops", "dev"]),
    )
    def test_hash_is_stable_under_reordering(self, route_order, identity_order, role_order):
        actor = Actor.system("test")
        source = IdentitySourceFactory(slug="okta")
        groups = {name: GroupFactory(source=source, name=name, external_id=name) for name in ("ops-team", "dev-team")}
        roles = {slug: services.role_create(actor=actor, slug=slug) for slug in role_order}
        for slug in role_order:
            services.role_mapping_create(
                actor=actor, role=roles[slug], match_kind="group", group=groups[f"{slug}-team"]
            )
        for index in identity_order:
            username, group_names = self.IDENTITIES[index]
            identity = IdentityFactory(source=source, username=username, external_id=username)
            identity.groups.set([groups[name] for name in group_names])
        gateway = GatewayFactory(name="edge")
        application = ApplicationFactory(slug="app")
        for index in route_order:
            host, prefix, mode, rule_roles = self.ROUTES[index]
            created = services.route_create(
                actor=actor, gateway=gateway, application=application, host=host, path_prefix=prefix,
                upstream_url="http://127.0.0.1:9000",
            )  # fmt: skip
            services.access_rule_create(
                actor=actor, route=created, auth_mode=mode, roles=[roles[slug] for slug in rule_roles]
            )
        self.seen_hashes.add(content_sha256(canonical_json(snapshot_content())))
        assert len(self.seen_hashes) == 1

    def test_building_twice_reuses_the_snapshot_and_a_change_makes_a_new_one(self):
        actor = Actor.system("test")
        route = services.route_create(
            actor=actor, gateway=GatewayFactory(), application=ApplicationFactory(), host="a.example.test",
            upstream_url="http://127.0.0.1:9000",
        )  # fmt: skip
        first = services.snapshot_build(actor=actor)
        assert services.snapshot_build(actor=actor).pk == first.pk
        services.access_rule_create(actor=actor, route=route, auth_mode="public")
        second = services.snapshot_build(actor=actor)
        assert second.sha256 != first.sha256
        assert content_sha256(second.content) == second.sha256
