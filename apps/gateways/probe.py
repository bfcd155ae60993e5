"""Asking a live gateway which config it runs: its well-known endpoint names the snapshot and deployment."""

import http.client
import ipaddress
import json
import ssl
import time
from dataclasses import dataclass

from apps.gateways.renderers.base import WELL_KNOWN_PATH

PROBE_TIMEOUT_SECONDS = 10
_ANY_ADDRESS = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (mapped, never bound)


class ProbeFailed(Exception):
    """The gateway did not answer with the expected config within the time allowed."""


@dataclass(frozen=True)
class ProbeTarget:
    host: str
    port: int
    tls: bool

    @classmethod
    def for_listen_address(cls, listen_address: str, *, tls: bool, gateway_host: str = "") -> "ProbeTarget":
        """Where to reach a gateway bound to ``listen_address`` from this host. ``gateway_host`` is
        how its host is reached from here (a transport's ``host``; empty: this host): a gateway
        listening on every address is probed there."""
        host, _, port = listen_address.rpartition(":")
        host = host.strip("[]")
        ipaddress.ip_address(_ANY_ADDRESS.get(host, host))  # listen addresses are validated; this guards the contract
        if host in _ANY_ADDRESS:
            host = gateway_host or _ANY_ADDRESS[host]
        return cls(host, int(port), tls)


def unverified_tls_context() -> ssl.SSLContext:
    """TLS without checking the gateway's certificate: probes and proofs check which config and
    which policy a gateway runs, not its PKI."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def gateway_connection(target: ProbeTarget, *, timeout: float) -> http.client.HTTPConnection:
    if target.tls:
        return http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=unverified_tls_context())
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout)


def well_known_answer(target: ProbeTarget) -> tuple[int, object]:
    """(status, the decoded JSON or the start of the body) of the gateway's well-known endpoint."""
    connection = gateway_connection(target, timeout=2)
    try:
        connection.request("GET", WELL_KNOWN_PATH, headers={"Host": "policyhub-probe.invalid"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body[:200].decode(errors="replace")


def probe_until(
    target: ProbeTarget, *, deployment_id: str, snapshot: str, timeout: float = PROBE_TIMEOUT_SECONDS
) -> float:
    """Poll until the gateway answers ``deployment_id`` and ``snapshot``; returns the seconds it took.

    Old workers keep answering for a moment after a reload, so an old answer is retried, not failed.
    """
    started = time.monotonic()
    last = "no answer"
    while True:
        try:
            status, answered = well_known_answer(target)
        except (OSError, http.client.HTTPException) as error:
            last = f"no answer ({error})"
        else:
            if status == 200 and isinstance(answered, dict):
                if answered.get("deployment") == deployment_id and answered.get("snapshot") == snapshot:
                    return time.monotonic() - started
                last = f"deployment {answered.get('deployment')!r}, snapshot {str(answered.get('snapshot'))[:12]}"
            else:
                last = f"HTTP {status}"
        if time.monotonic() - started > timeout:
            raise ProbeFailed(
                f"{target.host}:{target.port} still answers {last} after {timeout:.0f}s "
                f"(wanted deployment {deployment_id!r}, snapshot {snapshot[:12]})"
            )
        time.sleep(0.1)
