"""Canonical forms shared by everything that hashes or compares: JSON text and client addresses."""

import ipaddress
import json

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_json(data) -> str:
    """Sorted keys, no whitespace: equal data always gives equal text (and equal hashes)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def client_address(text: str) -> IPAddress | None:
    """A client address as policies see it: IPv4-mapped IPv6 is the IPv4 address; junk is None."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address
