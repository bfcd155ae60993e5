"""The proof's equivalence classes and its loopback stand-ins for the policy's networks."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.gateways.proof_cases import (
    OUTSIDE_EVERY_NETWORK,
    ProofUnsupported,
    gateway_wide_cases,
    loopback_content,
    loopback_networks,
    probe_cases,
)
from apps.policies.decide import decide
from apps.policies.snapshot import compile_policy
from tests.policies.builder import route, rule

NETWORKS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.168.0.0/16", "2001:db8::/32", "2001:db8:1::/48"]


def _inside(address: str, network: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(network)


def test_stand_ins_keep_the_nesting_and_each_region_has_an_address():
    mapping = loopback_networks(set(NETWORKS))
    for network, (stand_in, address) in mapping.items():
        assert ipaddress.ip_network(stand_in).subnet_of(ipaddress.ip_network("127.0.0.0/8"))
        assert _inside(address, stand_in)
        assert not _inside(OUTSIDE_EVERY_NETWORK, stand_in)
        for other, (other_stand_in, _) in mapping.items():
            real = ipaddress.ip_network(network)
            other_real = ipaddress.ip_network(other)
            nested = real.version == other_real.version and real.subnet_of(other_real)
            # An address inside a region is inside exactly the stand-ins of the networks that contain it.
            assert _inside(address, other_stand_in) is nested


@given(st.sets(st.sampled_from([*NETWORKS, "172.16.0.0/12", "10.2.0.0/16", "10.1.3.0/24"]), max_size=8))
def test_membership_of_every_region_address_matches_the_real_networks(networks):
    mapping = loopback_networks(networks)
    for network, (_, address) in mapping.items():
        members = {n for n in networks if ipaddress.ip_network(n).version == ipaddress.ip_network(network).version
                   and ipaddress.ip_network(network).subnet_of(ipaddress.ip_network(n))}  # fmt: skip
        assert {n for n, (stand_in, _) in mapping.items() if _inside(address, stand_in)} == members


def test_too_deep_nesting_is_refused_with_a_reason():
    with pytest.raises(ProofUnsupported, match="nested more than 3 deep"):
        loopback_networks({"10.0.0.0/8", "10.1.0.0/16", "10.1.1.0/24", "10.1.1.0/28"})


def test_cases_cover_hosts_paths_methods_tokens_and_networks():
    content = {
        "format": 2, "roles": ["ops"], "gateways": [{"name": "edge"}],
        "routes": [
            route("*.apps.example.test", "/admin", rule("roles", roles=["ops"], cidrs=["10.0.0.0/8"]),
                  rule("public", effect="deny", cidrs=["10.9.0.0/16"]), methods=["GET"]),
            route("other.example.test", "/", rule("public"), gateway="other"),
        ],
        "identities": {"okta:a": ["ops"]},
    }  # fmt: skip
    mapped, mapping, _former = loopback_content(content, "edge")
    assert [r["host"] for r in mapped["routes"]] == ["*.apps.example.test"]
    cases = probe_cases(mapped, mapping)
    assert {c.host for c in cases} == {"probe.apps.example.test", "a.probe.apps.example.test"}
    assert {c.path for c in cases} == {"/admin", "/admin/x/y", "/adminx"}
    assert {c.method for c in cases} == {"GET", "DELETE"}
    assert {c.credential for c in cases} == {"none", "valid", "expired", "other_gateway", "forged", "wrong_issuer"}
    assert {c.roles for c in cases if c.credential == "valid"} == {frozenset(), frozenset({"ops"})}
    assert {c.client_ip for c in cases} == {"127.0.0.1", mapping["10.0.0.0/8"][1], mapping["10.9.0.0/16"][1]}
    # The mapped policy decides for those addresses as the real one does for real addresses.
    policy = compile_policy({**mapped, "identities": {"s": ["ops"]}})
    inside_deny = mapping["10.9.0.0/16"][1]
    assert not decide(policy, "s", "GET", "x.apps.example.test", "/admin", inside_deny, gateway="edge").allowed
    assert decide(policy, "s", "GET", "x.apps.example.test", "/admin", mapping["10.0.0.0/8"][1], gateway="edge").allowed
    assert len(gateway_wide_cases(mapped)) == 1  # only the unknown host: the gateway has no exact hosts
