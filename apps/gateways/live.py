"""Running a rendered config on the real proxy binary, on a loopback port, for proofs and tests."""

import itertools
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apps.gateways.rendered import RenderedConfig

START_TIMEOUT_SECONDS = 15
# Foreground commands: the test owns the process and its lifetime.
_COMMANDS = {
    "haproxy": lambda main: ["haproxy", "-db", "-f", main],
    "lighttpd": lambda main: ["lighttpd", "-D", "-f", main],
}


class ProxyDidNotStart(RuntimeError):
    pass


# Ports handed out for proxies to bind later, below Linux's ephemeral range (32768-60999): the kernel
# gives ephemeral ports to every outgoing connection and bind(0), so a port picked from that range
# can be taken by someone else's connection before the proxy binds it. Each process walks the range
# from a random start, so one process never hands out a port twice and concurrent ones rarely meet.
_PORT_RANGE = range(20000, 32000)
_next_port = itertools.count(random.randrange(len(_PORT_RANGE)))  # noqa: S311 (spreading, not secrecy)


def free_loopback_port() -> int:
    """A loopback port nothing listens on now, for a proxy to bind."""
    for _ in range(len(_PORT_RANGE)):
        port = _PORT_RANGE[next(_next_port) % len(_PORT_RANGE)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ProxyDidNotStart(f"no free loopback port in {_PORT_RANGE.start}-{_PORT_RANGE.stop - 1}")


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProxyDidNotStart(f"exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ProxyDidNotStart(f"port {port} not listening after {START_TIMEOUT_SECONDS}s: {log.read_text()[-2000:]}")


@contextmanager
def running_proxy(rendered: RenderedConfig, *, port: int) -> Iterator[Path]:
    """Start the proxy on the rendered files (which must bind 127.0.0.1:``port``); stop it on exit."""
    if shutil.which(rendered.kind) is None:
        raise ProxyDidNotStart(f"{rendered.kind} is not installed; on Debian: apt-get install {rendered.kind}")
    with tempfile.TemporaryDirectory(prefix=f"policyhub-{rendered.kind}-") as workdir:
        directory = Path(workdir)
        rendered.write_to(directory)
        log = directory / "proxy.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 (fixed binary; our own file names)
                _COMMANDS[rendered.kind](rendered.main), cwd=directory, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            _wait_for_port(port, process, log)
            yield directory
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen) -> None:
    """Ask the process to stop (SIGTERM: graceful for both proxies); kill it if it is still there after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
