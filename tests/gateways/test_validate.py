"""validate() runs the real haproxy -c / lighttpd -tt and catches what they let through."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from apps.credentials.material import generate_key_material
from apps.gateways.rendered import RenderedConfig, RenderedFile
from apps.gateways.validate import validate

pytestmark = pytest.mark.slow

HAPROXY = """\
global
    default-path config
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:18443
    http-request set-var(txn.route) path,map_beg(routes.map)
    http-request set-var(txn.sig) http_auth_bearer,jwt_verify({alg},"{key}")
    default_backend be
backend be
    server upstream 127.0.0.1:9
"""
LIGHTTPD = """\
server.document-root = var.CWD
server.bind = "127.0.0.1"
server.port = 18444
server.modules = ("mod_magnet", "mod_proxy")
magnet.attract-raw-url-to = (var.CWD + "/{script}")
proxy.server = ("" => (("host" => "127.0.0.1", "port" => 9)))
"""
GOOD_LUA = b"local route = lighty.r.req_attr['uri.path']\nif route == nil then return 404 end\n"


def _pem(algorithm: str = "RS256") -> bytes:
    return generate_key_material(algorithm).public_key_pem.encode()


def haproxy(*, alg="RS256", key="keys/k1.pem", key_pem=None, extra=None, config=None):
    files = {"haproxy.cfg": RenderedFile((config or HAPROXY.format(alg=alg, key=key)).encode()),
             "routes.map": RenderedFile(b"/ r1\n")}  # fmt: skip
    if key_pem is not False:
        files["keys/k1.pem"] = RenderedFile(key_pem or _pem(alg), mode=0o600)
    return RenderedConfig(kind="haproxy", main="haproxy.cfg", files={**files, **(extra or {})})


def lighttpd(*, script="gate.lua", lua=GOOD_LUA, config=None, include_script=True):
    files = {"lighttpd.conf": RenderedFile((config or LIGHTTPD.format(script=script)).encode())}
    if include_script:
        files[script] = RenderedFile(lua)
    return RenderedConfig(kind="lighttpd", main="lighttpd.conf", files=files)


def _problems(rendered):
    return [(problem.check, problem.message) for problem in validate(rendered).problems]


def test_a_sound_haproxy_config_passes():
    assert validate(
        haproxy(extra={"lua/helpers.lua": RenderedFile(b"core.register_converters('x', function(s) return s end)\n")})
    ).ok


def test_haproxy_c_passes_a_missing_key_file_but_validation_does_not():
    problems = _problems(haproxy(key_pem=False))
    assert problems == [("reference", "haproxy.cfg refers to keys/k1.pem, which was not rendered")]


def test_a_certificate_is_not_a_key_for_jwt_verify():
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "edge")])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private_key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timezone.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )  # fmt: skip
    binary, key = _problems(haproxy(alg="ES256", key_pem=certificate.public_bytes(serialization.Encoding.PEM)))
    # HAProxy's own words are misleading (the file exists); the key check says what is wrong.
    assert binary[0] == "binary"
    assert "file not found (keys/k1.pem)" in binary[1]
    assert key == ("key", "keys/k1.pem: jwt_verify needs SPKI 'BEGIN PUBLIC KEY' PEM (a certificate gives -5)")


def test_a_key_of_the_wrong_type_for_the_pinned_algorithm():
    problems = _problems(haproxy(alg="RS256", key_pem=_pem("ES256")))
    assert problems == [("key", "keys/k1.pem: an EC key cannot verify RS256 signatures")]


def test_haproxy_syntax_errors_come_back_with_the_binarys_words():
    broken = HAPROXY.format(alg="RS256", key="keys/k1.pem").replace("default_backend be", "defualt_backend be")
    [(check, message)] = _problems(haproxy(config=broken))
    assert check == "binary"
    assert "unknown keyword 'defualt_backend'" in message


def test_haproxy_lua_must_compile_as_lua_5_3():
    problems = _problems(haproxy(extra={"lua/bad.lua": RenderedFile(b"local x = \n")}))
    assert problems == [("lua", "luac5.3: lua/bad.lua:2: unexpected symbol near <eof>")]


def test_references_outside_the_rendered_files_are_refused():
    problems = _problems(haproxy(key="/etc/policyhub/keys/k1.pem"))
    assert problems == [("reference", "haproxy.cfg refers to /etc/policyhub/keys/k1.pem, outside the rendered files")]


def test_a_sound_lighttpd_config_passes():
    assert validate(lighttpd()).ok


def test_lighttpd_tt_passes_a_missing_magnet_script_but_validation_does_not():
    [(check, message)] = _problems(lighttpd(include_script=False))
    assert check == "reference"
    assert message.startswith("lighttpd.conf refers to /") and message.endswith("/gate.lua, which was not rendered")


def test_lighttpd_lua_must_compile_as_lua_5_4():
    assert _problems(lighttpd(lua=b"if then\n")) == [("lua", "luac5.4: gate.lua:1: unexpected symbol near 'then'")]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c + 'secdownload.secret = "x"\n', "unknown config-key: secdownload.secret"),
        (lambda c: c.replace('"mod_proxy"', '"mod_secdownload"'), "dlopen() failed"),
        (lambda c: c + '$HTTP["url"] =~ "^/dl/" {\n', "parser failed"),
    ],
)
def test_lighttpd_errors_and_warnings_come_back_with_the_binarys_words(edit, expected):
    [(check, message)] = _problems(lighttpd(config=edit(LIGHTTPD.format(script="gate.lua"))))
    assert check == "binary"
    assert expected in message


def test_rendered_file_names_stay_inside_their_directory():
    for name in ("../etc/passwd", "/abs.cfg", "a//b", "keys/../x"):
        with pytest.raises(ValueError, match="plain relative path"):
            RenderedConfig(kind="haproxy", main=name, files={name: RenderedFile(b"")})


def test_the_config_hash_covers_names_modes_and_content_in_a_fixed_order():
    a = RenderedConfig(kind="haproxy", main="a", files={"a": RenderedFile(b"1"), "b": RenderedFile(b"2")})
    b = RenderedConfig(kind="haproxy", main="a", files={"b": RenderedFile(b"2"), "a": RenderedFile(b"1")})
    assert a.sha256() == b.sha256()
    assert (
        a.sha256()
        != RenderedConfig(
            kind="haproxy", main="a", files={"a": RenderedFile(b"1"), "b": RenderedFile(b"2", 0o600)}
        ).sha256()
    )


def test_the_system_trust_store_is_not_a_missing_file():
    config = HAPROXY.format(alg="RS256", key="keys/k1.pem").replace(
        "server upstream 127.0.0.1:9", "server upstream 127.0.0.1:9 ssl verify required ca-file @system-ca"
    )
    assert _problems(haproxy(config=config)) == []


def test_lua_modules_the_gate_requires_must_load():
    rendered = lighttpd()
    needs = RenderedConfig(kind="lighttpd", main=rendered.main, files=rendered.files,
                           lua_modules=("cjson.safe", "openssl.pkey", "no_such_module"))  # fmt: skip
    assert _problems(needs) == [("lua", "Lua module no_such_module does not load with lua5.4")]


def test_compiler_messages_about_private_lua_files_never_quote_them():
    secret_script = RenderedFile(b'local keys = { k1 = "hunter2-secret" "oops" }\n', mode=0o600)
    rendered = lighttpd(lua=b"return 200\n")
    broken = RenderedConfig(kind="lighttpd", main=rendered.main, files={**rendered.files, "keys.lua": secret_script})
    [(check, message)] = _problems(broken)
    assert check == "lua"
    assert "hunter2" not in message
    assert message == "keys.lua does not compile (line 1); the compiler's text is withheld: the file holds secrets"
