"""The lighttpd renderer's output: golden files, determinism, validation, refusals and speed.

Regenerate the golden files with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/gateways/test_lighttpd.py``.
"""

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from apps.core.crypto import Secret
from apps.gateways.renderers import render
from apps.gateways.renderers.base import RenderError, RenderRequest, RevokedSubject, VerificationKey
from apps.gateways.renderers.lighttpd import LighttpdRenderer, lua_string
from apps.gateways.validate import validate
from tests.policies.builder import policy, route, rule, rule_key
from tests.support.keys import golden_assertion_key

GOLDEN = Path(__file__).with_name("golden") / "lighttpd"
GATEWAY = "edge"
ISSUER = "policyhub"  # settings.POLICYHUB_TOKEN_ISSUER: what sign_edge_token writes into iss
# Fixed key material, so the golden files do not change from run to run.
GOLDEN_KEY = VerificationKey(kid="edge-hs-1", algorithm="HS256", public_key_pem="", secret=Secret("golden-" * 6))
GOLDEN_LINK_KEY = VerificationKey("edge-link-1", "HS256", "", Secret("golden-link-secret"))
GOLDEN_ASSERTION_KEY = golden_assertion_key()


def small_policy():
    return policy(
        route("app.local", "/", rule("public")),
        route(
            "app.local",
            "/api",
            rule("authenticated", identity_headers=["subject", "roles"], cache_seconds=60, rate_limit_per_minute=100),
            rule("roles", effect="deny", roles=["banned"]),
            methods=["GET", "POST"],
        ),
        route("*.example.com", "/", rule("roles", roles=["admin", "ops"], cidrs=["10.0.0.0/8", "2001:db8::/32"])),
        route("static.example.com", "/assets", rule("public", cache_seconds=300)),
        route(
            "static.example.com",
            "/artifacts",
            rule("public", effect="deny", cidrs=["192.0.2.0/24"]),
            rule("roles", roles=["ci"], cidrs=["10.20.0.0/16"]),
            signed_links=True,
        ),
        route('quote".local', "/we'ird\\]]", rule("public", cidrs=["::ffff:127.0.0.0/104"])),
        route("other.local", "/", rule("public"), gateway="other"),
        identities={"alice": ["admin"], "bob": []},
    )


def large_policy(count: int = 10_000):
    routes = [
        route(
            f"app{index}.example.com" if index % 2 else f"*.zone{index}.example.com",
            f"/svc{index}/v{index % 7}",
            rule("roles", roles=[f"role{index % 13}"], identity_headers=["subject"]),
            rule("public", effect="deny", cidrs=["192.0.2.0/24"]),
            methods=["GET"] if index % 3 else [],
        )
        for index in range(count)
    ]
    return policy(*routes, identities={"alice": ["role1"]})


def render_request(compiled, *, listen="127.0.0.1:18080", keys=(GOLDEN_KEY,), upstream_override="", issuer=ISSUER):
    return RenderRequest(
        policy=compiled,
        gateway=GATEWAY,
        listen_address=listen,
        keys=keys,
        issuer=issuer,
        deployment_id="deployment-7",
        upstream_override=upstream_override,
        link_keys=(GOLDEN_LINK_KEY,),
        assertion_key=GOLDEN_ASSERTION_KEY,
    )


def lighttpd(request: RenderRequest):
    return render("lighttpd", request)


def test_golden_files():
    rendered = lighttpd(render_request(small_policy()))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for stale in GOLDEN.iterdir():
            stale.unlink()
        for name, file in rendered.files.items():
            (GOLDEN / name).write_bytes(file.content)
    assert sorted(path.name for path in GOLDEN.iterdir()) == sorted(rendered.files)
    for name, file in rendered.files.items():
        assert file.content == (GOLDEN / name).read_bytes(), f"{name} differs from its golden file"
    assert rendered.main == "lighttpd.conf"
    # the policy script holds the HS256 secrets
    assert {name: file.mode for name, file in rendered.files.items()} == {
        "lighttpd.conf": 0o644,
        "policyhub_forward.lua": 0o644,
        "policyhub_gate.lua": 0o644,
        "policyhub_policy.lua": 0o600,
        "policyhub_response.lua": 0o644,
        "policyhub_revocations.lua": 0o644,
    }


def test_rendering_is_deterministic():
    first = lighttpd(render_request(small_policy()))
    second = lighttpd(render_request(small_policy()))
    assert first.sha256() == second.sha256()
    shuffled = lighttpd(render_request(small_policy(), keys=(GOLDEN_KEY, _key("edge-hs-0"))))
    assert shuffled.sha256() == lighttpd(render_request(small_policy(), keys=(_key("edge-hs-0"), GOLDEN_KEY))).sha256()


def test_only_the_gateways_own_routes_are_rendered():
    script = lighttpd(render_request(small_policy())).files["policyhub_policy.lua"].content
    assert b'"app.local"' in script
    assert b"other.local" not in script


@pytest.mark.slow
def test_the_small_policy_validates():
    assert validate(lighttpd(render_request(small_policy()))).problems == ()


@pytest.mark.slow
def test_ten_thousand_routes_render_quickly_and_validate():
    request = render_request(large_policy())
    started = time.perf_counter()
    rendered = lighttpd(request)
    assert time.perf_counter() - started < 1.0
    assert validate(rendered).problems == ()


def test_an_upstream_block_per_distinct_upstream_and_an_override_for_all():
    compiled = policy(
        {**route("a.local", "/", rule("public")), "upstream_url": "http://10.0.0.1:8080"},
        {**route("b.local", "/", rule("public")), "upstream_url": "http://[2001:db8::1]:80"},
        {**route("c.local", "/", rule("public")), "upstream_url": "http://10.0.0.1:8080"},
    )
    conf = lighttpd(render_request(compiled)).files["lighttpd.conf"].content.decode()
    assert conf.count("proxy.server") == 2
    assert '"host" => "10.0.0.1", "port" => 8080' in conf
    assert '"host" => "2001:db8::1", "port" => 80' in conf
    overridden = lighttpd(render_request(compiled, upstream_override="http://127.0.0.1:9999"))
    conf = overridden.files["lighttpd.conf"].content.decode()
    assert conf.count("proxy.server") == 1
    assert '"host" => "127.0.0.1", "port" => 9999' in conf


def test_ipv6_listen_addresses_bind_in_brackets():
    conf = lighttpd(render_request(small_policy(), listen="[::1]:8443")).files["lighttpd.conf"].content.decode()
    assert 'server.bind = "[::1]"\nserver.port = 8443\n' in conf


def _key(kid: str, algorithm: str = "HS256", secret: str = "s" * 43) -> VerificationKey:
    return VerificationKey(kid=kid, algorithm=algorithm, public_key_pem="", secret=Secret(secret))


@pytest.mark.parametrize(
    ("compiled", "keys", "override", "where", "reason"),
    [
        (small_policy(), (_key("rs-1", "RS256", ""),), "", "key rs-1", "public key is not readable PEM"),
        (small_policy(), (_key("ps-1", "PS256", ""),), "", "key ps-1", "cannot verify PS256"),
        (small_policy(), (_key("hs-1", secret=""),), "", "key hs-1", "needs its shared secret"),
        (small_policy(), (_key("hs-1"), _key("hs-1")), "", "key hs-1", "listed twice"),
        (small_policy(), (GOLDEN_KEY,), "https://127.0.0.1:9", "upstream_override", "only plain http"),
        (
            policy({**route("a.local", "/x", rule("public")), "upstream_url": "https://10.0.0.1:443"}),
            (GOLDEN_KEY,),
            "",
            "route edge/a.local/x",
            "only plain http",
        ),
        (
            policy(route("a.local", "/", rule("public", rate_limit_per_minute=5))),
            (GOLDEN_KEY,),
            "",
            f"rule {rule_key('edge/a.local/', 0)}",
            "no identity to rate-limit",
        ),
        (
            policy(route("a.local", "/", rule("authenticated", identity_headers=["shoe-size"]))),
            (GOLDEN_KEY,),
            "",
            f"rule {rule_key('edge/a.local/', 0)}",
            "unknown identity headers",
        ),
    ],
)
def test_what_lighttpd_cannot_enforce_is_refused_by_name(compiled, keys, override, where, reason):
    with pytest.raises(RenderError) as refused:
        lighttpd(render_request(compiled, keys=keys, upstream_override=override))
    assert refused.value.where == where
    assert reason in refused.value.reason


@pytest.mark.slow
def test_lua_string_literals_round_trip_every_byte(tmp_path):
    texts = ["", "plain", 'quote " backslash \\ ]] [[ --', "\n\r\t\0\x7f", "Zoë 🙂", "".join(map(chr, range(256)))]
    script = tmp_path / "echo.lua"
    script.write_text("".join(f"io.write({lua_string(text)}, '\\0\\255')\n" for text in texts))
    output = subprocess.run(["lua5.4", str(script)], capture_output=True, check=True).stdout
    assert output.split(b"\0\xff")[:-1] == [text.encode() for text in texts]


def test_an_install_directory_names_every_file_absolutely(tmp_path):
    install = tmp_path / "releases" / "7"
    request = replace(render_request(small_policy()), install_directory=str(install))
    rendered = lighttpd(request)
    conf = rendered.files["lighttpd.conf"].content.decode()
    assert "var.CWD" not in conf
    assert (
        f'magnet.attract-raw-url-to = ("{install}/policyhub_revocations.lua", "{install}/policyhub_policy.lua")' in conf
    )
    # validated in place, as the deploy pipeline does with a staged release
    rendered.write_to(install)
    assert validate(rendered, directory=install).ok


def test_a_revocation_list_beside_the_releases_is_named_absolutely_and_not_rendered(tmp_path):
    install, revocations = tmp_path / "releases" / "7", tmp_path / "shared" / "policyhub_revocations.lua"
    request = replace(render_request(small_policy()), install_directory=str(install), revocation_list=str(revocations))
    rendered = lighttpd(request)
    conf = rendered.files["lighttpd.conf"].content.decode()
    assert f'magnet.attract-raw-url-to = ("{revocations}", "{install}/policyhub_policy.lua")' in conf
    assert "policyhub_revocations.lua" not in rendered.files
    assert rendered.external_files == (str(revocations),)
    rendered.write_to(install)
    assert validate(rendered, directory=install).ok  # the external list is not a missing reference


@pytest.mark.parametrize("path", ["relative.lua", "/srv/a b.lua", "/srv/../etc/x.lua", '/srv/"x.lua'])
def test_a_revocation_list_path_that_cannot_be_written_safely_is_refused(path):
    with pytest.raises(RenderError, match="revocation list"):
        lighttpd(replace(render_request(small_policy()), revocation_list=path))


def test_the_revocation_script_compiles_and_lists_each_subject(tmp_path):
    script = LighttpdRenderer().revocations_render(
        gateway="edge", entries=[RevokedSubject("okta:00u1", 1700000000), RevokedSubject("space:a.b@c-d", 5)]
    )
    path = tmp_path / "revocations.lua"
    path.write_bytes(script)
    subprocess.run(["luac5.4", "-p", str(path)], check=True)
    assert b'["okta:00u1"] = 1700000000,' in script and b'["space:a.b@c-d"] = 5,' in script


@pytest.mark.parametrize("directory", ["relative/dir", "/", '/srv/a"b', "/srv/a\nb", "/srv/../etc", "/srv/a b"])
def test_install_directories_that_cannot_be_written_safely_are_refused(directory):
    request = replace(render_request(small_policy()), install_directory=directory)
    with pytest.raises(RenderError, match="install directory"):
        lighttpd(request)
