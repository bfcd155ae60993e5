"""Which config lines enforce a route (apps/gateways/explain.py): found in real renders of the demo's
gateways for the snapshot live on them, never a line with key material."""

import base64
import hashlib

import pytest

from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.demo import demo_seed
from apps.credentials.models import SigningKey
from apps.gateways.explain import WITHHELD, route_enforcement
from apps.gateways.models import Deployment
from apps.gateways.renderers import render
from apps.gateways.selectors import render_request_for
from apps.policies.choices import AuthMode
from apps.policies.models import Application, Gateway, PolicySnapshot
from apps.policies.services import access_rule_create, gateway_update, route_create, snapshot_build
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
AIRFLOW_ADMIN = "haproxy-edge/airflow.example.test/admin"
ARTIFACTS = "lighttpd-edge/artifacts.example.test/artifacts"
PRIVATE_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


@pytest.fixture
def snapshot() -> PolicySnapshot:
    return PolicySnapshot.objects.get(sha256=demo_seed(actor=ACTOR).snapshot_sha256)


def _live(gateway: str, snapshot: PolicySnapshot, **fields) -> Deployment:
    return DeploymentFactory(gateway=Gateway.objects.get(name=gateway), snapshot=snapshot, **fields)


def _rendered(gateway: str, snapshot: PolicySnapshot, deployment: Deployment):
    gateway = Gateway.objects.get(name=gateway)
    return render(
        gateway.kind, render_request_for(gateway=gateway, snapshot=snapshot, deployment_id=deployment.release)
    )


def _file_lines(rendered, name: str) -> list[str]:
    return rendered.files[name].content.decode().splitlines()


def _secrets() -> list[str]:
    """Every gateway secret as text and as base64."""
    texts = [key.private_material.reveal() for key in SigningKey.objects.all() if key.algorithm == "HS256"]
    return texts + [base64.b64encode(text.encode()).decode() for text in texts]


def test_haproxy_shows_the_routes_map_line_its_host_networks_and_backend(snapshot):
    live = _live("haproxy-edge", snapshot)
    rendered = _rendered("haproxy-edge", snapshot, live)

    found = route_enforcement(gateway_name="haproxy-edge", route_key=AIRFLOW_ADMIN)

    assert (found.problem, found.live, found.kind) == ("", live, "haproxy")
    by_file = {}
    for line in found.lines:
        assert _file_lines(rendered, line.file)[line.number - 1] == line.text  # the rendered line itself
        by_file.setdefault(line.file, []).append(line.text)
    assert by_file["hosts.map"] == ["airflow.example.test airflow.example.test"]
    [route_line] = by_file["routes.map"]
    assert route_line.startswith("airflow.example.test/admin/ ")
    assert "DR::,contractors,;" in route_line and ":,airflow-admin,:60:" in route_line
    assert [text.split()[0] for text in by_file["networks.map"]] == PRIVATE_NETWORKS
    backend = route_line.split(" ", 1)[1].split("|")[1]
    assert by_file["haproxy.cfg"] == [f"backend {backend}", f"    server {backend} 127.0.0.1:8080"]
    assert found.as_deployed == dict.fromkeys(by_file)  # the row recorded no hashes


def test_lighttpd_shows_the_routes_entry_in_the_policy_script_and_its_upstream_block(snapshot):
    live = _live("lighttpd-edge", snapshot)
    rendered = _rendered("lighttpd-edge", snapshot, live)

    found = route_enforcement(gateway_name="lighttpd-edge", route_key=ARTIFACTS)

    assert found.problem == ""
    for line in found.lines:
        assert _file_lines(rendered, line.file)[line.number - 1] == line.text
    host, entry, condition, server = found.lines
    assert (host.file, host.text.strip()) == ("policyhub_policy.lua", '["artifacts.example.test"] = {')
    assert entry.file == "policyhub_policy.lua"
    assert entry.text.strip().startswith(f'["/artifacts"] = {{key = "{ARTIFACTS}", upstream = "1", ')
    assert '["artifact-reader"] = true' in entry.text
    assert (condition.file, condition.text) == ("lighttpd.conf", '$REQUEST_HEADER["X-Policyhub-Upstream"] == "1" {')
    assert server.text.strip() == 'proxy.server = ("" => (("host" => "127.0.0.1", "port" => 9000)))'


def test_no_line_shown_holds_key_material_or_comes_from_a_key_file(snapshot):
    shown = []
    for gateway, routes in {
        "haproxy-edge": [AIRFLOW_ADMIN, "haproxy-edge/portal.example.test/backstage"],
        "lighttpd-edge": [ARTIFACTS, "lighttpd-edge/packages.example.test/maven"],
    }.items():
        live = _live(gateway, snapshot)
        rendered = _rendered(gateway, snapshot, live)
        for route in routes:
            lines = route_enforcement(gateway_name=gateway, route_key=route).lines
            assert lines
            shown += [line.text for line in lines]
            assert not [line.file for line in lines if line.file.startswith("keys/")]
        secret_lines = {
            text
            for name, file in rendered.files.items()
            if file.mode == 0o600
            for text in file.content.decode(errors="replace").splitlines()
            if any(secret in text for secret in _secrets())
        }
        assert secret_lines  # the renders do hold secrets ...
        assert not secret_lines & set(shown)  # ... which are never shown
    assert not [text for text in shown if any(secret in text for secret in _secrets())]


def test_wildcard_hosts_are_found_in_wildcards_map_and_the_wildcard_table(snapshot):
    artifacts = Application.objects.get(slug="buildkite-artifacts")
    for name, domain in (("haproxy-edge", "builds.example.test"), ("lighttpd-edge", "logs.example.test")):
        gateway = Gateway.objects.get(name=name)
        hostnames = [*gateway.public_hostnames, f"*.{domain}"]
        gateway_update(gateway=gateway, actor=ACTOR, data={"public_hostnames": hostnames})
        route = route_create(
            actor=ACTOR,
            gateway=gateway,
            application=artifacts,
            host=f"*.{domain}",
            path_prefix="/logs",
            upstream_url="http://127.0.0.1:9200",
        )
        access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.AUTHENTICATED)
    wider = snapshot_build(actor=ACTOR)
    _live("haproxy-edge", wider), _live("lighttpd-edge", wider)

    on_haproxy = route_enforcement(gateway_name="haproxy-edge", route_key="haproxy-edge/*.builds.example.test/logs")
    on_lighttpd = route_enforcement(gateway_name="lighttpd-edge", route_key="lighttpd-edge/*.logs.example.test/logs")

    host, route_line = on_haproxy.lines[:2]
    assert (host.file, host.text) == ("wildcards.map", ".builds.example.test *.builds.example.test")
    assert (route_line.file, route_line.text.split()[0]) == ("routes.map", "*.builds.example.test/logs/")
    assert on_lighttpd.lines[0].text.strip() == '["logs.example.test"] = {'
    assert 'key = "lighttpd-edge/*.logs.example.test/logs"' in on_lighttpd.lines[1].text


def test_a_file_is_marked_as_deployed_when_its_render_matches_the_recorded_hash(snapshot):
    gateway = Gateway.objects.get(name="haproxy-edge")
    live = _live("haproxy-edge", snapshot)
    rendered = _rendered("haproxy-edge", snapshot, live)
    live.file_hashes = {
        "routes.map": hashlib.sha256(rendered.files["routes.map"].content).hexdigest(),
        "hosts.map": "0" * 64,
    }
    live.save()

    found = route_enforcement(gateway_name=gateway.name, route_key=AIRFLOW_ADMIN)

    assert found.as_deployed == {"hosts.map": False, "routes.map": True, "networks.map": None, "haproxy.cfg": None}


def test_without_a_live_deployment_or_with_the_route_not_yet_live_it_says_why(snapshot):
    nothing = route_enforcement(gateway_name="haproxy-edge", route_key=AIRFLOW_ADMIN)
    assert nothing.lines == () and nothing.live is None
    assert nothing.problem == "nothing is live on haproxy-edge yet: the route is enforced once a deployment goes live"

    live = _live("haproxy-edge", snapshot)
    route = route_create(
        actor=ACTOR,
        gateway=Gateway.objects.get(name="haproxy-edge"),
        application=Application.objects.get(slug="airflow"),
        host="airflow.example.test",
        path_prefix="/api",
        upstream_url="http://127.0.0.1:8080",
    )
    access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.AUTHENTICATED)
    snapshot_build(actor=ACTOR)  # newer than the live one

    pending = route_enforcement(gateway_name="haproxy-edge", route_key="haproxy-edge/airflow.example.test/api")
    assert (pending.lines, pending.live) == ((), live)
    assert pending.problem == (
        f"the snapshot live on haproxy-edge (deployment #{live.pk}) has no route "
        "haproxy-edge/airflow.example.test/api: the gateway enforces it after the next deployment"
    )
    assert (
        route_enforcement(gateway_name="gone", route_key=AIRFLOW_ADMIN).problem == "there is no gateway gone any more"
    )


def test_a_line_holding_a_secret_the_render_was_given_is_withheld(snapshot):
    _live("lighttpd-edge", snapshot)
    # a shared secret that happens to spell the route's host: every line naming the host now holds it
    SigningKey.objects.filter(gateway__name="lighttpd-edge", purpose="edge-token").update(
        private_material=Secret("artifacts.example.test")
    )

    host, entry, condition, _ = route_enforcement(gateway_name="lighttpd-edge", route_key=ARTIFACTS).lines

    assert (host.text, entry.text) == (WITHHELD, WITHHELD)
    assert (host.file, entry.file) == ("policyhub_policy.lua",) * 2 and host.number < entry.number  # located, not shown
    assert condition.text.startswith("$REQUEST_HEADER")
