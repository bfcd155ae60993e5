"""Telling a running proxy to load the config ``<deploy directory>/current`` names, without dropping requests.

Everything happens on the gateway's host, through its transport (this host, or over SSH).

The contract with whoever starts the proxy (README, "Deploying"):
- HAProxy: ``haproxy -W -S <dir>/run/haproxy-master.sock -f <dir>/current/haproxy.cfg``. ``reload``
  on the master CLI re-executes the master with the same arguments, so it reads the new release
  through the symlink and hands the listeners to a new worker (shared/reference/proxies.md §1.6).
- lighttpd: ``lighttpd -D -f <dir>/current/lighttpd.conf``, its pid in ``<dir>/run/lighttpd.pid``.
  SIGUSR1 is a graceful restart only in the foreground (``-D``); a daemonized lighttpd exits on it
  (proxies.md §2.6).
"""

import posixpath
import re
import signal
import time

from apps.gateways.transports import NotASocket, ProcessGone, Transport, TransportError

RUN = "run"
HAPROXY_MASTER_SOCKET = "haproxy-master.sock"
LIGHTTPD_PID_FILE = "lighttpd.pid"
MASTER_TIMEOUT_SECONDS = 10
# "<pid>  master  <reloads> [failed: <n>]  <uptime>  <version>" in the master's "show proc"
_MASTER_LINE = re.compile(r"^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.M)


class ReloadFailed(Exception):
    """The proxy could not be told to reload, or refused the new config; the message says why."""


def reload_proxy(*, kind: str, transport: Transport) -> None:
    if kind == "haproxy":
        _reload_haproxy(transport, haproxy_master_socket(transport))
    elif kind == "lighttpd":
        _restart_lighttpd(transport, posixpath.join(transport.directory, RUN, LIGHTTPD_PID_FILE))
    else:
        raise ReloadFailed(f"no reload for proxy kind {kind!r}")


# HAProxy ---------------------------------------------------------------------------------------


def haproxy_master_socket(transport: Transport) -> str:
    return posixpath.join(transport.directory, RUN, HAPROXY_MASTER_SOCKET)


def master_command(transport: Transport, path: str, command: str) -> str:
    """One command on the master CLI (``@1 <command>`` for the current worker). The master answers
    once the client half-closes (as socat does at the end of its input) and then closes the connection."""
    answer = transport.unix_request(path, f"{command}\n".encode(), timeout=MASTER_TIMEOUT_SECONDS)
    return answer.decode(errors="replace")


def _master_counters(transport: Transport, path: str) -> tuple[int, int]:
    """(reloads, failed reloads) from the master's ``show proc``."""
    answer = master_command(transport, path, "show proc")
    match = _MASTER_LINE.search(answer)
    if match is None:
        raise ReloadFailed(f"unexpected answer from the HAProxy master at {path}: {answer[:200]!r}")
    return int(match.group(1)), int(match.group(2))


def _reload_haproxy(transport: Transport, path: str) -> None:
    try:
        reloads, _ = _master_counters(transport, path)
        master_command(transport, path, "reload")
    except NotASocket:
        raise ReloadFailed(f"no HAProxy master socket at {path}: is haproxy running with -W -S {path}?") from None
    except TransportError as error:
        raise ReloadFailed(f"HAProxy master at {path} did not answer ({error})") from None
    # The master re-executes itself: until the new master listens, its socket refuses connections,
    # or accepts one and closes it unanswered (seen through an SSH channel under load).
    deadline = time.monotonic() + MASTER_TIMEOUT_SECONDS
    while True:
        try:
            after, failed = _master_counters(transport, path)
        except (TransportError, ReloadFailed) as error:
            if time.monotonic() > deadline:
                raise ReloadFailed(f"HAProxy master at {path} gone after reload ({error})") from None
            time.sleep(0.05)
            continue
        if after > reloads:
            break
        if time.monotonic() > deadline:
            raise ReloadFailed(f"HAProxy master at {path} did not reload within {MASTER_TIMEOUT_SECONDS}s")
        time.sleep(0.05)
    if failed:
        # The old worker keeps serving the old config (proxies.md §1.6): a failed reload drops nothing.
        raise ReloadFailed("HAProxy refused the new config (master reports a failed reload)")


# lighttpd --------------------------------------------------------------------------------------


def _restart_lighttpd(transport: Transport, pid_file: str) -> None:
    try:
        text = transport.read_file(pid_file).decode(errors="replace").strip()
    except TransportError as error:
        raise ReloadFailed(f"no lighttpd pid file ({error})") from None
    if not text.isdigit() or int(text) <= 1:
        raise ReloadFailed(f"{pid_file} holds {text[:20]!r}, not a process id")
    try:
        transport.send_signal(int(text), signal.SIGUSR1)
    except ProcessGone:
        raise ReloadFailed(f"lighttpd (pid {text} from {pid_file}) is not running") from None
    except TransportError as error:
        raise ReloadFailed(f"cannot signal lighttpd (pid {text} from {pid_file}): {error}") from None
