"""Hostile values through the models and the renderers: either nothing invalid is saved, or the
rendered configs pass the real checkers and hold exactly the lines the renderer meant (no injection)."""

import json

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from apps.core.actors import Actor
from apps.gateways.renderers import render
from apps.gateways.renderers.base import RenderRequest
from apps.gateways.validate import validate
from apps.policies import services
from apps.policies.models import Route
from apps.policies.snapshot import compile_policy, snapshot_content
from tests.factories import ApplicationFactory, GatewayFactory, RoleFactory
from tests.support.keys import key_pair

pytestmark = pytest.mark.slow
ACTOR = Actor.system("fuzz")
HOSTILE = [
    "\n",
    "\r",
    '"',
    "'",
    "`",
    "\\",
    " ",
    "\t",
    "#",
    "|",
    ",",
    "%",
    "{",
    "}",
    "(",
    ")",
    "$",
    ";",
    "]]",
    "\x00",
    "é",
]
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text("abcAZ09.-/:*", max_size=4)), max_size=6).map(
    "".join
)

# Legal in a path prefix, yet meaningful in HAProxy, lighttpd or Lua syntax: the renderers must escape them.
path_specials = st.text("abz09-._~!$&()*+,;=:@", min_size=1, max_size=12).map(lambda t: "/" + t.strip("."))
RENDERED = []


def _render_both(content: dict) -> dict:
    policy = compile_policy(content)
    rendered = {}
    for kind, algorithm in (("haproxy", "RS256"), ("lighttpd", "HS256")):
        key, _ = key_pair(kid="k1", algorithm=algorithm, gateway="edge")
        request = RenderRequest(policy, "edge", "127.0.0.1:18999", (key,), "policyhub", "fuzz", "http://127.0.0.1:9")
        rendered[kind] = render(kind, request)
    return rendered


def _shape(rendered) -> dict[str, int]:
    """Line counts per file: hostile values that were escaped correctly never add or remove lines."""
    return {name: file.content.count(b"\n") for name, file in rendered.files.items() if not name.startswith("keys/")}


class HostileInputTests(TestCase):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        host=st.one_of(st.sampled_from(["h.example.test", "*.w.example.test", "XN--BCHER-KVA.example"]), hostile_text),
        path=st.one_of(path_specials, hostile_text),
        upstream=st.one_of(st.sampled_from(["10.0.0.5", "up.internal", "[::1]"]), hostile_text),
        role=st.one_of(st.sampled_from(["r-1", "0", "a" * 63]), hostile_text),
        cidr=st.one_of(st.sampled_from(["10.0.0.0/8", "::1/128", "192.0.2.7"]), hostile_text),
    )
    @example(host="h.example.test", path="/a;b$c(d)*e+f,g=h:i@j!k&l~m", upstream="[::1]", role="r-1", cidr="::1/128")
    @example(host="*.w.example.test", path="/x=1;y=2", upstream="10.0.0.5", role="0", cidr="10.0.0.0/8")
    def test_nothing_invalid_is_saved_and_whatever_is_saved_renders_safely(self, host, path, upstream, role, cidr):
        gateway = GatewayFactory(name="edge")
        baseline_route = services.route_create(
            actor=ACTOR, gateway=gateway, application=ApplicationFactory(), host="base.example.test",
            path_prefix="/base", upstream_url="http://127.0.0.1:9",
        )  # fmt: skip
        services.access_rule_create(actor=ACTOR, route=baseline_route, auth_mode="roles", roles=[RoleFactory(slug="r")])
        baseline = {kind: _shape(r) for kind, r in _render_both(snapshot_content()).items()}
        routes_before = Route.objects.count()

        try:
            role_obj = services.role_create(actor=ACTOR, slug=role)
            route = services.route_create(
                actor=ACTOR, gateway=gateway, application=baseline_route.application, host=host or "x",
                path_prefix=path, upstream_url=f"http://{upstream}:80",
            )  # fmt: skip
            services.access_rule_create(
                actor=ACTOR, route=route, auth_mode="roles", roles=[role_obj], allowed_cidrs=[cidr]
            )
        except ValidationError:
            saved = Route.objects.count() - routes_before
            assert saved in (0, 1)  # each service call is atomic: a refused rule leaves the valid route alone
            return
        content = snapshot_content()
        assert json.loads(json.dumps(content)) == content
        for kind, rendered in _render_both(content).items():
            result = validate(rendered)
            assert result.ok, (kind, [p.message for p in result.problems])
            shape = _shape(rendered)
            # one more route (and its rule) adds exactly its own map or table lines, nothing more
            grown = {name: shape[name] - baseline[kind].get(name, 0) for name in shape}
            assert all(0 <= delta <= 6 for delta in grown.values()), (kind, grown)
        RENDERED.append(path)

    def test_zz_some_hostile_values_were_valid_and_rendered(self):
        # Guards the test above against only ever exercising the refusal path.
        assert RENDERED
