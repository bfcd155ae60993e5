"""The lighttpd renderer: ``lighttpd.conf``, a generated mod_magnet script holding one gateway's
policy as Lua data, and the stable Lua gate (``renderers/lighttpd/``) that enforces it.

Verified on Debian's lighttpd 1.4.69: a request header the gate sets at the raw-url stage selects
``$REQUEST_HEADER`` blocks, so one ``proxy.server`` block per distinct upstream routes every
request; ``magnet.attract-response-start-to`` can replace an upstream's ``Cache-Control``; a
script returning ``lighty.RESTART_REQUEST`` has the raw-url scripts run again with the headers it
set (how browser sign-in puts a cookie's token through the revocation list).
"""

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path
from string import Template
from urllib.parse import quote, urlsplit

from apps.credentials.assertions import ASSERTION_HEADER, BOUND_HEADERS
from apps.credentials.choices import CLOCK_LEEWAY_SECONDS
from apps.gateways.rendered import RenderedConfig, RenderedFile
from apps.gateways.renderers import register
from apps.gateways.renderers.base import (
    ASYMMETRIC_ALGORITHMS,
    CALLBACK_MAX_AGE_SECONDS,
    CALLBACK_PATH,
    IDENTITY_HEADERS,
    LINK_RULE_KEY,
    SIGN_IN_PURPOSE,
    SIGN_OUT_PATH,
    STATE_MAX_AGE_SECONDS,
    WELL_KNOWN_PATH,
    BrowserSignIn,
    RenderError,
    RenderRequest,
    RevokedSubject,
    TlsCertificate,
    VerificationKey,
    assertion_signing_key,
    cache_control,
    checked_browser_sign_in,
    revocation_list_reference,
    sign_in_cookie_attributes,
    sign_in_cookie_names,
    spki_public_key,
    tls_material,
)
from apps.policies.snapshot import HostIndex, RouteView, RuleView

SOURCES = Path(__file__).with_name("lighttpd")
MAIN = "lighttpd.conf"
POLICY_SCRIPT = "policyhub_policy.lua"
LIBRARY = "policyhub_gate.lua"
FORWARD_SCRIPT = "policyhub_forward.lua"
RESPONSE_SCRIPT = "policyhub_response.lua"
REVOCATION_SCRIPT = "policyhub_revocations.lua"
UPSTREAM_HEADER = "X-Policyhub-Upstream"
CACHE_CONTROL_ENV = "POLICYHUB_CACHE_CONTROL"
SECRET_FILE_MODE = 0o600
LUA_MODULES = ("cjson.safe",)
LUAOSSL_MODULES = ("openssl.pkey", "openssl.digest")  # Debian lua-luaossl: RS256/ES256 edge tokens
EVERY_IPV4_ADDRESS = "0.0.0.0"  # noqa: S104 (what a gateway's listen address "*:port" asks for)

# Inside a double-quoted Lua string only backslash, the quote and line breaks are special; every
# byte outside this set is written as a three-digit decimal escape, which no following digit can
# extend (Lua reads at most three), so any text round-trips byte for byte.
_LUA_SAFE = r"A-Za-z0-9 !#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~"
_LUA_UNSAFE = re.compile(f"[^{_LUA_SAFE}]".encode())
_LUA_UNSAFE_TEXT = re.compile(f"[^{_LUA_SAFE}]")
_CONF_HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LUA_KEYWORDS = frozenset(
    ("and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil",
     "not", "or", "repeat", "return", "then", "true", "until", "while")
)  # fmt: skip
_NO_ROUTES = HostIndex.of(())


def lua_bytes(data: bytes) -> str:
    escaped = _LUA_UNSAFE.sub(lambda match: b"\\%03d" % match.group()[0], data)
    return '"' + escaped.decode("ascii") + '"'


def lua_string(text: str) -> str:
    return lua_bytes(text.encode()) if _LUA_UNSAFE_TEXT.search(text) else f'"{text}"'


class LuaCode(str):
    """Lua source that ``lua_value`` embeds as it is (a literal rendered earlier)."""


def lua_value(value) -> str:
    """A Lua literal for str, bytes, int, bool, list/tuple (sequence) or dict (keys in given order)."""
    if isinstance(value, LuaCode):
        return value
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, bytes):
        return lua_bytes(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_value(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_lua_key(key)} = {lua_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


@lru_cache(maxsize=1024)
def _lua_key(key: str) -> str:
    return key if _LUA_NAME.match(key) and key not in _LUA_KEYWORDS else f"[{lua_string(key)}]"


@cache
def _source(name: str) -> str:
    return (SOURCES / name).read_text()


def _template(name: str, **values: str) -> bytes:
    return Template(_source(name)).substitute(values).encode()


def _sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# Upstreams -------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _upstream_address(url: str) -> tuple[str, int]:
    """(host, port) for a proxy.server block; ValueError says why a URL cannot be one."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"upstream {url!r}: lighttpd's mod_proxy speaks only plain http to upstreams")
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if port is None or parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        raise ValueError(f"upstream {url!r} must be http://host:port and nothing more")
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        if not _CONF_HOSTNAME.match(host):
            raise ValueError(f"upstream host {host!r} is neither an IP address nor a host name") from None
    return host, port


class _Upstreams:
    """Distinct upstreams, numbered in order of first use (routes are visited in a fixed order)."""

    def __init__(self, override: str):
        self.override = override
        self.ids: dict[tuple[str, int], str] = {}

    def id_for(self, route: RouteView) -> str:
        try:
            address = _upstream_address(self.override or route.upstream_url)
        except ValueError as error:
            raise RenderError("upstream_override" if self.override else f"route {route.key}", str(error)) from None
        return self.ids.setdefault(address, str(len(self.ids) + 1))

    def conf_blocks(self) -> str:
        if not self.ids:
            return 'url.access-deny = ("")'
        blocks = []
        for (host, port), upstream_id in self.ids.items():
            condition = f"$REQUEST_HEADER[{_conf_string(UPSTREAM_HEADER)}] == {_conf_string(upstream_id)}"
            server = f'proxy.server = ("" => (("host" => {_conf_string(host)}, "port" => {port})))'
            blocks.append(f"{'else ' if blocks else ''}{condition} {{\n    {server}\n}}")
        # Unreachable while the gate works; if it ever fails to name an upstream, refuse.
        blocks.append('else {\n    url.access-deny = ("")\n}')
        return "\n".join(blocks)


_INSTALL_DIRECTORY = re.compile(r"(/[A-Za-z0-9._@+-]+)+/?")


class _FilePaths:
    """How lighttpd.conf names the rendered files: relative to the working directory (var.CWD), or
    under an absolute install directory. A deploy needs the latter: a graceful restart (SIGUSR1)
    re-reads the config but keeps the old working directory, so after ``current`` flips to a new
    release, var.CWD would still name the old one."""

    def __init__(self, install_directory: str, gateway: str):
        climbs = "/../" in f"{install_directory}/"
        if install_directory and (not _INSTALL_DIRECTORY.fullmatch(install_directory) or climbs):
            raise RenderError(
                f"gateway {gateway}",
                f"install directory {install_directory!r} must be an absolute path of letters, digits and . _ @ + / -",
            )
        self.directory = install_directory.rstrip("/")

    def location(self) -> str:
        if self.directory:
            return f"# Generated by policyhub. lighttpd reads the files below from {self.directory}:"
        return "# Generated by policyhub. lighttpd runs with this directory as its working directory (var.CWD):"

    def conf_expression(self, name: str) -> str:
        return _conf_string(f"{self.directory}/{name}") if self.directory else f'var.CWD + "/{name}"'


def _conf_string(text: str) -> str:
    # Only our own constants, IP addresses, checked host names and checked directories get here:
    # nothing to escape.
    return f'"{text}"'


# Policy data -----------------------------------------------------------------------------------


def _checked(rule: RuleView) -> RuleView:
    where = f"rule {rule.key}"
    if rule.auth_mode not in {"public", "authenticated", "roles"}:
        raise RenderError(where, f"unknown auth mode {rule.auth_mode!r}")
    if rule.effect == "allow" and rule.rate_limit_per_minute is not None and rule.auth_mode == "public":
        raise RenderError(where, "a public rule has no identity to rate-limit")
    unknown = sorted(set(rule.identity_headers) - set(IDENTITY_HEADERS))
    if unknown:
        raise RenderError(where, f"unknown identity headers {unknown}")
    return rule


# Thousands of routes share a few rule shapes; the gate never reads a rule's key.
@lru_cache(maxsize=4096)
def _rule_lua(effect, auth_mode, roles, networks, rate_limit, identity_headers, cache_seconds) -> LuaCode:
    data: dict = {"mode": auth_mode}
    if auth_mode == "roles":
        data["roles"] = dict.fromkeys(sorted(roles), True)
    if networks:
        data["networks"] = [[network.network_address.packed, network.prefixlen] for network in networks]
    if effect == "allow":
        if rate_limit is not None:
            data["rate_limit"] = rate_limit
        if identity_headers:
            data["headers"] = [list(IDENTITY_HEADERS[choice]) for choice in identity_headers]
        data["cache_control"] = cache_control(auth_mode, cache_seconds)
    return LuaCode(lua_value(data))


def _rules_lua(rules: tuple[RuleView, ...]) -> list[LuaCode]:
    return [
        _rule_lua(
            rule.effect,
            rule.auth_mode,
            rule.roles,
            rule.networks,
            rule.rate_limit_per_minute,
            rule.identity_headers,
            rule.cache_seconds,
        )
        for rule in map(_checked, rules)
    ]


def _route_data(route: RouteView, upstreams: _Upstreams) -> dict:
    data: dict = {"key": route.key, "upstream": upstreams.id_for(route)}
    if route.methods:
        data["methods"] = dict.fromkeys(sorted(route.methods), True)
        data["allow_header"] = ", ".join(sorted(route.methods))
    if route.needs_address:
        data["needs_address"] = True
    data["deny"] = _rules_lua(route.deny_rules)
    data["allow"] = _rules_lua(route.allow_rules)
    if route.signed_links:  # the allow rule a signed link names, by key: its index in "allow"
        for rule in route.allow_rules:
            if not LINK_RULE_KEY.match(rule.key):
                raise RenderError(f"rule {rule.key}", "a signed link names its rule by a 16-digit lower-case hex key")
        data["links"] = {rule.key: index for index, rule in enumerate(route.allow_rules, start=1)}
    return data


def _hosts_lua(tables, upstreams: _Upstreams) -> str:
    """host -> {prefix -> route}, one route per line so diffs between renders stay readable."""
    lines = ["{"]
    for host in sorted(tables):
        lines.append(f"      [{lua_string(host)}] = {{")
        prefixes = tables[host]
        for prefix in sorted(prefixes):
            lines.append(f"        [{lua_string(prefix)}] = {lua_value(_route_data(prefixes[prefix], upstreams))},")
        lines.append("      },")
    lines.append("    }")
    return "\n".join(lines)


def _keys_data(keys: tuple[VerificationKey, ...], *, asymmetric: bool = True) -> dict[str, dict]:
    """kid -> what the gate verifies with: the HS256 secret, or (through lua-luaossl) the SPKI PEM."""
    data: dict[str, dict] = {}
    for key in sorted(keys, key=lambda key: key.kid):
        where = f"key {key.kid}"
        if key.kid in data:
            raise RenderError(where, "the kid is listed twice")
        if key.algorithm == "HS256":
            if not key.secret:
                raise RenderError(where, "an HS256 key needs its shared secret")
            data[key.kid] = {"alg": key.algorithm, "secret": key.secret.reveal()}
        elif asymmetric and key.algorithm in ASYMMETRIC_ALGORITHMS:
            data[key.kid] = {"alg": key.algorithm, "pem": spki_public_key(key, where).decode()}
        else:
            raise RenderError(where, f"this gate cannot verify {key.algorithm} here")
    return data


def _assertion_data(key: VerificationKey | None) -> dict:
    """What the gate signs identity assertions with (the raw key: the script is 0600), if anything."""
    if key is None:
        return {}
    return {"assertion": {"kid": key.kid, "key": assertion_signing_key(key), "bound_headers": list(BOUND_HEADERS)}}


def _sign_in_data(sign_in: BrowserSignIn | None, gateway: str, tls: bool) -> dict:
    """What the gate needs for browser sign-in (base.py, S1-S5), with the parts of its answers that
    never change worked out here; nothing without it."""
    if sign_in is None:
        return {}
    sign_in = checked_browser_sign_in(sign_in)
    cookie, state_cookie = sign_in_cookie_names(tls)
    name = quote(gateway, safe="")
    return {
        "sign_in": {
            "callback_path": CALLBACK_PATH,
            "sign_out_path": SIGN_OUT_PATH,
            "sign_in_location": f"{sign_in.sign_in_url}?gateway={name}&rd=",
            "sign_out_location": f"{sign_in.sign_out_url}?gateway={name}",
            "scheme": "https" if tls else "http",
            "cookie": cookie,
            "state_cookie": state_cookie,
            "cookie_attributes": sign_in_cookie_attributes(tls),
            "refresh_seconds": sign_in.refresh_seconds,
            "state_max_age": STATE_MAX_AGE_SECONDS,
            "callback_max_age": CALLBACK_MAX_AGE_SECONDS,
            "purpose": SIGN_IN_PURPOSE,
        }
    }


def _policy_lua(request: RenderRequest, upstreams: _Upstreams) -> str:
    index = request.policy.gateway_indexes.get(request.gateway, _NO_ROUTES)
    well_known = {"deployment": request.deployment_id, "gateway": request.gateway, "snapshot": request.policy.sha256}
    scalars = {
        "gateway": request.gateway,
        "issuer": request.issuer,
        "leeway": CLOCK_LEEWAY_SECONDS,
        "well_known_path": WELL_KNOWN_PATH,
        "well_known_body": json.dumps(well_known, sort_keys=True, separators=(",", ":")),
        "identity_headers": [name for name, _claim in IDENTITY_HEADERS.values()],
        "upstream_header": UPSTREAM_HEADER,
        "assertion_header": ASSERTION_HEADER,
        **_assertion_data(request.assertion_key),
        **_sign_in_data(request.browser_sign_in, request.gateway, tls=bool(request.certificates)),
        "cache_control_env": CACHE_CONTROL_ENV,
        "keys": _keys_data(request.keys),
        "link_keys": {kid: key["secret"] for kid, key in _keys_data(request.link_keys, asymmetric=False).items()},
    }
    fields = [f"    {name} = {lua_value(value)}," for name, value in scalars.items()]
    fields.append(f"    exact = {_hosts_lua(index.exact, upstreams)},")
    fields.append(f"    wildcard = {_hosts_lua(index.wildcard, upstreams)},")
    return "{\n" + "\n".join(fields) + "\n  }"


# TLS -------------------------------------------------------------------------------------------

TLS_CHAIN = "tls/certificate.pem"
TLS_KEY = "tls/certificate.key"


def _tls(
    certificates: tuple[TlsCertificate, ...], gateway: str, paths: _FilePaths
) -> tuple[dict[str, RenderedFile], str]:
    """(the chain and its 0600 key, the mod_openssl settings) for the gateway's one certificate."""
    if not certificates:
        return {}, ""
    if len(certificates) > 1:
        raise RenderError(
            f"gateway {gateway}",
            "this renderer gives lighttpd one certificate; choosing among several by SNI is not rendered yet",
        )
    chain, key = tls_material(certificates[0], "certificate 1")
    settings = (
        'server.modules += ("mod_openssl")\n'
        'ssl.engine = "enable"\n'
        f"ssl.pemfile = {paths.conf_expression(TLS_CHAIN)}\n"
        f"ssl.privkey = {paths.conf_expression(TLS_KEY)}\n"
        'ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "TLSv1.2")\n'
    )
    return {TLS_CHAIN: RenderedFile(chain), TLS_KEY: RenderedFile(key, mode=SECRET_FILE_MODE)}, settings


# The renderer ----------------------------------------------------------------------------------


def _listen(address: str, gateway: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        bind = EVERY_IPV4_ADDRESS if host == "*" else str(ipaddress.ip_address(host.strip("[]")))
        number = int(port)
    except ValueError:
        raise RenderError(f"gateway {gateway}", f"listen address {address!r} is not ip:port") from None
    if not 0 < number < 65536:
        raise RenderError(f"gateway {gateway}", f"listen address {address!r} has no valid port")
    return (f"[{bind}]" if ":" in bind else bind), number


class LighttpdRenderer:
    kind = "lighttpd"
    revocation_file = REVOCATION_SCRIPT

    def revocations_render(self, *, gateway: str, entries: Iterable[RevokedSubject]) -> bytes:
        """A top-level mod_magnet script (hot-reloaded) holding the list as a Lua table."""
        table = "{" + "".join(f"\n    [{lua_string(entry.subject)}] = {entry.revoked_before}," for entry in entries)
        table += "\n  }" if len(table) > 1 else "}"
        return _template(f"{REVOCATION_SCRIPT}.in", gateway=gateway, version=lua_string(_sha256(table)), entries=table)

    def render(self, request: RenderRequest) -> RenderedConfig:
        bind, port = _listen(request.listen_address, request.gateway)
        upstreams = _Upstreams(request.upstream_override)
        paths = _FilePaths(request.install_directory, request.gateway)
        revocation_list, external_files = revocation_list_reference(request, REVOCATION_SCRIPT)
        tls_files, tls_settings = _tls(request.certificates, request.gateway, paths)
        policy = _policy_lua(request, upstreams)
        library = _source(LIBRARY).encode()
        policy_script = _template(
            f"{POLICY_SCRIPT}.in",
            data_version=lua_string(_sha256(policy)),
            library_file=lua_string(LIBRARY),
            library_version=lua_string(_sha256(library)),
            policy=policy,
        )
        conf = _template(
            f"{MAIN}.in",
            location=paths.location(),
            bind=_conf_string(bind),
            port=str(port),
            tls=tls_settings,
            document_root=paths.conf_expression("no-static-files"),
            revocation_script=_conf_string(revocation_list)
            if external_files
            else paths.conf_expression(REVOCATION_SCRIPT),
            policy_script=paths.conf_expression(POLICY_SCRIPT),
            forward_script=paths.conf_expression(FORWARD_SCRIPT),
            response_script=paths.conf_expression(RESPONSE_SCRIPT),
            upstream_header=UPSTREAM_HEADER,
            upstreams=upstreams.conf_blocks(),
        )
        files = {
            MAIN: RenderedFile(conf),
            POLICY_SCRIPT: RenderedFile(policy_script, mode=SECRET_FILE_MODE),
            LIBRARY: RenderedFile(library),
            FORWARD_SCRIPT: RenderedFile(
                _template(f"{FORWARD_SCRIPT}.in", upstream_header=lua_string(UPSTREAM_HEADER))
            ),
            RESPONSE_SCRIPT: RenderedFile(
                _template(f"{RESPONSE_SCRIPT}.in", cache_control_env=lua_string(CACHE_CONTROL_ENV))
            ),
            **tls_files,
        }
        if not external_files:
            files[REVOCATION_SCRIPT] = RenderedFile(self.revocations_render(gateway=request.gateway, entries=()))
        asymmetric = any(key.algorithm in ASYMMETRIC_ALGORITHMS for key in request.keys)
        return RenderedConfig(
            kind=self.kind,
            main=MAIN,
            files=files,
            lua_modules=LUA_MODULES + (LUAOSSL_MODULES if asymmetric else ()),
            external_files=external_files,
        )


register(LighttpdRenderer())
