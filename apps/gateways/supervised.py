"""A gateway's proxy running from its deploy directory, as README "Deploying" asks a supervisor to
start it: HAProxy in master-worker mode with its master socket, lighttpd in the foreground with its
pid file, both on ``<dir>/current``. Deploys then reload it; they never start it.

Used by ``manage.py run_gateways`` (the demo and development) and by the tests and benchmarks.
"""

import http.client
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from apps.gateways.live import START_TIMEOUT_SECONDS, ProxyDidNotStart, stop_process
from apps.gateways.probe import ProbeTarget, well_known_answer
from apps.gateways.reload import HAPROXY_MASTER_SOCKET, LIGHTTPD_PID_FILE, RUN
from apps.gateways.transports import transport_kind
from apps.policies.choices import GatewayKind
from apps.policies.models import Gateway

LOG_FILE = "proxy.log"


def proxy_binary(kind: str) -> str:
    return "haproxy" if kind == GatewayKind.HAPROXY else "lighttpd"


def proxy_missing(kind: str) -> str:
    """Why the proxy cannot run on this host; empty when its binary is installed."""
    binary = proxy_binary(kind)
    return "" if shutil.which(binary) else f"{binary} is not installed (on Debian: apt-get install {binary})"


def proxy_command(kind: str, directory: Path) -> list[str]:
    if kind == GatewayKind.HAPROXY:
        socket = str(directory / RUN / HAPROXY_MASTER_SOCKET)
        return ["haproxy", "-W", "-S", socket, "-f", str(directory / "current/haproxy.cfg")]
    return ["lighttpd", "-D", "-f", str(directory / "current/lighttpd.conf")]


@contextmanager
def proxy_running(kind: str, directory: Path) -> Iterator[subprocess.Popen]:
    """Start the proxy on ``directory``'s current release, its output appended to ``<dir>/proxy.log``;
    stop it on leaving."""
    (directory / RUN).mkdir(exist_ok=True)
    with (directory / LOG_FILE).open("ab") as log:
        command = proxy_command(kind, directory)
        # a session of its own: a Ctrl-C in the terminal stops the supervisor, which stops the proxy
        process = subprocess.Popen(  # noqa: S603 (fixed binary; our own file names)
            command, cwd=directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    if kind == GatewayKind.LIGHTTPD:
        (directory / RUN / LIGHTTPD_PID_FILE).write_text(f"{process.pid}\n")
    try:
        yield process
    finally:
        stop_process(process)


def wait_until_answering(process: subprocess.Popen, *, directory: Path, listen_address: str) -> dict:
    """The well-known endpoint's answer once the started proxy gives one; ``ProxyDidNotStart`` with
    the end of its log if it exits or stays silent."""
    target = ProbeTarget.for_listen_address(listen_address, tls=False)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        with suppress(OSError, http.client.HTTPException):
            status, answer = well_known_answer(target)
            if status == 200 and isinstance(answer, dict):
                return answer
        time.sleep(0.1)
    log = (directory / LOG_FILE).read_text(errors="replace")[-2000:]
    if process.poll() is not None:
        raise ProxyDidNotStart(f"exited with status {process.returncode}:\n{log}")
    raise ProxyDidNotStart(f"no answer on {listen_address} after {START_TIMEOUT_SECONDS}s:\n{log}")


def gateway_not_runnable_here(gateway: Gateway) -> str:
    """Why this command cannot run the gateway's proxy; empty when it can."""
    if transport_kind(gateway) == "ssh":
        return "deployed over SSH: its proxy runs on that host"
    if missing := proxy_missing(gateway.kind):
        return missing
    if not (Path(gateway.deploy_directory) / "current").exists():
        return f"no release in place yet: run `python manage.py deploy {gateway.name} --install` first"
    return ""
