"""Where a gateway's rendered files go: releases side by side, one of them live (see ``base``)."""

from apps.gateways.transports.base import Transport, TransportError
from apps.gateways.transports.local import LocalTransport

__all__ = ["LocalTransport", "Transport", "TransportError"]
