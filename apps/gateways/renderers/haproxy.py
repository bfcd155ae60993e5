"""The HAProxy renderer: ``haproxy.cfg`` from a fixed template (``renderers/haproxy/``), the gateway's
policy as map files, and the verification keys. Browser sign-in's lines come from haproxy_sign_in.py.

Verified on Debian's HAProxy 2.6.12 (shared/reference/proxies.md §1 plus the facts noted here):
- Hosts and routes are map lookups (``map_str``, ``map_end``, ``map_beg``), never per-route lines.
  ``map_end`` takes the first match in file order, so wildcard suffixes are written longest first.
- A route's value carries everything the request needs: ``<id>|<backend>|<methods>|<rules>``.
- Rules are judged without Lua, by regular expressions with named back-references over
  "<rules>#<subject>/<client networks>/<roles>" (the template explains the encoding). A Lua action
  measured about 35 µs of CPU per request here (a coroutine and a txn object per stream), more
  than all the native checks together; one native rule costs 0.15-0.35 µs, a regex ACL ~0.05 µs.
- ``map_ip`` falls back between its IPv4 and IPv6 trees (IPv4 clients are tried as ``::ffff:a.b.c.d``,
  ``::a.b.c.d`` and ``2002::/16`` clients as IPv4) whenever a lookup finds nothing; ``networks.map``
  therefore always holds both roots and mirrors every IPv4 network into ``::ffff:0:0/96``, which
  gives exactly decide()'s reading: an IPv4-mapped client is an IPv4 client, nothing else converts.
- ``jwt_verify`` takes the HS256 secret from a variable (read here from a 0600 map), so the secret
  never appears in ``haproxy.cfg``; RS256/ES256 keys are SPKI PEM files, one pinned line per kid.
  The ``hmac`` converter, for signed links and identity assertions, takes its base64 key the same way.
- ``set-var-fmt`` reads "\n" in a double-quoted format as a line feed; ``req.fhdr`` of a header the
  request lacks, like an empty variable, formats as nothing; ``req.fhdr`` trims surrounding spaces.
"""

import base64
import ipaddress
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from apps.credentials.assertions import ASSERTION_HEADER, BOUND_HEADERS, VERSION
from apps.credentials.choices import CLOCK_LEEWAY_SECONDS
from apps.gateways.rendered import RenderedConfig, RenderedFile
from apps.gateways.renderers import register
from apps.gateways.renderers.base import (
    ASYMMETRIC_ALGORITHMS,
    IDENTITY_HEADERS,
    LINK_RULE_KEY,
    WELL_KNOWN_PATH,
    RenderError,
    RenderRequest,
    RevokedSubject,
    TlsCertificate,
    VerificationKey,
    assertion_signing_key,
    cache_control,
    revocation_list_reference,
    spki_public_key,
    tls_material,
)
from apps.gateways.renderers.haproxy_sign_in import STATE_KEYS, sign_in_lines
from apps.policies.snapshot import HostIndex, RouteView, RuleView

SOURCES = Path(__file__).with_name("haproxy")
MAIN = "haproxy.cfg"
HMAC_SECRETS = "keys/hs256.map"
LINK_SECRETS = "keys/links.map"
ASSERTION_KEYS = "keys/assertion.map"
REVOCATION_LIST = "revoked.map"
SECRET_FILE_MODE = 0o600
TOKEN_CACHE_SECONDS = 60
# HAProxy reads pattern files through its 16 kB trash buffer: a longer line would be split in two.
MAX_MAP_LINE = 8192
AUTH_MODES = ("public", "authenticated", "roles")
_MODE_LETTERS = {"public": "P", "authenticated": "U", "roles": "R"}

_EXACT_HOST = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$")
# validators.normalize_path_prefix's characters, with no empty segment and no trailing "/"
_PREFIX = re.compile(r"^/(?:[A-Za-z0-9._~!$&()*+,;=:@-]+(?:/[A-Za-z0-9._~!$&()*+,;=:@-]+)*)?$")
_METHOD = re.compile(r"^[A-Z]+$")
_ROLE = re.compile(r"^[a-z0-9_.-]+$")  # never "," ":" ";" "#" "|": the separators of the rules
_KID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}$")  # a file name, and an ACL pattern
_LISTEN_ADDRESS = re.compile(r"^(?:\*|[0-9.]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAPPED_IPV4 = ipaddress.ip_network("::ffff:0:0/96")
_MAPPED_IPV4_BASE = int(_MAPPED_IPV4.network_address)
_ROOTS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
_NO_ROUTES = HostIndex.of(())


@cache
def _source(name: str) -> str:
    return (SOURCES / name).read_text()


def config_word(text: str, where: str) -> str:
    """One HAProxy config word holding ``text`` literally: single quotes, as in a POSIX shell."""
    if _CONTROL.search(text):
        raise RenderError(where, f"{text!r} holds control characters, which no HAProxy config line can carry")
    return "'" + text.replace("'", "'\\''") + "'"


def _map_file(lines) -> RenderedFile:
    return RenderedFile("".join(f"{line}\n" for line in lines).encode())


# Routes -----------------------------------------------------------------------------------------


def _tables(index: HostIndex) -> dict[str, dict[str, RouteView]]:
    """Route tables by name: the exact host itself, or "*.<domain>" for a wildcard."""
    tables = {}
    for host, table in index.exact.items():
        if not _EXACT_HOST.match(host):
            raise RenderError(f"host {host}", "route hosts must be lower-case names of [a-z0-9_-] labels")
        tables[host] = table
    for domain, table in index.wildcard.items():
        if not _EXACT_HOST.match(domain):
            raise RenderError(f"host *.{domain}", "wildcard domains must be lower-case names of [a-z0-9_-] labels")
        tables[f"*.{domain}"] = table
    return dict(sorted(tables.items()))


def route_map_key(table: str, prefix: str, where: str) -> str:
    """``<table><prefix>/``: with "/" after the request path too, prefixes match on segment boundaries."""
    if not _PREFIX.match(prefix):
        raise RenderError(where, f"path prefix {prefix!r} is not normalized (validators.normalize_path_prefix)")
    return f"{table}{prefix.rstrip('/')}/"


def _server_line(name: str, url: str) -> str:
    """The backend's server line; https upstreams are verified against the system trust store."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    malformed = _CONTROL.search(url) or parts.scheme not in {"http", "https"} or not parts.hostname
    if malformed or port is None or parts.path not in {"", "/"}:
        raise RenderError(f"upstream {url!r}", "an upstream must be http(s)://host:port")
    options = " ssl verify required ca-file @system-ca" if parts.scheme == "https" else ""
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        if not _EXACT_HOST.match(parts.hostname):
            raise RenderError(f"upstream {url!r}", "the host cannot be written on a server line") from None
        if options:
            options += f" sni str({parts.hostname})"  # also the name the certificate must carry
        # a name that does not resolve fails its own requests, not the proxy's start (haproxy -c warns)
        return f"server {name} {parts.hostname}:{port}{options} init-addr libc,none"
    host = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return f"server {name} {host}:{port}{options}"


def _backends(upstreams: list[str]) -> tuple[dict[str, str], str]:
    """(upstream URL -> backend name, the backend sections)."""
    names, sections = {}, []
    for number, url in enumerate(sorted(set(upstreams)), start=1):
        names[url] = name = f"upstream_{number}"
        sections.append(f"\nbackend {name}\n    # {url}\n    {_server_line(name, url)}\n")
    return names, "".join(sections)


# Rules ------------------------------------------------------------------------------------------


def _rule_text(rule: RuleView, network_ids: dict, where: str, *, signed_links: bool) -> str:
    """``<D|A><P|U|R>:<networks>:<roles>``, plus ``:<limit>:<cache-control>:<headers>`` for allow rules
    and, on routes with signed links, ``:<rule key>`` (what a link names)."""
    if rule.effect not in {"allow", "deny"} or rule.auth_mode not in AUTH_MODES:
        raise RenderError(where, f"unknown effect {rule.effect!r} or auth mode {rule.auth_mode!r}")
    roles = sorted(rule.roles) if rule.auth_mode == "roles" else []
    if bad := [role for role in roles if not _ROLE.match(role)]:
        raise RenderError(where, f"roles {bad} must be [a-z0-9_.-]+ to be matched in roles_csv")
    nets = sorted({network_ids[network] for network in rule.networks})
    condition = f"{_MODE_LETTERS[rule.auth_mode]}:{_delimited(nets)}:{_delimited(roles)}"
    if rule.effect == "deny":  # deny rules only refuse: no limit, caching or headers to apply
        return f"D{condition}"
    limit = rule.rate_limit_per_minute
    if limit is not None and (rule.auth_mode == "public" or limit < 1):
        raise RenderError(where, "a rate limit needs a subject (no public rule) and at least 1 request per minute")
    if unknown := [choice for choice in rule.identity_headers if choice not in IDENTITY_HEADERS]:
        raise RenderError(where, f"unknown identity headers {unknown}")
    caching = cache_control(rule.auth_mode, rule.cache_seconds)
    text = f"A{condition}:{limit or 0}:{caching}:{_delimited(rule.identity_headers)}"
    if signed_links:
        if not LINK_RULE_KEY.match(rule.key):
            raise RenderError(where, "a signed link names its rule by a 16-digit lower-case hex key")
        text += f":{rule.key}"
    return text


def _delimited(items) -> str:
    """Items as ",a,b,", so that each is found whole by its delimiters; empty for no items."""
    return "".join(f",{item}" for item in items) + "," if items else ""


def _route_line(number: int, key: str, route: RouteView, backend: str, network_ids: dict) -> str:
    where = f"route {route.key}"
    if bad := sorted(method for method in route.methods if not _METHOD.match(method)):
        raise RenderError(where, f"methods {bad} are not upper-case HTTP method names")
    methods = "".join(f"{method}," for method in sorted(route.methods))
    rules = "".join(
        f"{_rule_text(rule, network_ids, f'rule {rule.key} of {where}', signed_links=route.signed_links)};"
        for rule in route.deny_rules + route.allow_rules
    )
    line = f"{key} {number}|{backend}|{',' + methods if methods else '*'}|{rules}{'|L' if route.signed_links else ''}"
    if len(line) >= MAX_MAP_LINE:
        raise RenderError(where, f"its routes.map line is {len(line)} bytes; HAProxy reads at most {MAX_MAP_LINE}")
    return line


# Networks ---------------------------------------------------------------------------------------


def _network_order(network) -> tuple[int, int, int]:
    return network.version, int(network.network_address), network.prefixlen


def networks_map(networks: set) -> tuple[dict, RenderedFile]:
    """(network -> id, networks.map): each key's value lists the ids of every rule network holding it."""
    ids = {network: number for number, network in enumerate(sorted(networks, key=_network_order), start=1)}
    # decide() reads an IPv4-mapped client as IPv4, so IPv6 networks inside ::ffff:0:0/96 hold nobody.
    live = {_network_order(n): ids[n] for n in ids if not (n.version == 6 and n.subnet_of(_MAPPED_IPV4))}
    lengths = {version: sorted({length for v, _, length in live if v == version}) for version in (4, 6)}

    def holders(version: int, address: int, length: int) -> str:
        bits = 32 if version == 4 else 128
        found = (live.get((version, address >> (bits - n) << (bits - n), n)) for n in lengths[version] if n <= length)
        return "," + "".join(f"{number}," for number in sorted(filter(None, found)))

    entries = {}  # (version, address, length) -> map line
    for network in (*_ROOTS, *ids):
        version, address, length = order = _network_order(network)
        if order in live or network in _ROOTS:
            value = holders(*order)
            entries[order] = f"{network.compressed} {value}"
            if version == 4:  # the same answer for the client's IPv4-mapped form
                mirror = (6, _MAPPED_IPV4_BASE | address, 96 + length)
                entries[mirror] = f"::ffff:{network.network_address}/{96 + length} {value}"
    return ids, _map_file(entries[order] for order in sorted(entries))


# Keys -------------------------------------------------------------------------------------------


def _hmac_secret(key: VerificationKey, where: str) -> str:
    secret = key.secret.reveal()
    if not secret or secret != secret.strip() or _CONTROL.search(secret):
        raise RenderError(where, "an HS256 secret must be non-empty, without control characters or edge spaces")
    return secret


def _keys(keys: tuple[VerificationKey, ...]) -> tuple[dict[str, RenderedFile], str]:
    """(key files and kids.map, the signature-check lines): every kid pinned to its algorithm."""
    files, pinned, checks, secrets = {}, {}, [], []
    for key in sorted(keys, key=lambda k: k.kid):
        where = f"key {key.kid}"
        if not _KID.match(key.kid) or key.kid in pinned:
            raise RenderError(where, "kids must be unique [A-Za-z0-9._-] names (they name the key file)")
        if key.algorithm == "HS256":
            secrets.append(f"{key.kid} {_hmac_secret(key, where)}")
        elif key.algorithm in ASYMMETRIC_ALGORITHMS:
            path = f"keys/{key.kid}.pem"
            files[path] = RenderedFile(spki_public_key(key, where))
            checks.append(
                f"    http-request set-var(txn.signature) var(txn.bearer),jwt_verify({key.algorithm},"
                f'"{path}") if {{ var(txn.pinned_kid) -m str {key.kid} }}'
            )
        else:
            raise RenderError(where, f"HAProxy 2.6 verifies RS256, ES256 and HS256 edge tokens, not {key.algorithm}")
        pinned[key.kid] = key.algorithm
    if secrets:
        files[HMAC_SECRETS] = RenderedFile(_map_file(secrets).content, mode=SECRET_FILE_MODE)
        # kids.map already pinned the kid to HS256, so its secret is the only key this token can meet
        checks.append(
            f"    http-request set-var(txn.hmac_secret) var(txn.pinned_kid),map_str({HMAC_SECRETS}) "
            "if { var(txn.alg) -m str HS256 }\n"
            "    http-request set-var(txn.signature) var(txn.bearer),jwt_verify(HS256,txn.hmac_secret) "
            "if { var(txn.hmac_secret) -m found }"
        )
    files["kids.map"] = _map_file(f"{kid} {algorithm}" for kid, algorithm in pinned.items())
    return files, "\n".join(checks)


def _link_secrets(keys: tuple[VerificationKey, ...]) -> RenderedFile:
    """kid -> base64 of the secret: the form the ``hmac`` converter takes its key in (from a variable,
    so no secret is written into haproxy.cfg)."""
    lines = {}
    for key in keys:
        where = f"signed-link key {key.kid}"
        if not _KID.match(key.kid) or key.kid in lines or key.algorithm != "HS256":
            raise RenderError(where, "signed-link keys must be HS256 secrets with unique [A-Za-z0-9._-] kids")
        lines[key.kid] = base64.b64encode(_hmac_secret(key, where).encode()).decode()
    return RenderedFile(
        _map_file(f"{kid} {secret}" for kid, secret in sorted(lines.items())).content, mode=SECRET_FILE_MODE
    )


def _identity_header_lines() -> str:
    """Per identity header the admitting rule forwards: its claim, read once, then the header. A
    claim the token lacks sends no header, nor does one with control characters (they could split
    the header line); the subject matched [A-Za-z0-9@._:-]{1,64} when the token was checked."""
    lines = []
    for choice, (name, claim) in IDENTITY_HEADERS.items():
        wanted = f"{{ var(txn.forward) -m sub ,{choice}, }}"
        if claim == "sub":
            lines.append(
                f"    http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub') if {wanted} "
                "!{ var(txn.sub) -m found }"
            )
            lines.append(f"    http-request set-header {name} %[var(txn.sub)] if {wanted}")
        elif claim == "roles_csv":  # forwarded as "a,b", without the delimiting commas
            lines.append(
                f"    http-request set-var(txn.roles) var(txn.bearer),jwt_payload_query('$.roles_csv') if {wanted} "
                "!{ var(txn.roles) -m found }"
            )
            lines.append(
                f"""    http-request set-header {name} '%[var(txn.roles),regsub("^,|,$","",g)]' """
                f"if {wanted} {{ var(txn.roles) -m reg '^[^[:cntrl:]]*\\z' }}"
            )
        else:
            variable = f"txn.claim_{claim}"
            lines.append(
                f"    http-request set-var({variable}) var(txn.bearer),jwt_payload_query('$.{claim}') if {wanted}"
            )
            printable = f"{{ var({variable}) -m reg '^[^[:cntrl:]]*\\z' }}"
            lines.append(f"    http-request set-header {name} %[var({variable})] if {printable}")
    return "\n".join(lines)


def _assertion(key: VerificationKey | None) -> tuple[dict[str, RenderedFile], str, str]:
    """(the 0600 map holding the key, base64 as ``hmac`` takes it; the global line that reads it once
    per process; the lines that sign a request admitted by a rule that needs an identity). The
    signed string (credentials/assertions.py) reads the identity headers back from the request:
    after the client's copies were removed, only the ones just set from the token are there,
    exactly as the upstream will receive them."""
    if key is None:
        return {}, "", ""
    secret = base64.b64encode(assertion_signing_key(key)).decode()
    files = {ASSERTION_KEYS: RenderedFile(f"{key.kid} {secret}\n".encode(), mode=SECRET_FILE_MODE)}
    load = (
        "    # the identity-assertion key, read once per process (a reload reads the new release's)\n"
        f"    set-var proc.assertion_key str({key.kid}),map_str({ASSERTION_KEYS})"
    )
    lines = [VERSION, key.kid, "%[var(txn.assertion_ts)]", "%[var(txn.host)]", "%[method]", "%[path]",
             *(f"%[req.fhdr({name})]" for name in BOUND_HEADERS)]  # fmt: skip
    signed = "\\n".join(lines)  # in double quotes, HAProxy reads backslash-n as a line feed
    mac = "%[var(txn.assertion),hmac(sha256,proc.assertion_key),ub64enc]"
    signing = "{ var(txn.assertion_ts) -m found }"
    return (
        files,
        load,
        (
            "    # admitted by a rule that needs an identity: an assertion of it the upstream can trust, signed\n"
            "    # over the request and the identity headers just set (the client's copy went in step 2)\n"
            "    http-request set-var(txn.assertion_ts) date() if identified { var(txn.admitted) -m end ;U ;R }\n"
            f'    http-request set-var-fmt(txn.assertion) "{signed}" if {signing}\n'
            f'    http-request set-header {ASSERTION_HEADER} "{VERSION};kid={key.kid};ts=%[var(txn.assertion_ts)];'
            f'sig={mac}" if {signing}'
        ),
    )


def _tls(certificates: tuple[TlsCertificate, ...]) -> tuple[dict[str, RenderedFile], str]:
    """(one 0600 chain-and-key file per certificate, the bind line's TLS options): HAProxy picks the
    certificate by SNI among them, the first when the client names none it holds."""
    files = {}
    for number, certificate in enumerate(certificates, start=1):
        chain, key = tls_material(certificate, f"certificate {number}")
        files[f"tls/certificate-{number}.pem"] = RenderedFile(chain + key, mode=SECRET_FILE_MODE)
    if not files:
        return files, ""
    return files, " ssl " + " ".join(f"crt {name}" for name in files) + " ssl-min-ver TLSv1.2 alpn http/1.1"


# The config -------------------------------------------------------------------------------------


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def _well_known(request: RenderRequest) -> str:
    body = json.dumps(
        {"deployment": request.deployment_id, "gateway": request.gateway, "snapshot": request.policy.sha256},
        sort_keys=True,
        separators=(",", ":"),
    )
    return config_word(body, "well-known endpoint")


class HaproxyRenderer:
    kind = "haproxy"
    revocation_file = REVOCATION_LIST

    def revocations_render(self, *, gateway: str, entries: Iterable[RevokedSubject]) -> bytes:
        """``<subject> <revoked before>`` lines, the map ``map_str_int`` reads (a subject holds no space)."""
        return _map_file(f"{entry.subject} {entry.revoked_before}" for entry in entries).content

    def render(self, request: RenderRequest) -> RenderedConfig:
        if not _LISTEN_ADDRESS.match(request.listen_address):
            raise RenderError("listen address", f"{request.listen_address!r} is not ip:port, [ipv6]:port or *:port")
        tables = _tables(request.policy.gateway_indexes.get(request.gateway, _NO_ROUTES))
        routes = [(table, route) for table, by_prefix in tables.items() for route in by_prefix.values()]
        routes.sort(key=lambda item: (item[0], item[1].path_prefix))
        network_ids, networks_file = networks_map(
            {
                network
                for _, route in routes
                for rule in route.deny_rules + route.allow_rules
                for network in rule.networks
            }
        )
        upstreams = [request.upstream_override or route.upstream_url for _, route in routes]
        backends, backend_sections = _backends(upstreams)
        route_lines = [
            _route_line(
                number, route_map_key(table, route.path_prefix, f"route {route.key}"), route, backends[url], network_ids
            )
            for number, ((table, route), url) in enumerate(zip(routes, upstreams, strict=True), start=1)
        ]
        exact = [table for table in tables if not table.startswith("*.")]
        wildcards = sorted((table for table in tables if table.startswith("*.")), key=lambda t: (-len(t), t))
        key_files, signature_checks = _keys(request.keys)
        tls_files, bind_tls = _tls(request.certificates)
        assertion_files, assertion_key_load, assertion_lines = _assertion(request.assertion_key)
        revocation_list, external_files = revocation_list_reference(request, REVOCATION_LIST)
        state_key, sign_in = sign_in_lines(request)
        config = _fill(
            _source("haproxy.cfg.in"),
            {
                "gateway": request.gateway,
                "listen_address": request.listen_address,
                "bind_tls": bind_tls,
                "token_cache_seconds": str(TOKEN_CACHE_SECONDS),
                "well_known_json": _well_known(request),
                "well_known_path": WELL_KNOWN_PATH,
                "signature_checks": signature_checks,
                "leeway": str(CLOCK_LEEWAY_SECONDS),
                "issuer": config_word(request.issuer, "issuer"),
                "audience": config_word(request.gateway, "gateway"),
                "identity_headers": _identity_header_lines(),
                "identity_assertion": assertion_lines,
                "assertion_key_load": assertion_key_load,
                "backends": backend_sections,
                "link_secrets": LINK_SECRETS,
                "revocation_list": revocation_list,
                **sign_in,
            },
        )
        files = {
            MAIN: RenderedFile(config.encode()),
            "routes.map": _map_file(route_lines),
            "hosts.map": _map_file(f"{host} {host}" for host in exact),
            "wildcards.map": _map_file(f"{table[1:]} {table}" for table in wildcards),
            "networks.map": networks_file,
            **key_files,
            LINK_SECRETS: _link_secrets(request.link_keys),
            **assertion_files,
            **tls_files,
        }
        if state_key:
            files[STATE_KEYS] = RenderedFile(state_key, mode=SECRET_FILE_MODE)
        if not external_files:
            files[REVOCATION_LIST] = RenderedFile(self.revocations_render(gateway=request.gateway, entries=()))
        return RenderedConfig(kind=self.kind, main=MAIN, files=files, external_files=external_files)


register(HaproxyRenderer())
