"""A gateway from the database, rendered and running on a loopback port in front of the echo upstream."""

import http.client
import json
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port, running_proxy
from apps.gateways.renderers import render
from apps.gateways.selectors import render_request_for
from apps.gateways.validate import validate
from apps.policies.models import Gateway, PolicySnapshot


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    echoed: dict | None  # what the upstream received (method, path, headers), when it was reached


class _VerifiedTLSConnection(http.client.HTTPSConnection):
    """Connects to 127.0.0.1 but sends SNI and checks the certificate for ``server_name``."""

    def __init__(self, port: int, server_name: str, context: ssl.SSLContext, **kwargs):
        super().__init__("127.0.0.1", port, context=context, **kwargs)
        self.server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


@dataclass(frozen=True)
class LiveGateway:
    port: int
    trusted_pem: str  # the certificate a client trusts; empty when the gateway speaks plain HTTP

    def request(
        self,
        method: str,
        host: str,
        target: str,
        *,
        token: str = "",
        client_ip: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Host": host, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if self.trusted_pem:
            context = ssl.create_default_context(cadata=self.trusted_pem)
            connection = _VerifiedTLSConnection(self.port, host, context, timeout=10, source_address=(client_ip, 0))
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(client_ip, 0))
        try:
            connection.request(method, target, headers=sent)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        received = {name.lower(): value for name, value in response.getheaders()}
        echoed = json.loads(body) if received.get("content-type") == "application/json" and body else None
        return Answer(response.status, received, echoed if echoed and "headers" in echoed else None)


@contextmanager
def live_gateway(gateway: Gateway, snapshot: PolicySnapshot, *, upstream: str = "") -> Iterator[LiveGateway]:
    """Render ``gateway`` from ``snapshot`` with its real keys and certificates, validate it with the
    real binary, and run it with every route pointed at ``upstream`` (default: an echo upstream)."""
    with ExitStack() as stack:
        port = free_loopback_port()
        request = render_request_for(
            gateway=gateway, snapshot=snapshot, listen_address=f"127.0.0.1:{port}",
            upstream_override=upstream or stack.enter_context(echo_upstream()),
        )  # fmt: skip
        rendered = render(gateway.kind, request)
        validation = validate(rendered)
        assert validation.ok, validation.problems
        trusted = request.certificates[0].chain_pem if request.certificates else ""
        stack.enter_context(running_proxy(rendered, port=port))
        yield LiveGateway(port, trusted)
