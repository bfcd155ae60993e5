"""Where a gateway's rendered files go and where its proxy runs: this host, or a host reached over SSH.

``transport_for`` picks by kind: a gateway with SSH settings (``SshTarget``) is deployed over ssh,
any other one into its deploy directory on this host.
"""

from collections.abc import Callable

from apps.gateways.models import SshTarget
from apps.gateways.transports.base import CommandResult, NotASocket, ProcessGone, Transport, TransportError
from apps.gateways.transports.local import LocalTransport
from apps.gateways.transports.ssh import SshSettings, SshTransport
from apps.policies.models import Gateway


def _local(gateway: Gateway) -> Transport:
    return LocalTransport(gateway.deploy_directory)


def _ssh(gateway: Gateway) -> Transport:
    target = gateway.ssh_target
    return SshTransport(
        SshSettings(
            host=target.host,
            port=target.port,
            username=target.username,
            host_key=target.known_host,
            private_key=target.private_key,
            directory=gateway.deploy_directory,
        )
    )


TRANSPORTS: dict[str, Callable[[Gateway], Transport]] = {"local": _local, "ssh": _ssh}


def transport_kind(gateway: Gateway) -> str:
    return "ssh" if SshTarget.objects.filter(gateway=gateway).exists() else "local"


def transport_for(gateway: Gateway) -> Transport:
    """The transport to ``gateway``'s host; an ssh one connects on first use."""
    return TRANSPORTS[transport_kind(gateway)](gateway)


__all__ = [
    "CommandResult",
    "LocalTransport",
    "NotASocket",
    "ProcessGone",
    "SshSettings",
    "SshTransport",
    "Transport",
    "TransportError",
    "transport_for",
    "transport_kind",
]
