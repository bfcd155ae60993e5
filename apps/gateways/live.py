"""Running a rendered config on the real proxy binary, on a loopback port, for proofs and tests."""

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


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """Ask the proxy to stop (graceful for both); kill it if it is still there after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
