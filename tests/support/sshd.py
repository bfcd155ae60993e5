"""A real OpenSSH server on a loopback port, standing in for a gateway's remote host.

``/usr/sbin/sshd -D -e`` with a configuration, host key and authorized key generated in a temporary
directory; it lets in the user running the tests (root in CI) with one generated client key. Its
log (VERBOSE) shows each session it served, so a test can tell that work really went over SSH.
"""

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from apps.core.crypto import Secret
from apps.gateways.live import free_loopback_port, stop_process
from apps.gateways.transports import SshSettings

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_SECONDS = 10
PRIVILEGE_SEPARATION_DIRECTORY = "/run/sshd"  # sshd refuses to start as root without it


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str
    public_line: str


def key_pair() -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return KeyPair(private, public)


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    username: str
    host_key: KeyPair
    client_key: KeyPair
    log_path: Path

    def settings(self, directory: str | Path, **changes) -> SshSettings:
        values = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "host_key": self.host_key.public_line,
            "private_key": Secret(self.client_key.private_openssh),
            "directory": str(directory),
        }
        return SshSettings(**{**values, **changes})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _config(directory: Path, port: int) -> str:
    return "\n".join(
        [
            "ListenAddress 127.0.0.1",
            f"Port {port}",
            f"HostKey {directory / 'ssh_host_ed25519_key'}",
            f"PidFile {directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {directory / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",  # the files live in a temporary directory, not in a home directory
            "PermitRootLogin prohibit-password",  # CI runs as root; keys only
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AllowStreamLocalForwarding yes",  # the HAProxy master socket is reached this way
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "",
        ]
    )


def _wait_until_it_greets(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                if connection.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sshd not answering on port {port} after {START_TIMEOUT_SECONDS}s: {log.read_text()[-2000:]}")


@contextmanager
def running_sshd(directory: Path) -> Iterator[Sshd]:
    """Start sshd on 127.0.0.1:<free port> with its files in ``directory``; stop it on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    host_key, client_key = key_pair(), key_pair()
    host_key_file = directory / "ssh_host_ed25519_key"
    host_key_file.write_text(host_key.private_openssh)
    host_key_file.chmod(0o600)  # sshd refuses a host key others can read
    (directory / "authorized_keys").write_text(client_key.public_line + "\n")
    port = free_loopback_port()
    config = directory / "sshd_config"
    config.write_text(_config(directory, port))
    if os.geteuid() == 0:
        os.makedirs(PRIVILEGE_SEPARATION_DIRECTORY, mode=0o755, exist_ok=True)
    log = directory / "sshd.log"
    with log.open("wb") as output:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_it_greets(port, process, log)
        yield Sshd("127.0.0.1", port, getpass.getuser(), host_key, client_key, log)
    finally:
        stop_process(process)
