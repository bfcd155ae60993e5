"""Where a gateway's rendered files go: releases side by side, one of them live (see ``base``)."""

from apps.gateways.transports.base import Transport, TransportError
from apps.gateways.transports.local import LocalTransport
from apps.policies.models import Gateway


def transport_for(gateway: Gateway) -> Transport:
    return LocalTransport(gateway.deploy_directory)


__all__ = ["LocalTransport", "Transport", "TransportError", "transport_for"]
