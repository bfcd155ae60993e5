"""Browser sign-in for the HAProxy renderer (renderers/base.py, S1-S5): the lines it adds to
``haproxy.cfg``, by template placeholder, and the 0600 map holding the state key.

Verified on Debian's HAProxy 2.6.12, beyond what haproxy.py notes:
- ``-m int`` patterns cannot be negative: ``gt -300`` parses, but ``-300`` reads as the range
  "up to 300" whatever the operator, so lower bounds are written ``<x>,add(N),sub(var) -m int ge 0``.
- In a log-format (the ``hdr`` values of ``return``) a literal ``%`` is written ``%%``.
- ``http-request return`` sends every ``hdr Set-Cookie`` it is given; ``uuid`` comes from a
  predictable PRNG, hence a state is an HMAC of one under the state key (43 base64url characters).
- ``req.cook`` of a cookie sent twice is the last one.
"""

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from apps.credentials.choices import CLOCK_LEEWAY_SECONDS
from apps.gateways.renderers.base import (
    CALLBACK_MAX_AGE_SECONDS,
    CALLBACK_PATH,
    SAFE_RETURN_PATH,
    SIGN_IN_PURPOSE,
    SIGN_IN_WHERE,
    SIGN_OUT_PATH,
    STATE_MAX_AGE_SECONDS,
    BrowserSignIn,
    RenderError,
    RenderRequest,
    checked_browser_sign_in,
    sign_in_cookie_attributes,
    sign_in_cookie_names,
)

STATE_KEYS = "keys/sign-in.map"
_STATE_KEY_NAME = "state"
PLACEHOLDERS = ("sign_in_key_load", "sign_in_paths", "sign_in_route", "sign_in_credential", "sign_in_answers",
                "sign_in_redirect", "sign_in_cookies")  # fmt: skip
# Step 6's 401 condition (haproxy.cfg.in): some allow rule wanted an identity the request lacks.
IDENTITY_WANTED = r"{ var(txn.judged) -m reg '(?s)(?:^|;)A[UR]:[^#]*#/' }"
NAVIGATION = "METH_GET no_authorization html_accepted"  # METH_GET: GET or HEAD
NEW_STATE = "uuid,hmac(sha256,proc.sign_in_key),ub64enc"


@dataclass(frozen=True)
class _Gateway:
    """What every sign-in line is written for: the gateway's name as a log-format query value, its
    scheme and its cookies (``__Host-`` and ``Secure`` under TLS)."""

    name: str
    tls: bool

    @property
    def query_name(self) -> str:
        return _log_format_literal(quote(self.name, safe=""))

    @property
    def cookie(self) -> str:
        return sign_in_cookie_names(self.tls)[0]

    @property
    def state_cookie(self) -> str:
        return sign_in_cookie_names(self.tls)[1]

    def set_cookie(self, name: str, value: str, max_age: str | int) -> str:
        return f' hdr Set-Cookie "{name}={value}; Max-Age={max_age}{sign_in_cookie_attributes(self.tls)}"'


def _log_format_literal(text: str) -> str:
    return text.replace("%", "%%")


def _state_key(sign_in: BrowserSignIn) -> str:
    """The key as canonical base64, after checking it is 32 bytes."""
    try:
        key = base64.b64decode(sign_in.state_key.reveal(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise RenderError(SIGN_IN_WHERE, "the state key must be base64 of 32 bytes")
    return base64.b64encode(key).decode()


def _redirect(location: str, set_cookies: str, condition: str) -> str:
    return (
        f'    http-request return status 302 hdr Location "{location}"{set_cookies} hdr Cache-Control no-store '
        f"if {condition}"
    )


def _block(*lines: str) -> str:
    """Lines placed before a template line (the placeholder starts it): nothing, or lines ending "\\n"."""
    return "".join(f"{line}\n" for line in lines)


def _paths(sign_out_url: str, gateway: _Gateway) -> str:
    """S1, and what the later steps know a callback and a navigation by."""
    return _block(
        "    # S1, S2. browser sign-in's own paths, on any host and before routing: no route, even one",
        '    #     covering "/", takes them upstream. Sign-out drops the cookie and ends policyhub\'s session.',
        _redirect(
            f"{sign_out_url}?gateway={gateway.query_name}",
            gateway.set_cookie(gateway.cookie, "", 0),
            f"{{ path {SIGN_OUT_PATH} }} METH_GET",
        ),
        f"    http-request deny deny_status 405 if {{ path {SIGN_OUT_PATH} }}",
        f"    acl sign_in_callback path {CALLBACK_PATH}",
        "    # S4. a navigation (GET or HEAD, no Authorization header, HTML accepted) is a person's browser",
        "    acl no_authorization req.hdr_cnt(authorization) eq 0",
        "    acl html_accepted req.hdr(accept) -m sub -i text/html",
    )


def _credential(gateway: _Gateway) -> str:
    """S3: the cookie where the bearer header is missing; the callback's token."""
    return _block(
        "    # S3. without an Authorization header the sign-in cookie is the credential: the same token,",
        "    #     the same checks. The callback's credential is its query's token, and nothing else.",
        f"    http-request set-var(txn.bearer) req.cook({gateway.cookie}) if no_authorization !link_holder "
        "!sign_in_callback",
        '    http-request set-var-fmt(txn.bearer) "%[url_param(token)]" if sign_in_callback',
    )


def _callback(gateway: _Gateway) -> str:
    """S2, once step 5 has verified the callback's token (its ``txn.token_exp`` is set)."""
    token_cookie = gateway.set_cookie(gateway.cookie, "%[var(txn.bearer)]", "%[var(txn.token_exp),sub(txn.now)]")
    return _block(
        "    # S2. the callback: a GET whose verified token was minted for a browser sign-in (purpose),",
        "    #     lately (iat), for the browser holding the state cookie (nonce), returning to a path on",
        "    #     this host (rd, decoded once): 302 there, the cookie holding the token until it expires.",
        "    #     Anything else: 400, setting nothing. The claims are read only here.",
        "    http-request set-var(txn.now) date() if sign_in_callback",
        f"    http-request set-var(txn.sign_in_state) req.cook({gateway.state_cookie}) if sign_in_callback identified "
        "{ method GET }",
        f"    acl sign_in_token var(txn.bearer),jwt_payload_query('$.purpose') -m str {SIGN_IN_PURPOSE}",
        "    acl sign_in_fresh var(txn.bearer),jwt_payload_query('$.iat','int'),"
        f"add({CALLBACK_MAX_AGE_SECONDS + CLOCK_LEEWAY_SECONDS}),sub(txn.now) -m int ge 0",
        "    acl sign_in_bound var(txn.bearer),jwt_payload_query('$.nonce'),secure_memcmp(txn.sign_in_state)",
        "    http-request set-var(txn.return_to) url_param(rd),url_dec if { var(txn.sign_in_state) -m len gt 0 } "
        "sign_in_token sign_in_fresh sign_in_bound",
        _redirect(
            "%[var(txn.return_to)]",
            token_cookie + gateway.set_cookie(gateway.state_cookie, "", 0),
            # single quotes keep the pattern's backslashes
            f"{{ var(txn.return_to) -m reg '^{SAFE_RETURN_PATH.pattern}\\z' }}",
        ),
        '    http-request return status 400 content-type text/plain string "sign-in failed" '
        "hdr Cache-Control no-store if sign_in_callback",
    )


def _sign_in_redirect(sign_in_url: str, gateway: _Gateway) -> str:
    """S4's and S5's answer, for a request whose ``txn.new_state`` was just set."""
    original = _log_format_literal(quote("https://" if gateway.tls else "http://", safe=""))
    original += "%[req.fhdr(host),url_enc(query)]%[pathq,url_enc(query)]"
    return _redirect(
        f"{sign_in_url}?gateway={gateway.query_name}&rd={original}&state=%[var(txn.new_state)]",
        gateway.set_cookie(gateway.state_cookie, "%[var(txn.new_state)]", STATE_MAX_AGE_SECONDS),
        "{ var(txn.new_state) -m found }",
    )


def _renewal(refresh_seconds: int, redirect: str) -> str:
    return _block(
        "    # S5. a navigation identified by the cookie whose token is about to expire goes to sign in",
        "    #     before its rules are judged: while policyhub's session lasts, the browser comes back",
        "    #     with a fresh token and the person sees nothing of it",
        f"    http-request set-var(txn.new_state) {NEW_STATE} if {NAVIGATION} identified "
        f"{{ date,neg,add(txn.token_exp) -m int lt {refresh_seconds} }}",
        redirect,
    )


def _unauthorized(redirect: str) -> str:
    return _block(
        "    # S4. a navigation that would get the 401 below goes to sign in instead, with a fresh state",
        "    #     (an HMAC of a UUID: HAProxy's UUIDs alone are predictable) the state cookie binds to",
        "    #     this browser, for the callback",
        f"    http-request set-var(txn.new_state) {NEW_STATE} if {NAVIGATION} !admitted {IDENTITY_WANTED}",
        redirect,
    )


def _cookie_removal(gateway: _Gateway) -> str:
    cookie, state = gateway.cookie, gateway.state_cookie  # letters, "_" and "-": literal in a regex
    return _block(
        "    # S3. the sign-in cookies stay here: the upstream gets the other cookies, or no Cookie header",
        "    #     (a client sending several, which RFC 6265 forbids browsers, keeps what the last one holds)",
        "    http-request set-var(txn.cookies) req.fhdr(cookie),"
        f'\'regsub("(?:^|; *)(?:{cookie}|{state})=[^;]*","",g)\',\'regsub("^; *","")\' '
        f"if {{ req.cook_cnt({cookie}) gt 0 }} || {{ req.cook_cnt({state}) gt 0 }}",
        "    http-request set-header Cookie %[var(txn.cookies)] if { var(txn.cookies) -m len gt 0 }",
        "    http-request del-header Cookie if { var(txn.cookies) -m found } !{ var(txn.cookies) -m len gt 0 }",
    )


def sign_in_lines(request: RenderRequest) -> tuple[bytes, dict[str, str]]:
    """(the state key's 0600 map, empty without sign-in; the text of each of ``PLACEHOLDERS``)."""
    if request.browser_sign_in is None:
        return b"", dict.fromkeys(PLACEHOLDERS, "")
    sign_in = checked_browser_sign_in(request.browser_sign_in)
    gateway = _Gateway(request.gateway, tls=bool(request.certificates))
    redirect = _sign_in_redirect(sign_in.sign_in_url, gateway)
    lines = {
        "sign_in_key_load": _block(
            "    # the browser sign-in state key, read once per process (a reload reads the new release's)",
            f"    set-var proc.sign_in_key str({_STATE_KEY_NAME}),map_str({STATE_KEYS})",
        ),
        "sign_in_paths": _paths(sign_in.sign_out_url, gateway),
        "sign_in_route": _block(
            "    # the callback is answered once step 5 verified its token: a route of its own, without",
            "    # methods or rules to judge, takes it there whatever routes.map holds",
            "    http-request set-var(txn.route) str(0|-|*|) if sign_in_callback",
        ),
        "sign_in_credential": _credential(gateway),
        "sign_in_answers": _callback(gateway) + _renewal(sign_in.refresh_seconds, redirect),
        "sign_in_redirect": _unauthorized(redirect),
        "sign_in_cookies": _cookie_removal(gateway),
    }
    return f"{_STATE_KEY_NAME} {_state_key(sign_in)}\n".encode(), lines
