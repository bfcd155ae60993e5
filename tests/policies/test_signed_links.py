"""Signed links in decide(): identity judged at issue (decide_link_issue), network judged at use."""

import pytest

from apps.policies.decide import ReasonCode, decide, decide_link_issue
from tests.policies.builder import policy, route, rule, rule_key

ARTIFACTS = "edge/artifacts.example.test/builds"
CI_RULE, ANY_USER_RULE = rule_key(ARTIFACTS, 2), rule_key(ARTIFACTS, 3)
POLICY = policy(
    route("artifacts.example.test", "/builds",
          rule("roles", effect="deny", roles=["contractor"]),
          rule("public", effect="deny", cidrs=["10.66.0.0/16"]),
          rule("roles", roles=["ci"], cidrs=["10.20.0.0/16"]),
          rule("authenticated"),
          methods=["GET", "HEAD", "PUT"], signed_links=True),
    route("artifacts.example.test", "/closed", rule("public", effect="deny"), rule("roles", roles=["ci"]),
          signed_links=True),
    route("artifacts.example.test", "/ci", rule("roles", roles=["ci"]), signed_links=True),
    route("plain.example.test", "/", rule("authenticated")),
    identities={"space:agent": ["ci"], "space:contractor": ["ci", "contractor"], "okta:dev": []},
)  # fmt: skip


def _use(path="/builds/1/x.tgz", client="10.20.1.1", link=CI_RULE, method="GET", host="artifacts.example.test"):
    return decide(POLICY, None, method, host, path, client, signed_link=link)


def test_a_link_admits_through_the_rule_it_names_when_the_rule_network_holds_the_client():
    decision = _use()
    assert decision.allowed
    assert decision.rule.key == CI_RULE
    assert "signed link" in decision.reasons[0].message


@pytest.mark.parametrize(
    ("changes", "status_reason"),
    [
        ({"client": "192.0.2.7"}, ReasonCode.NETWORK_NOT_ALLOWED),  # outside the named rule's network
        ({"client": "10.66.0.9"}, ReasonCode.DENIED_BY_RULE),  # a deny rule's network holds the client
        ({"client": "192.0.2.7", "link": ANY_USER_RULE}, None),  # the named rule has no network: admitted
        ({"client": None, "link": ANY_USER_RULE}, ReasonCode.DENIED_BY_RULE),  # unknown address: deny fails closed
        ({"path": "/closed/a"}, ReasonCode.DENIED_BY_RULE),  # a public deny rule refuses link holders too
        ({"method": "PUT"}, ReasonCode.AUTHENTICATION_REQUIRED),  # links are for GET and HEAD: ignored
        ({"link": "0" * 16}, ReasonCode.AUTHENTICATION_REQUIRED),  # a rule the route does not have: no credential
        ({"host": "plain.example.test", "path": "/x"}, ReasonCode.AUTHENTICATION_REQUIRED),  # route takes no links
    ],
)
def test_what_a_link_holder_is_refused_and_why(changes, status_reason):
    decision = _use(**changes)
    assert decision.allowed is (status_reason is None)
    if status_reason:
        assert decision.reasons[0].code == status_reason


def test_identity_bound_deny_rules_are_judged_at_issue_not_at_use():
    # the contractor deny rule has no network: a link (issued to someone else) is not refused by it
    assert _use(client="10.20.9.9").allowed
    refused = decide_link_issue(POLICY, "space:contractor", "artifacts.example.test", "/builds/1")
    assert not refused.allowed
    assert refused.reasons[0].code == ReasonCode.DENIED_BY_RULE


def test_issue_names_the_first_allow_rule_the_identity_satisfies_whatever_its_network():
    assert decide_link_issue(POLICY, "space:agent", "artifacts.example.test", "/builds/1").rule.key == CI_RULE
    assert decide_link_issue(POLICY, "okta:dev", "ARTIFACTS.example.test:443", "/builds/1").rule.key == ANY_USER_RULE


@pytest.mark.parametrize(
    ("identity", "host", "path", "reason"),
    [
        ("okta:dev", "artifacts.example.test", "/ci/a", ReasonCode.MISSING_ROLE),
        ("space:agent", "artifacts.example.test", "/closed/a", ReasonCode.DENIED_BY_RULE),
        ("space:agent", "plain.example.test", "/x", ReasonCode.SIGNED_LINKS_OFF),
        ("okta:gone", "artifacts.example.test", "/builds/1", ReasonCode.IDENTITY_NOT_ACTIVE),
        ("space:agent", "artifacts.example.test", "/builds/../closed", ReasonCode.PATH_NOT_CANONICAL),
        ("space:agent", "nowhere.example.test", "/", ReasonCode.NO_ROUTE),
    ],
)
def test_issue_refusals_name_what_was_missing(identity, host, path, reason):
    decision = decide_link_issue(POLICY, identity, host, path)
    assert not decision.allowed
    assert decision.reasons[0].code == reason
