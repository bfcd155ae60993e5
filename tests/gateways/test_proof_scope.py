"""What a deploy's proof sends: everything without a proven base, else the change, its hosts and a sample."""

import copy

import pytest

from apps.gateways.proof_scope import proof_basis, proof_scope
from tests.policies.builder import route, rule

BASIS = "b" * 64
ROUTES = [
    route("a.example.test", "/", rule("public")),
    route("a.example.test", "/admin", rule("roles", roles=["ops"])),
    route("*.example.test", "/", rule("authenticated")),
    route("b.example.test", "/", rule("public")),
    route("c.example.test", "/", rule("roles", roles=["dev"]), rule("public", effect="deny", cidrs=["10.0.0.0/8"])),
    route("d.example.test", "/", rule("public")),
    route("other.example.test", "/", rule("public"), gateway="other"),
]


def _content(routes=ROUTES, identities=None, roles=("dev", "ops")) -> dict:
    return {
        "format": 2,
        "roles": sorted(roles),
        "gateways": [{"name": "edge", "public_hostnames": ["*.example.test"]}, {"name": "other"}],
        "routes": copy.deepcopy(list(routes)),
        "identities": identities if identities is not None else {"okta:a": ["ops"], "okta:b": ["dev"]},
    }


def _scope(content, baseline=None, *, basis=BASIS, baseline_basis=BASIS, sample=0, seed="1"):
    baseline = _content() if baseline is None else baseline
    return proof_scope(
        content=content,
        gateway="edge",
        basis=basis,
        baseline_content=baseline,
        baseline_basis=baseline_basis,
        sample=sample,
        seed=seed,
    )


def _keys(*names: str) -> frozenset[str]:
    return frozenset(f"edge/{name}" for name in names)


def test_without_a_proven_live_release_everything_is_proven():
    assert _scope(_content(), baseline={}, baseline_basis="").full
    assert proof_scope(
        content=_content(), gateway="edge", basis=BASIS, baseline_content=None, baseline_basis="", sample=0, seed=""
    ).full


def test_another_basis_or_other_gateway_settings_or_roles_prove_everything():
    assert "code, the proxy" in _scope(_content(), baseline_basis="c" * 64).reason
    renamed = _content()
    renamed["gateways"][0]["public_hostnames"] = ["*.example.org"]
    assert _scope(renamed).full
    assert _scope(_content(roles=("dev", "ops", "qa"))).full


def test_an_unchanged_policy_proves_only_the_sample():
    scope = _scope(_content(), sample=2, seed="deployment 7")
    assert not scope.full
    assert len(scope.routes) == 2 and scope.former_routes == ()
    assert scope.routes == _scope(_content(), sample=2, seed="deployment 7").routes  # the seed picks it
    picks = {_scope(_content(), sample=2, seed=str(n)).routes for n in range(20)}
    assert len(picks) > 1  # and another deploy picks others: over time every route is sampled
    assert "0 changed routes" in scope.reason


def test_a_changed_route_brings_its_host_and_the_wildcard_over_it_and_is_proven_as_it_was():
    changed = _content()
    changed["routes"][1]["rules"][0]["roles"] = ["dev"]  # a.example.test/admin: ops -> dev

    scope = _scope(changed)

    assert scope.routes == _keys("a.example.test/", "a.example.test/admin", "*.example.test/")
    assert [r["rules"][0]["roles"] for r in scope.former_routes] == [["ops"]]  # the live release's version


def test_a_changed_wildcard_brings_every_host_under_it():
    changed = _content()
    changed["routes"][2]["rules"][0]["auth_mode"] = "public"  # *.example.test/
    assert _scope(changed).full  # every gateway route lives under the wildcard
    under_b = [route("*.b.example.test", "/", rule("public")), route("x.b.example.test", "/", rule("public"))]
    narrow = _content([*ROUTES[:2], *under_b, *ROUTES[3:]])
    changed = copy.deepcopy(narrow)
    changed["routes"][2]["rules"][0]["auth_mode"] = "authenticated"
    # b.example.test itself is no name under *.b.example.test
    assert _scope(changed, baseline=narrow).routes == _keys("*.b.example.test/", "x.b.example.test/")


def test_a_removed_route_is_proven_as_it_was_with_what_now_serves_its_host():
    removed = _content([r for r in ROUTES if r["key"] != "edge/a.example.test/admin"])

    scope = _scope(removed)

    assert scope.routes == _keys("a.example.test/", "*.example.test/")
    assert [r["key"] for r in scope.former_routes] == ["edge/a.example.test/admin"]


def test_a_new_combination_of_roles_changes_the_routes_naming_those_roles_only():
    both = _scope(_content(identities={"okta:a": ["ops"], "okta:b": ["dev"], "okta:c": ["dev", "ops"]}))
    assert both.routes == frozenset()  # no route names both roles: no route sees a new combination
    with_qa = _content(identities={"okta:a": ["ops", "qa"], "okta:b": ["dev"]})
    assert _scope(with_qa).routes == frozenset()  # qa is named by no route
    combined = [*ROUTES[:4], route("c.example.test", "/", rule("roles", roles=["dev", "ops", "qa"])), *ROUTES[5:]]
    baseline = _content(combined)
    joined = {"okta:a": ["ops"], "okta:b": ["dev"], "okta:c": ["dev", "ops"]}
    scope = _scope(_content(combined, identities=joined), baseline=baseline)
    # dev+ops is a new class for the route naming dev, ops and qa (and the wildcard over its host comes along)
    assert scope.routes == _keys("c.example.test/", "*.example.test/")


def test_another_gateways_routes_never_count():
    moved = _content([*ROUTES[:-1], route("other.example.test", "/", rule("authenticated"), gateway="other")])
    scope = _scope(moved)
    assert not scope.full and scope.routes == frozenset() and scope.former_routes == ()


@pytest.mark.parametrize(
    "settings",
    [
        {"issuer": "policyhub", "signed_links": False},
        {"issuer": "policyhub-2", "signed_links": True},
    ],
)
def test_the_basis_fingerprints_the_settings_and_the_proxy(settings):
    base = {"issuer": "policyhub", "signed_links": True}
    assert proof_basis(kind="haproxy", settings=base) == proof_basis(kind="haproxy", settings=dict(base))
    assert proof_basis(kind="haproxy", settings=settings) != proof_basis(kind="haproxy", settings=base)
    assert proof_basis(kind="lighttpd", settings=base) != proof_basis(kind="haproxy", settings=base)
