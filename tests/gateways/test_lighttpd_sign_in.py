"""Browser sign-in at lighttpd beyond the shared live test: the revocation list (a script of its
own, which reads only the Authorization header) judges the cookie's and the callback's tokens too,
a request body survives the second pass that takes, the gateway's cookies never reach the upstream
even when the bearer header is the credential, the sign-in paths answer on any host, and sign-in
URLs that could break a header are refused."""

import http.client
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.renderers import render
from apps.gateways.renderers.base import (
    CALLBACK_PATH,
    SIGN_OUT_PATH,
    RenderError,
    RenderRequest,
    RevokedSubject,
    VerificationKey,
)
from apps.gateways.renderers.lighttpd import LighttpdRenderer
from tests.gateways.test_browser_sign_in_live import HOST, HTML, POLICY, SIGN_IN, Gateway
from tests.support.keys import key_pair


def _request(port: int, upstream: str, key: VerificationKey, **options) -> RenderRequest:
    return RenderRequest(
        POLICY, "edge", f"127.0.0.1:{port}", (key,), "policyhub", upstream_override=upstream,
        browser_sign_in=SIGN_IN, **options,
    )  # fmt: skip


@contextmanager
def _gateway(tmp_path) -> Iterator[tuple[Gateway, datetime]]:
    """lighttpd with browser sign-in and a revocation list that revokes the tokens okta:jane was
    issued until a few seconds ago; with a time such tokens were issued at."""
    key, signer = key_pair(kid="k1", algorithm="HS256", gateway="edge")
    revocations = tmp_path / "policyhub_revocations.lua"
    revoked_at = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
    revoked = RevokedSubject("okta:jane", int(revoked_at.timestamp()))
    revocations.write_bytes(LighttpdRenderer().revocations_render(gateway="edge", entries=[revoked]))
    port = free_loopback_port()
    with echo_upstream() as upstream:
        rendered = render("lighttpd", _request(port, upstream, key, revocation_list=str(revocations)))
        with running_proxy(rendered, port=port):
            yield Gateway(port, False, signer), revoked_at - timedelta(seconds=10)


@pytest.mark.slow
def test_a_revoked_subjects_cookie_carries_no_identity(tmp_path):
    with _gateway(tmp_path) as (gateway, before):
        revoked = {"Cookie": f"{gateway.cookie}={gateway.token(now=before)}"}
        later = {"Cookie": f"{gateway.cookie}={gateway.token()}"}

        assert gateway.get("/page", revoked).status == 401
        assert gateway.get("/page", {**HTML, **revoked}).status == 302  # sent to sign in again
        public = json.loads(gateway.get("/public", revoked).body)["headers"]
        assert "x-policyhub-email" not in public and "cookie" not in public
        assert gateway.get("/page", later).status == 200
        assert gateway.get("/page", {"Authorization": f"Bearer {gateway.token(now=before)}"}).status == 401


@pytest.mark.slow
def test_a_revoked_subjects_callback_token_does_not_sign_in(tmp_path):
    with _gateway(tmp_path) as (gateway, before):
        state = secrets.token_urlsafe(32)

        refused = gateway.callback(gateway.token(nonce=state, now=before), state)
        accepted = gateway.callback(gateway.token(nonce=state), state)

        assert (refused.status, refused.headers.get_all("Set-Cookie")) == (400, None)
        assert accepted.status == 302


@pytest.mark.slow
def test_a_browsers_request_body_reaches_the_upstream_after_the_revocation_pass(tmp_path):
    with _gateway(tmp_path) as (gateway, _):
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        headers = {"Host": HOST, "Cookie": f"{gateway.cookie}={gateway.token()}"}
        try:
            connection.request("POST", "/page", body=b"x" * 200_000, headers=headers)
            response = connection.getresponse()
            echoed = json.loads(response.read())["headers"]
        finally:
            connection.close()

        assert (response.status, echoed["content-length"]) == (200, "200000")
        assert echoed["x-policyhub-email"] == "jane@example.test"


@pytest.mark.slow
def test_the_gateways_cookies_never_reach_the_upstream_beside_a_bearer_token(tmp_path):
    with _gateway(tmp_path) as (gateway, _):
        cookies = f"{gateway.state_cookie}=s; a=1;{gateway.cookie}=t;  b=2 ;policyhub-other=3"
        headers = {"Authorization": f"Bearer {gateway.token()}", "Cookie": cookies}

        echoed = json.loads(gateway.get("/page", headers).body)["headers"]

        assert echoed["cookie"] == "a=1; b=2; policyhub-other=3"
        assert "authorization" not in echoed


@pytest.mark.slow
def test_the_sign_in_paths_answer_on_any_host_and_only_to_their_methods(tmp_path):
    with _gateway(tmp_path) as (gateway, _):
        elsewhere = {"Host": "unrouted.example.test"}

        assert gateway.get(SIGN_OUT_PATH, elsewhere).status == 302
        assert gateway.get(f"{CALLBACK_PATH}?token=x&rd=%2F", elsewhere).status == 400
        refused = gateway.get(SIGN_OUT_PATH, method="POST")
        assert (refused.status, refused.headers["Allow"]) == (405, "GET, HEAD")
        assert gateway.get(CALLBACK_PATH, method="POST").status == 400


@pytest.mark.parametrize(
    "url", ["ftp://policyhub.example.test/edge/signin", "https://policyhub.example.test/a b", "https://h/x?y=1"]
)
def test_a_sign_in_url_the_gate_cannot_put_in_a_header_is_refused(url):
    request = _request(8080, "", key_pair(kid="k1", algorithm="HS256", gateway="edge")[0])

    with pytest.raises(RenderError, match="browser sign-in URL"):
        render("lighttpd", replace(request, browser_sign_in=replace(SIGN_IN, sign_in_url=url)))
