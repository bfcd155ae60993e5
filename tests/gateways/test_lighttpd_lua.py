"""The rendered gate under plain lua5.4 with a stand-in for mod_magnet's ``lighty``: thousands of
anonymous requests, and client addresses the live proxy on 127.0.0.1 can never send (IPv6,
IPv4-mapped, unparseable), each answered as decide() answers it."""

import itertools
import json
import random
import subprocess

import pytest

from apps.gateways.outcomes import expected_status
from apps.gateways.renderers import render
from apps.policies.decide import decide
from tests.gateways.test_lighttpd import GATEWAY, render_request
from tests.policies.builder import policy, route, rule

pytestmark = pytest.mark.slow

# Reads one JSON request per line and prints the gate's status: 200 when it lets mod_proxy forward.
HARNESS = """\
local json = require("cjson")
local script = assert(loadfile(arg[1]))
for line in io.lines() do
  local case = json.decode(line)
  local r = {
    req_attr = {
      ["request.orig-uri"] = case.target,
      ["request.method"] = case.method,
      ["uri.authority"] = case.host,
      ["request.remote-addr"] = case.client,
    },
    req_header = {}, resp_header = {}, req_env = {},
    resp_body = { set = function() end },
  }
  lighty = { r = r, c = { time = os.time } }
  io.write(tostring(script() or 200), "\\n")
end
"""


def gate_statuses(tmp_path, compiled, cases: list[dict]) -> list[int]:
    render("lighttpd", render_request(compiled)).write_to(tmp_path)
    (tmp_path / "harness.lua").write_text(HARNESS)
    result = subprocess.run(
        ["lua5.4", "harness.lua", str(tmp_path / "policyhub_policy.lua")],
        cwd=tmp_path,
        input="".join(json.dumps(case) + "\n" for case in cases),
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(line) for line in result.stdout.split()]


def decided(compiled, case: dict) -> int:
    decision = decide(compiled, None, case["method"], case["host"], case["target"], case["client"], gateway=GATEWAY)
    return expected_status(decision)


NETWORKS = {
    "/v4": ["10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12"],
    "/v4-odd": ["10.1.2.2/31", "100.64.0.0/10"],
    "/v6": ["2001:db8::/32", "fe80::/10", "::1/128"],
    "/mapped": ["::ffff:0:0/96"],  # an IPv6 network: decide() unwraps mapped clients to IPv4 first
    "/everyone": ["0.0.0.0/0", "::/0"],
}
CLIENTS = [
    *("10.1.2.3", "10.1.2.2", "10.1.2.4", "192.168.1.255", "192.168.2.1", "172.31.255.255", "172.32.0.0"),
    *("100.127.255.255", "100.128.0.0", "0.0.0.0", "255.255.255.255", "127.0.0.1"),
    *("::ffff:10.1.2.3", "::ffff:a01:203", "::FFFF:10.0.0.1", "::ffff:0:0", "::10.1.2.3", "1:2:3:4:5:6:1.2.3.4"),
    *("2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:db8:ffff::", "2001:db9::", "fe80::1%eth0", "febf:ffff::"),
    *("fec0::", "::1", "::", "1::", "1:2:3:4:5:6:7:8"),
    *("", "garbage", "1.2.3", "01.2.3.4", "256.1.1.1", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8"),
    *("::ffff:1.2.3.4.5", "12345::", ":1::", "1::2:", "::ffff:1.2.3.04"),
]


def test_client_addresses_match_networks_as_decide_does(tmp_path):
    compiled = policy(
        *(route("net.local", prefix, rule("public", cidrs=cidrs)) for prefix, cidrs in NETWORKS.items()),
        # deny rules with networks also refuse clients whose address cannot be parsed
        route(
            "net.local", "/deny", rule("public"), rule("public", effect="deny", cidrs=["10.0.0.0/8", "2001:db8::/48"])
        ),
    )
    cases = [
        {"method": "GET", "host": "net.local", "target": prefix, "client": client}
        for prefix, client in itertools.product([*NETWORKS, "/deny"], CLIENTS)
    ]
    statuses = gate_statuses(tmp_path, compiled, cases)
    assert set(statuses) == {200, 403}
    mismatches = [
        (case["target"], case["client"], status, decided(compiled, case))
        for case, status in zip(cases, statuses, strict=True)
        if status != decided(compiled, case)
    ]
    assert mismatches == []


HOSTS = [
    *("app.local", "APP.Local", "app.local.", "app.local..", "app.local:8080", "app.local.:1", " app.local "),
    *("api.app.local", "x.api.app.local", "z.app.local", "q.deep.app.local", "deep.app.local", "x.y.deep.app.local"),
    *("other.local", "local", "", "[::1]:80", "[::1", "[2001:DB8::1]", "exact.app.local"),
]
SEGMENTS = ["", "a", "b", "ab", "c", ".", "..", "%2e", "%2E%2e", "x.y", "%2f", "%5C", "\\", "A", "%41", "app"]
TAILS = ["", "/", "//", "?q=/../x", "#frag", "?a#b"]
# Boundaries the random targets reach only rarely.
TARGETS = ["/", "//", "/a", "/a/", "/a//", "/ab/", "/abc", "/a/bc", "/a/b/c/d", "/c/ab", "/c/ab/", "/only/x", "/x.y/"]


def random_target(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return rng.choice(["a/b", "*", "", "?x"])
    return "/" + "/".join(rng.choices(SEGMENTS, k=rng.randint(0, 4))) + rng.choice(TAILS)


def test_routing_and_rules_for_thousands_of_anonymous_requests(tmp_path):
    compiled = policy(
        route("app.local", "/", rule("public")),
        route("app.local", "/a", rule("authenticated")),
        route("app.local", "/a/b", rule("public"), methods=["GET", "HEAD"]),
        route("app.local", "/ab", rule("roles", roles=["x"]), rule("public", effect="deny")),
        route("app.local", "/a/b/c", rule("public", cidrs=["127.0.0.0/8"])),
        route("app.local", "/x.y", rule("public", cidrs=["10.0.0.0/8"])),
        route("app.local", "/app", rule("public", effect="deny", cidrs=["127.0.0.1/32"]), rule("public")),
        route("app.local", "/c"),  # no rules at all
        route("app.local", "/c/ab/", rule("authenticated")),  # decide() never matches a trailing slash
        route("*.app.local", "/a", rule("public"), methods=["POST"]),
        route("api.app.local", "/b", rule("public")),
        route("exact.app.local", "/only", rule("public")),
        route("*.deep.app.local", "/", rule("authenticated"), rule("public", cidrs=["::1/128"])),
        route("[::1]", "/", rule("public")),
        route("other.local", "/", rule("public"), gateway="elsewhere"),
    )
    rng = random.Random(20261122)
    cases = [
        {"method": "GET", "host": host, "target": target, "client": "127.0.0.1"}
        for host, target in itertools.product(HOSTS, TARGETS)
    ] + [
        {
            "method": rng.choice(["GET", "HEAD", "POST", "DELETE", "get"]),
            "host": rng.choice(HOSTS),
            "target": random_target(rng),
            "client": "127.0.0.1",
        }
        for _ in range(4000)
    ]
    statuses = gate_statuses(tmp_path, compiled, cases)
    expected = [decided(compiled, case) for case in cases]
    assert set(expected) == {200, 400, 401, 403, 404, 405}
    mismatches = [
        (case, status, wanted)
        for case, status, wanted in zip(cases, statuses, expected, strict=True)
        if status != wanted
    ]
    assert mismatches == []
