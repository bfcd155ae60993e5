"""Releases in a directory on this host, and the gateway's commands, socket and signals on this host too."""

import errno
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

from apps.gateways.rendered import RenderedConfig
from apps.gateways.transports.base import (
    COMMAND_NOT_FOUND,
    KEEP_RELEASES,
    CommandResult,
    NotASocket,
    ProcessGone,
    ReleaseEntry,
    ReleaseTree,
    TransportError,
)


def run_command(argv: list[str], *, cwd: str | None = None, timeout: float) -> CommandResult:
    """Run a program on this host, as a shell would report it: exit 127 when it is not installed."""
    if shutil.which(argv[0]) is None:
        return CommandResult(COMMAND_NOT_FOUND, "", f"{argv[0]}: command not found")
    try:
        finished = subprocess.run(  # noqa: S603 (callers pass fixed binaries and their own file names)
            argv, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise TransportError(f"{argv[0]} did not finish within {timeout:g}s") from None
    return CommandResult(finished.returncode, finished.stdout, finished.stderr)


class LocalTransport(ReleaseTree):
    kind = "local"
    host = ""

    def __init__(self, directory: str | Path, *, keep: int = KEEP_RELEASES):
        self.directory = str(Path(directory))
        self.keep = keep

    # Filesystem primitives (see ReleaseTree) ------------------------------------------------

    def _make_dirs(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def _write_release(self, path: str, rendered: RenderedConfig) -> None:
        Path(path).mkdir()
        rendered.write_to(Path(path))

    def _write_file(self, path: str, content: bytes, mode: int) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.chmod(path, mode)  # exactly: the umask may have narrowed it

    def _remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def _rename(self, source: str, target: str) -> None:
        os.replace(source, target)

    def _symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def _remove_link(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def _readlink(self, path: str) -> str | None:
        try:
            return os.readlink(path)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise TransportError(f"{path} is not a symlink to a release ({error.strerror})") from None

    def _is_dir(self, path: str) -> bool:
        return Path(path).is_dir()

    def _release_entries(self) -> list[ReleaseEntry]:
        return [
            ReleaseEntry(path.name, path.stat().st_mtime_ns)
            for path in Path(self.releases).iterdir()
            if path.is_dir() and not path.is_symlink()
        ]

    def _files_under(self, path: str) -> list[str]:
        root = Path(path)
        return [file.relative_to(root).as_posix() for file in root.rglob("*") if file.is_file()]

    def read_file(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as error:
            raise TransportError(f"cannot read {path}: {error.strerror}") from None

    # Commands, sockets and signals on this host ------------------------------------------------

    def run(self, argv: list[str], *, cwd: str | None = None, timeout: float) -> CommandResult:
        return run_command(argv, cwd=cwd, timeout=timeout)

    def unix_request(self, path: str, payload: bytes, *, timeout: float) -> bytes:
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = False
        if not is_socket:
            raise NotASocket(f"no socket at {path}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(timeout)
                connection.connect(path)
                connection.sendall(payload)
                connection.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := connection.recv(65536):
                    chunks.append(chunk)
        except TimeoutError:
            raise TransportError(f"{path} did not answer within {timeout:g}s") from None
        except OSError as error:
            raise TransportError(f"{path}: {error.strerror or errno.errorcode.get(error.errno, error)}") from None
        return b"".join(chunks)

    def send_signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            raise ProcessGone(f"no process {pid}") from None
        except PermissionError:
            raise TransportError(f"not allowed to signal process {pid}") from None

    def close(self) -> None:
        """Nothing is held open."""
