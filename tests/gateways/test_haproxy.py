"""The HAProxy renderer's files: golden copies, determinism, the real binary's verdict, and refusals.

Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/gateways/test_haproxy.py`` and review the diff.
"""

import base64
import dataclasses
import os
import random
import re
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apps.core.crypto import Secret
from apps.credentials.assertions import assertion_key_bytes
from apps.gateways.renderers import render
from apps.gateways.renderers.base import (
    CALLBACK_PATH,
    IDENTITY_HEADERS,
    SIGN_OUT_PATH,
    BrowserSignIn,
    RenderError,
    RenderRequest,
    RevokedSubject,
    VerificationKey,
)
from apps.gateways.renderers.haproxy import HaproxyRenderer
from apps.gateways.validate import validate
from apps.policies.snapshot import compile_policy
from tests.policies.builder import route, rule, rule_key
from tests.support.keys import golden_assertion_key

GOLDEN = Path(__file__).with_name("golden") / "haproxy"
GATEWAY = "edge"
# Fixed key material, so the golden files do not change from run to run.
RSA_PUBLIC_PEM = """\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAgSju8q9qLyfa13VHbSUC
uvdKCm8waPtEHkDhnhpDIQ1m13osR83fXfDF/OO+PGE6ymg3x30HlTBWli2anvwI
RtODxhJwzHulaP99mqA8lYHe2tviTBa0l8A8ZyaiKfXNsk5REUWViXNHEk5rxAS4
iJ3xG+vCT9+YHcEDXNrrLHCq8yJe710Vy8etdl4TEn8F4ThBGgaCrVJ2t3HF2tVg
l+VAgJEhcPvrPi4aOIZmlcnNHzZ47zx7f7OqiAoiEc+UH/Hb8LRcYNYyFaQyvkS7
uOtKVxni3+9fawIkUQlDin5lXbyaFuDxrC9Y6dshh8jlO029g+BVAlLHzwQUQAcI
QwIDAQAB
-----END PUBLIC KEY-----
"""
EC_PUBLIC_PEM = (
    ec.derive_private_key(0x5EED, ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
KEYS = (
    VerificationKey("rsa-2026", "RS256", RSA_PUBLIC_PEM, Secret("")),
    VerificationKey("ec-2026", "ES256", EC_PUBLIC_PEM, Secret("")),
    VerificationKey("hmac-2026", "HS256", "", Secret("golden-hmac-secret with 'quotes' \\ and #")),
)
LINK_KEYS = (VerificationKey("links-2026", "HS256", "", Secret("golden-link-secret")),)
ASSERTION_KEY = golden_assertion_key()
SIGN_IN = BrowserSignIn(
    "https://policyhub.example.test/edge/signin", "https://policyhub.example.test/edge/signout",
    Secret(base64.b64encode(b"golden-sign-in-state-key-32-byte").decode()), 300,
)  # fmt: skip
ROUTES = (
    route("portal.example.test", "/backstage",
          rule("roles", roles=["dev", "ops"], identity_headers=["subject", "roles"])),
    route("portal.example.test", "/backstage/api", rule("authenticated", identity_headers=["username", "email"])),
    route("airflow.example.test", "/admin", rule("roles", effect="deny", roles=["contractor"]),
          rule("roles", roles=["ops"], cidrs=["10.0.0.0/8", "10.1.0.0/16"], rate_limit_per_minute=100)),
    route("airflow.example.test", "/health", rule("public", cache_seconds=5), methods=["GET", "HEAD"]),
    route("*.apps.example.test", "/", rule("authenticated", identity_headers=["display-name"])),
    route("*.example.test", "/", rule("public")),
    route("artifacts.example.test", "/",
          rule("public", effect="deny", cidrs=["10.66.0.0/16", "2001:db8::/32", "::ffff:10.0.0.0/104"]),
          rule("public")),
    route("artifacts.example.test", "/builds", rule("roles", roles=["ci"], cidrs=["10.20.0.0/16"]),
          rule("roles", roles=["ops"]), signed_links=True),
    route("elsewhere.example.test", "/", rule("public"), gateway="other"),
)  # fmt: skip


def _content(routes) -> dict:
    roles = sorted({role for r in routes for body in r["rules"] for role in body["roles"]})
    gateways = [{"name": name, "kind": "haproxy", "listen_address": "127.0.0.1:1", "public_hostnames": []}
                for name in (GATEWAY, "other")]  # fmt: skip
    return {"format": 2, "roles": roles, "gateways": gateways, "routes": list(routes), "identities": {}}


def _request(routes=ROUTES, keys=KEYS, **changes) -> RenderRequest:
    policy = compile_policy(_content(routes), "0" * 64)
    request = RenderRequest(
        policy, GATEWAY, "127.0.0.1:8443", keys, "https://policyhub.example.test", "golden-1", link_keys=LINK_KEYS,
        assertion_key=ASSERTION_KEY,
    )  # fmt: skip
    return dataclasses.replace(request, **changes)


def test_the_rendered_files_match_the_golden_files():
    rendered = render("haproxy", _request())
    if os.environ.get("UPDATE_GOLDEN"):
        for stale in GOLDEN.rglob("*"):
            if stale.is_file():
                stale.unlink()
        for name, file in rendered.files.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_bytes(file.content)
    golden = {path.relative_to(GOLDEN).as_posix() for path in GOLDEN.rglob("*") if path.is_file()}
    assert sorted(rendered.files) == sorted(golden)
    for name, file in rendered.files.items():
        assert file.content == (GOLDEN / name).read_bytes(), f"{name} differs from its golden copy"


def test_secrets_are_private_and_public_material_is_not():
    modes = {name: file.mode for name, file in render("haproxy", _request()).files.items()}
    assert modes.pop("keys/hs256.map") == 0o600
    assert modes.pop("keys/links.map") == 0o600
    assert modes.pop("keys/assertion.map") == 0o600
    assert set(modes.values()) == {0o644}
    config = render("haproxy", _request()).files["haproxy.cfg"].content.decode()
    assert "golden-hmac-secret" not in config
    assert "golden-link-secret" not in config
    assertion_key = base64.b64encode(assertion_key_bytes(ASSERTION_KEY.secret.reveal())).decode()
    assert assertion_key not in config


def test_rendering_is_deterministic_whatever_the_input_order():
    first = render("haproxy", _request())
    assert render("haproxy", _request()).sha256() == first.sha256()
    shuffled = list(ROUTES)
    random.Random(7).shuffle(shuffled)
    shuffled = [{**r, "rules": list(reversed(r["rules"]))} if r["host"].startswith("portal") else r for r in shuffled]
    assert render("haproxy", _request(shuffled, tuple(reversed(KEYS)))).sha256() == first.sha256()


def test_only_the_gateways_own_routes_are_rendered():
    files = render("haproxy", _request()).files
    assert b"elsewhere" not in b"".join(file.content for file in files.values())
    other = render("haproxy", _request(gateway="other")).files
    assert other["routes.map"].content == b"elsewhere.example.test/ 1|upstream_1|*|AP:::0:no-store:;\n"


def test_upstream_override_replaces_every_upstream():
    config = render("haproxy", _request(upstream_override="http://127.0.0.1:9999")).files["haproxy.cfg"].content
    assert config.decode().count("\nbackend upstream_") == 1
    assert b"server upstream_1 127.0.0.1:9999\n" in config


def test_the_config_deletes_every_identity_header_by_its_shared_prefix():
    assert all(name.startswith("X-Policyhub-") for name, _claim in IDENTITY_HEADERS.values())
    assert "del-header X-Policyhub- -m beg" in render("haproxy", _request()).files["haproxy.cfg"].content.decode()


def test_without_browser_sign_in_nothing_of_it_is_rendered():
    files = render("haproxy", _request()).files
    assert "keys/sign-in.map" not in files
    config = files["haproxy.cfg"].content.decode()
    leftovers = [word for word in (CALLBACK_PATH, SIGN_OUT_PATH, "sign_in", "req.cook", "Set-Cookie") if word in config]
    assert leftovers == []


def test_browser_sign_in_keeps_its_state_key_private_and_redirects_exactly_where_the_401_is():
    rendered = render("haproxy", _request(browser_sign_in=SIGN_IN))
    assert rendered.files["keys/sign-in.map"].mode == 0o600
    assert rendered.files["keys/sign-in.map"].content == f"state {SIGN_IN.state_key.reveal()}\n".encode()
    config = rendered.files["haproxy.cfg"].content.decode()
    assert SIGN_IN.state_key.reveal() not in config
    # S4 and step 6's 401 share one condition: a navigation is redirected exactly when it would get the 401
    unauthorized = re.search(r"deny_status 401 hdr WWW-Authenticate Bearer if !admitted (.*)", config)[1]
    assert re.search(rf"set-var\(txn.new_state\) .* !admitted {re.escape(unauthorized)}\n", config)


@pytest.mark.slow
def test_the_golden_config_passes_validation():
    result = validate(render("haproxy", _request()))
    assert result.problems == ()
    with_sign_in = validate(render("haproxy", _request(browser_sign_in=SIGN_IN)))
    assert with_sign_in.problems == ()


@pytest.mark.slow
def test_a_revocation_list_beside_the_releases_is_read_by_absolute_path_and_must_exist(tmp_path):
    revocations = tmp_path / "shared" / "revoked.map"
    rendered = render("haproxy", _request(revocation_list=str(revocations)))
    config = rendered.files["haproxy.cfg"].content.decode()
    assert f"map_str_int({revocations})" in config
    assert "revoked.map" not in rendered.files and rendered.external_files == (str(revocations),)
    release = tmp_path / "releases" / "1"
    rendered.write_to(release)
    missing = validate(rendered, directory=release)
    assert not missing.ok and str(revocations) in missing.problems[0].message  # haproxy -c opens it
    revocations.parent.mkdir()
    revocations.write_bytes(
        HaproxyRenderer().revocations_render(gateway="edge", entries=[RevokedSubject("okta:00u1", 1700000000)])
    )
    assert validate(rendered, directory=release).ok
    assert revocations.read_text() == "okta:00u1 1700000000\n"


@pytest.mark.slow
def test_https_upstreams_are_verified_against_the_system_trust_store():
    routes = (
        {**route("ip.test", "/", rule("public")), "upstream_url": "https://10.0.0.5:8443"},
        {**route("name.test", "/", rule("public")), "upstream_url": "https://localhost:8443"},
    )
    rendered = render("haproxy", _request(routes))
    config = rendered.files["haproxy.cfg"].content.decode()
    assert "server upstream_1 10.0.0.5:8443 ssl verify required ca-file @system-ca\n" in config
    assert (
        "server upstream_2 localhost:8443 ssl verify required ca-file @system-ca sni str(localhost) init-addr" in config
    )
    # validate() takes HAProxy's built-in "@system-ca" for a file name (reported; not in this module's remit)
    problems = [problem for problem in validate(rendered).problems if "@system-ca" not in problem.message]
    assert problems == []


def _generated_routes(count: int) -> list[dict]:
    routes = []
    for n in range(count):
        host = f"*.team{n % 300}.example.test" if n % 10 == 0 else f"app{n % 500}.example.test"
        rules = [rule("roles", roles=[f"role-{n % 7}", "ops"], identity_headers=["subject"], rate_limit_per_minute=60)]
        if n % 3 == 0:
            rules.append(rule("public", effect="deny", cidrs=[f"10.{n % 256}.{n // 256}.0/24", "192.168.0.0/16"]))
        if n % 5 == 0:
            rules.append(rule("authenticated", cidrs=[f"172.16.{n % 256}.0/24"], cache_seconds=30))
        routes.append(route(host, f"/service-{n}/api", *rules, methods=["GET", "POST"] if n % 2 else []))
    return routes


@pytest.mark.slow
def test_ten_thousand_routes_render_and_validate(capsys):
    request = _request(_generated_routes(10_000), upstream_override="http://127.0.0.1:9")
    started = time.perf_counter()
    rendered = render("haproxy", request)
    rendered_at = time.perf_counter()
    result = validate(rendered)
    validated_at = time.perf_counter()
    with capsys.disabled():
        print(
            f"\nhaproxy, 10,000 routes: render {rendered_at - started:.3f} s, "
            f"validate {validated_at - rendered_at:.3f} s, routes.map {len(rendered.files['routes.map'].content):,} B"
        )
    assert result.problems == ()
    assert rendered.files["routes.map"].content.count(b"\n") == 10_000
    assert rendered.files["haproxy.cfg"].content.count(b"\n") < 170  # no per-route lines


def _key(algorithm="RS256", pem=RSA_PUBLIC_PEM, secret="", kid="k1") -> VerificationKey:
    return VerificationKey(kid, algorithm, pem, Secret(secret))


REFUSALS = {
    "PS256 key": ({"keys": (_key("PS256"),)}, "key k1"),
    "ES256 kid holding an RSA key": ({"keys": (_key("ES256"),)}, "key k1"),
    "unreadable PEM": ({"keys": (_key(pem="not a key"),)}, "key k1"),
    "empty HMAC secret": ({"keys": (_key("HS256", ""),)}, "key k1"),
    "HMAC secret with a line break": ({"keys": (_key("HS256", "", "a\nb"),)}, "key k1"),
    "kid that is not a file name": ({"keys": (_key(kid="../k1"),)}, "key ../k1"),
    "duplicate kid": ({"keys": (_key(), _key("HS256", "", "s"))}, "key k1"),
    "issuer with a line break": ({"issuer": "policyhub\nbind *:80"}, "issuer"),
    "listen address with options": ({"listen_address": "127.0.0.1:80 ssl"}, "listen address"),
    "rate limit on a public rule": (
        {"routes": (route("a.test", "/", rule("public", rate_limit_per_minute=5)),)},
        f"rule {rule_key('edge/a.test/', 0)} of route edge/a.test/",
    ),
    "role that could split roles_csv": (
        {"routes": (route("a.test", "/", rule("roles", roles=["a,b"])),)},
        f"rule {rule_key('edge/a.test/', 0)} of route edge/a.test/",
    ),
    "path prefix with a trailing slash": (
        {"routes": (route("a.test", "/x/", rule("public")),)},
        "route edge/a.test/x/",
    ),
    "lower-case method": ({"routes": (route("a.test", "/", rule("public"), methods=["get"]),)}, "route edge/a.test/"),
    "upper-case host": ({"routes": (route("A.test", "/", rule("public")),)}, "host A.test"),
    "upstream with a path": (
        {"routes": ({**route("a.test", "/", rule("public")), "upstream_url": "http://10.0.0.1:80/app"},)},
        "upstream 'http://10.0.0.1:80/app'",
    ),
    "sign-in URL with a query": (
        {"browser_sign_in": dataclasses.replace(SIGN_IN, sign_in_url="https://p.test/signin?next=1")},
        "browser sign-in",
    ),
    "sign-out URL with a quote": (
        {"browser_sign_in": dataclasses.replace(SIGN_IN, sign_out_url='https://p.test/"out')},
        "browser sign-in",
    ),
    "negative refresh time (HAProxy reads a negative -m int pattern as a range)": (
        {"browser_sign_in": dataclasses.replace(SIGN_IN, refresh_seconds=-1)},
        "browser sign-in",
    ),
    "state key of 16 bytes": (
        {"browser_sign_in": dataclasses.replace(SIGN_IN, state_key=Secret(base64.b64encode(b"k" * 16).decode()))},
        "browser sign-in",
    ),
    "upstream with a line break": (
        {"routes": ({**route("a.test", "/", rule("public")), "upstream_url": "http://10.0.0.1:80\nbind :1"},)},
        "upstream 'http://10.0.0.1:80\\nbind :1'",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_what_haproxy_cannot_enforce_is_refused_by_name(case):
    changes, where = REFUSALS[case]
    with pytest.raises(RenderError) as raised:
        render("haproxy", _request(**changes))
    assert raised.value.where == where
