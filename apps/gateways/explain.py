"""Where a gateway enforces one route: the lines of its config that do, found in the config rendered
in memory for the snapshot live on the gateway (nothing is deployed, staged or written).

Lines are looked up by the keys the renderers write routes under (renderers/haproxy.py,
renderers/lighttpd.py). Whole files are never shown, and only lines without key material:
HAProxy's routes.map, hosts.map/wildcards.map and networks.map entries and the route's backend in
haproxy.cfg (keys/*.map, the 0600 files, are never read); lighttpd's entry for the route in the
policy script (0600 because the same file holds HS256 secrets, so nothing else of it is read) and
its upstream block in lighttpd.conf. As a last guard a line holding a secret the render was given
is withheld.
"""

import base64
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from apps.gateways.models import Deployment
from apps.gateways.rendered import RenderedConfig
from apps.gateways.renderers import haproxy, lighttpd, render
from apps.gateways.renderers.base import RenderError, RenderRequest
from apps.gateways.selectors import deployment_live, render_request_for
from apps.policies.models import Gateway
from apps.policies.selectors import compiled_policy
from apps.policies.snapshot import RouteView

WITHHELD = "(withheld: this line holds key material)"


@dataclass(frozen=True)
class ConfigLine:
    file: str
    number: int  # 1-based, as an editor shows it
    text: str
    purpose: str  # what the line does for the route, readably


@dataclass(frozen=True)
class RouteEnforcement:
    gateway: str
    kind: str
    live: Deployment | None  # the deployment whose snapshot was rendered
    lines: tuple[ConfigLine, ...]
    # file shown -> whether the in-memory render is byte-identical to what the deployment installed
    # (None: the deployment recorded no hash for it). Files also naming keys or install paths differ
    # in those parts after a key rotation; the route's lines depend on the snapshot alone.
    as_deployed: dict[str, bool | None]
    problem: str = ""  # why no lines are shown


def _numbered(rendered: RenderedConfig, name: str) -> Iterator[tuple[int, str]]:
    file = rendered.files.get(name)
    if file is None:
        return iter(())
    return enumerate(file.content.decode(errors="replace").splitlines(), start=1)


def _first(rendered: RenderedConfig, name: str, matches: Callable[[str], bool], purpose: str) -> ConfigLine | None:
    for number, text in _numbered(rendered, name):
        if matches(text):
            return ConfigLine(name, number, text, purpose)
    return None


# HAProxy ----------------------------------------------------------------------------------------


def _haproxy_lines(rendered: RenderedConfig, route: RouteView) -> list[ConfigLine]:
    key = haproxy.route_map_key(route.host, route.path_prefix, f"route {route.key}")
    route_line = _first(
        rendered, "routes.map", lambda text: text.startswith(f"{key} "), "the route: methods, rules, backend"
    )
    if route_line is None:
        return []
    if route.host.startswith("*."):
        host_line = _first(
            rendered,
            "wildcards.map",
            lambda text: text == f"{route.host[1:]} {route.host}",
            "the wildcard host selects the route table",
        )
    else:
        host_line = _first(
            rendered, "hosts.map", lambda text: text == f"{route.host} {route.host}", "the host selects the route table"
        )
    networks = {network for rule in route.deny_rules + route.allow_rules for network in rule.networks}
    network_lines = [
        line
        for network in sorted(networks, key=lambda n: (n.version, int(n.network_address), n.prefixlen))
        if (
            line := _first(
                rendered,
                "networks.map",
                lambda text, network=network: text.startswith(f"{network.compressed} "),
                f"clients in {network} carry these rule network ids",
            )
        )
    ]
    backend = route_line.text.split(" ", 1)[1].split("|")[1]
    backend_lines = [
        line
        for line in (
            _first(rendered, haproxy.MAIN, lambda text: text == f"backend {backend}", "the route's backend"),
            _first(
                rendered,
                haproxy.MAIN,
                lambda text: text.strip().startswith(f"server {backend} "),
                "the upstream admitted requests go to",
            ),
        )
        if line
    ]
    return [line for line in (host_line, route_line) if line] + network_lines + backend_lines


# lighttpd ---------------------------------------------------------------------------------------

_UPSTREAM = re.compile(r'\bupstream = "([0-9]+)"')


def _lighttpd_lines(rendered: RenderedConfig, route: RouteView) -> list[ConfigLine]:
    entry = f"[{lighttpd.lua_string(route.path_prefix)}] = {{key = {lighttpd.lua_string(route.key)}, "
    table = route.host[2:] if route.host.startswith("*.") else route.host
    host_entry = f"[{lighttpd.lua_string(table)}] = {{"
    host_line = route_line = None
    for number, text in _numbered(rendered, lighttpd.POLICY_SCRIPT):
        stripped = text.strip()
        if stripped == host_entry:
            host_line = ConfigLine(lighttpd.POLICY_SCRIPT, number, text, "the host's route table")
        elif host_line and stripped.startswith(entry):
            route_line = ConfigLine(
                lighttpd.POLICY_SCRIPT, number, text, "the route: methods, rules, upstream (read by the gate)"
            )
            break
    if route_line is None:
        return []
    upstream = _UPSTREAM.search(route_line.text)[1]
    condition = f'$REQUEST_HEADER["{lighttpd.UPSTREAM_HEADER}"] == "{upstream}" {{'
    conf = list(_numbered(rendered, lighttpd.MAIN))
    block = []
    for index, (number, text) in enumerate(conf[:-1]):
        if text.endswith(condition):  # the block's first line; its proxy.server is the next
            block = [
                ConfigLine(lighttpd.MAIN, number, text, "the gate's upstream id selects this block"),
                ConfigLine(lighttpd.MAIN, *conf[index + 1], "the upstream admitted requests go to"),
            ]
            break
    return [host_line, route_line, *block]


_LOCATORS: dict[str, Callable[[RenderedConfig, RouteView], list[ConfigLine]]] = {
    "haproxy": _haproxy_lines,
    "lighttpd": _lighttpd_lines,
}


# Secrets ----------------------------------------------------------------------------------------


def _secret_texts(request: RenderRequest) -> set[str]:
    """Every secret the render was given, as text and in base64 (HAProxy's maps hold that form)."""
    secrets = [key.secret.reveal() for key in (*request.keys, *request.link_keys)]
    if request.assertion_key is not None:
        secrets.append(request.assertion_key.secret.reveal())
    if request.browser_sign_in is not None:
        secrets.append(request.browser_sign_in.state_key.reveal())
    secrets += [certificate.private_key.reveal() for certificate in request.certificates]
    found = set()
    for secret in filter(None, secrets):
        found |= {secret, base64.b64encode(secret.encode()).decode()}
    return found


def _withheld_if_secret(line: ConfigLine, secrets: set[str]) -> ConfigLine:
    if any(secret in line.text for secret in secrets):
        return ConfigLine(line.file, line.number, WITHHELD, line.purpose)
    return line


# The selector -----------------------------------------------------------------------------------


def route_enforcement(*, gateway_name: str, route_key: str) -> RouteEnforcement:
    """The lines of ``gateway_name``'s config that enforce the route ``route_key``, rendered for the
    snapshot of its live deployment; a ``problem`` instead when nothing is live, the live snapshot
    lacks the route (the next deployment adds it) or the render fails."""
    gateway = Gateway.objects.filter(name=gateway_name).first()
    if gateway is None:
        return RouteEnforcement(gateway_name, "", None, (), {}, f"there is no gateway {gateway_name} any more")
    live = deployment_live(gateway=gateway)
    if live is None:
        problem = f"nothing is live on {gateway.name} yet: the route is enforced once a deployment goes live"
        return RouteEnforcement(gateway.name, gateway.kind, None, (), {}, problem)
    route = next((route for route in compiled_policy(snapshot=live.snapshot).routes if route.key == route_key), None)
    if route is None:
        problem = (
            f"the snapshot live on {gateway.name} (deployment #{live.pk}) has no route {route_key}: "
            "the gateway enforces it after the next deployment"
        )
        return RouteEnforcement(gateway.name, gateway.kind, live, (), {}, problem)
    request = render_request_for(gateway=gateway, snapshot=live.snapshot, deployment_id=live.release)
    try:
        rendered = render(gateway.kind, request)
    except RenderError as error:
        return RouteEnforcement(gateway.name, gateway.kind, live, (), {}, f"the live snapshot does not render: {error}")
    secrets = _secret_texts(request)
    lines = tuple(_withheld_if_secret(line, secrets) for line in _LOCATORS[gateway.kind](rendered, route))
    as_deployed = {
        name: (
            hashlib.sha256(rendered.files[name].content).hexdigest() == live.file_hashes[name]
            if name in live.file_hashes
            else None
        )
        for name in dict.fromkeys(line.file for line in lines)
    }
    problem = "" if lines else f"no line of the rendered config names route {route_key}"
    return RouteEnforcement(gateway.name, gateway.kind, live, lines, as_deployed, problem)
