"""Both proxies cache verified tokens; a cached token must still stop working when it expires."""

import http.client
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.credentials.choices import CLOCK_LEEWAY_SECONDS
from apps.credentials.mint import sign_edge_token
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.renderers import render
from apps.gateways.renderers.base import RenderRequest
from tests.policies.builder import policy, route, rule
from tests.support.keys import key_pair

pytestmark = pytest.mark.slow
ALGORITHMS = {"haproxy": "RS256", "lighttpd": "HS256"}


def _status(port: int, token: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/x", headers={"Host": "app.example.test", "Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_a_cached_token_is_refused_once_it_expires(kind):
    key, signer = key_pair(kid="k1", algorithm=ALGORITHMS[kind], gateway="edge")
    compiled = policy(route("app.example.test", "/", rule("authenticated")), identities={"okta:a": []})
    port = free_loopback_port()
    with echo_upstream() as upstream:
        request = RenderRequest(compiled, "edge", f"127.0.0.1:{port}", (key,), "policyhub", upstream_override=upstream)
        with running_proxy(render(kind, request), port=port):
            # minted once the proxy runs: accepted for 8 more seconds, counting the proxies' clock leeway
            issued = timezone.now().replace(microsecond=0) - timedelta(seconds=60 + CLOCK_LEEWAY_SECONDS - 8)
            token = sign_edge_token(
                signer=signer, subject="okta:a", roles=[], now=issued, ttl=timedelta(seconds=60), issuer="policyhub"
            ).token
            assert [_status(port, token) for _ in range(3)] == [200, 200, 200]  # verified once, then cached
            time.sleep(10)
            assert _status(port, token) == 401
