"""Telling a running proxy to load the config ``<deploy directory>/current`` names, without dropping requests.

The contract with whoever starts the proxy (README, "Deploying"):
- HAProxy: ``haproxy -W -S <dir>/run/haproxy-master.sock -f <dir>/current/haproxy.cfg``. ``reload``
  on the master CLI re-executes the master with the same arguments, so it reads the new release
  through the symlink and hands the listeners to a new worker (shared/reference/proxies.md §1.6).
- lighttpd: ``lighttpd -D -f <dir>/current/lighttpd.conf``, its pid in ``<dir>/run/lighttpd.pid``.
  SIGUSR1 is a graceful restart only in the foreground (``-D``); a daemonized lighttpd exits on it
  (proxies.md §2.6).
"""

import os
import re
import signal
import socket
import time
from pathlib import Path

RUN = "run"
HAPROXY_MASTER_SOCKET = "haproxy-master.sock"
LIGHTTPD_PID_FILE = "lighttpd.pid"
MASTER_TIMEOUT_SECONDS = 10
# "<pid>  master  <reloads> [failed: <n>]  <uptime>  <version>" in the master's "show proc"
_MASTER_LINE = re.compile(r"^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.M)


class ReloadFailed(Exception):
    """The proxy could not be told to reload, or refused the new config; the message says why."""


def reload_proxy(*, kind: str, directory: str | Path) -> None:
    run = Path(directory) / RUN
    if kind == "haproxy":
        _reload_haproxy(run / HAPROXY_MASTER_SOCKET)
    elif kind == "lighttpd":
        _restart_lighttpd(run / LIGHTTPD_PID_FILE)
    else:
        raise ReloadFailed(f"no reload for proxy kind {kind!r}")


# HAProxy ---------------------------------------------------------------------------------------


def _master_command(path: Path, command: str) -> str:
    """One command on the master CLI. The master answers once the client half-closes (as socat does
    at the end of its input) and then closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(MASTER_TIMEOUT_SECONDS)
        connection.connect(str(path))
        connection.sendall(f"{command}\n".encode())
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _master_counters(path: Path) -> tuple[int, int]:
    """(reloads, failed reloads) from the master's ``show proc``."""
    answer = _master_command(path, "show proc")
    match = _MASTER_LINE.search(answer)
    if match is None:
        raise ReloadFailed(f"unexpected answer from the HAProxy master at {path}: {answer[:200]!r}")
    return int(match.group(1)), int(match.group(2))


def _reload_haproxy(path: Path) -> None:
    if not path.is_socket():
        raise ReloadFailed(f"no HAProxy master socket at {path}: is haproxy running with -W -S {path}?")
    try:
        reloads, _ = _master_counters(path)
        _master_command(path, "reload")
    except OSError as error:
        raise ReloadFailed(f"HAProxy master at {path} did not answer ({error})") from None
    # The master re-executes itself: its socket refuses connections until the new master listens.
    deadline = time.monotonic() + MASTER_TIMEOUT_SECONDS
    while True:
        try:
            after, failed = _master_counters(path)
        except OSError as error:
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


def _restart_lighttpd(pid_file: Path) -> None:
    try:
        text = pid_file.read_text().strip()
    except OSError as error:
        raise ReloadFailed(f"no lighttpd pid file at {pid_file} ({error.strerror})") from None
    if not text.isdigit() or int(text) <= 1:
        raise ReloadFailed(f"{pid_file} holds {text[:20]!r}, not a process id")
    try:
        os.kill(int(text), signal.SIGUSR1)
    except ProcessLookupError:
        raise ReloadFailed(f"lighttpd (pid {text} from {pid_file}) is not running") from None
    except PermissionError:
        raise ReloadFailed(f"not allowed to signal pid {text} from {pid_file}") from None
