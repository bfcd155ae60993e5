"""Changing what a running proxy holds without reloading it.

HAProxy: a map's entries are replaced through the runtime API on the master CLI, atomically
(``prepare map``, ``add map @<version>`` with every entry, ``commit map``: staged entries stay
invisible until the commit; shared/reference/proxies.md §1.5). A reload rereads the map's file,
so the caller writes the file first. lighttpd has no runtime API: it re-reads a top-level
mod_magnet script once the script's file is replaced (§2.6), so writing the file is all it takes.
"""

import re

from apps.gateways.reload import haproxy_master_socket, master_command
from apps.gateways.transports import NotASocket, Transport, TransportError

_NEW_VERSION = re.compile(r"New version created: (\d+)")


class RuntimeUpdateFailed(Exception):
    """The running proxy could not be told; the message says why (the file on disk is already new)."""


def haproxy_map_replace(*, transport: Transport, map_path: str, lines: list[str]) -> None:
    """Make the current worker's copy of the map ``map_path`` (named as the config names it) hold
    exactly ``lines`` ("<key> <value>"), all at once."""
    socket = haproxy_master_socket(transport)
    try:
        answer = master_command(transport, socket, f"@1 prepare map {map_path}")
        version = _NEW_VERSION.search(answer)
        if version is None:
            raise RuntimeUpdateFailed(f"HAProxy did not prepare {map_path}: {answer.strip()[:200]!r}")
        if lines:
            # the payload form: every entry in one command, ended by an empty line
            payload = "".join(f"{line}\n" for line in lines)
            _expect_silence(transport, socket, f"@1 add map @{version[1]} {map_path} <<\n{payload}")
        _expect_silence(transport, socket, f"@1 commit map @{version[1]} {map_path}")
    except NotASocket:
        raise RuntimeUpdateFailed(f"no HAProxy master socket at {socket}: is haproxy running?") from None
    except TransportError as error:
        raise RuntimeUpdateFailed(f"HAProxy master at {socket} did not answer ({error})") from None


def _expect_silence(transport: Transport, socket: str, command: str) -> None:
    """Run a command that answers nothing when it succeeds; anything said is the error."""
    answer = master_command(transport, socket, command).strip()
    if answer:
        verb = " ".join(command.split()[1:3])
        raise RuntimeUpdateFailed(f"HAProxy refused {verb}: {answer[:200]!r}")
