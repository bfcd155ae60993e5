"""Releases, commands, sockets and signals on a gateway's host reached over SSH (asyncssh).

One connection serves the transport's whole life; it is opened on first use, so a host that cannot
be reached fails the step that needed it, readably. asyncssh is asynchronous and the pipeline is
not: the connection lives on a private event loop in its own thread, and each call waits for its
result there. The host key is pinned (the gateway's stored public key line; anything else is
refused, never learned) and the client authenticates with the gateway's stored private key only:
no agent, no ~/.ssh files, no passwords. Files go over SFTP and both moves are OpenSSH's
``posix-rename``, which replaces its target atomically.
"""

import asyncio
import posixpath
import shlex
import signal
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncssh

from apps.core.crypto import Secret
from apps.gateways.rendered import RenderedConfig
from apps.gateways.ssh_keys import host_key_fingerprint
from apps.gateways.transports.base import (
    KEEP_RELEASES,
    CommandResult,
    NotASocket,
    ProcessGone,
    ReleaseEntry,
    ReleaseTree,
    TransportError,
)

CONNECT_TIMEOUT_SECONDS = 15
OPERATION_TIMEOUT_SECONDS = 120  # one SFTP operation, a whole release upload included
# A non-login session gets sshd's default PATH, which for a user other than root lacks the sbin
# directories Debian installs haproxy and lighttpd into; C messages keep the output parseable.
_ENVIRONMENT = 'export LC_ALL=C PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; '

T = TypeVar("T")


@dataclass(frozen=True)
class SshSettings:
    host: str
    port: int
    username: str
    host_key: str  # the host's OpenSSH public key line, pinned
    private_key: Secret  # the client's key, OpenSSH or PEM, without a passphrase
    directory: str  # the deploy directory on that host


class SshTransport(ReleaseTree):
    kind = "ssh"

    def __init__(self, settings: SshSettings, *, keep: int = KEEP_RELEASES):
        self.settings = settings
        self.directory = settings.directory
        self.host = settings.host
        self.keep = keep
        self.where = f"ssh {settings.username}@{settings.host}:{settings.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None

    def __repr__(self) -> str:
        return f"<SshTransport {self.where} {self.directory}>"

    # The sync facade over the private loop -----------------------------------------------------

    def _call(
        self, what: str, operation: Callable[[], Awaitable[T]], *, timeout: float = OPERATION_TIMEOUT_SECONDS
    ) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=self.where, daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._guarded(what, operation, timeout), self._loop).result()

    async def _guarded(self, what: str, operation: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Connect if needed, run ``operation`` within ``timeout``; every failure a TransportError."""
        if self._connection is None or self._connection.is_closed():
            await self._connect()
        try:
            return await asyncio.wait_for(operation(), timeout)
        except TransportError:
            raise
        except TimeoutError:
            raise TransportError(f"{self.where}: {what} did not finish within {timeout:g}s") from None
        except asyncssh.SFTPError as error:
            raise TransportError(f"{self.where}: {what}: {error.reason}") from None
        except (asyncssh.Error, OSError) as error:
            reason = getattr(error, "reason", "") or getattr(error, "strerror", "") or type(error).__name__
            raise TransportError(f"{self.where}: {what}: {reason}") from None

    async def _connect(self) -> None:
        settings = self.settings
        try:
            host_key = asyncssh.import_public_key(settings.host_key)
            client_key = asyncssh.import_private_key(settings.private_key.reveal())
        except (asyncssh.KeyImportError, ValueError):
            raise TransportError(f"{self.where}: the stored SSH keys cannot be read; set them again") from None
        try:
            self._connection = await asyncssh.connect(
                settings.host,
                settings.port,
                username=settings.username,
                known_hosts=([host_key], [], []),
                client_keys=[client_key],
                agent_path=None,
                config=[],
                x509_trusted_certs=None,
                gss_host=None,
                password_auth=False,
                kbdint_auth=False,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                login_timeout=CONNECT_TIMEOUT_SECONDS,
                keepalive_interval=30,
            )
            self._sftp = await self._connection.start_sftp_client()
        except asyncssh.HostKeyNotVerifiable:
            raise TransportError(
                f"{self.where}: the host key it presented is not the one stored for this gateway "
                f"({host_key_fingerprint(settings.host_key)}); refused"
            ) from None
        except asyncssh.PermissionDenied:
            raise TransportError(
                f"{self.where}: the server refused the gateway's client key for user {settings.username}"
            ) from None
        except (asyncssh.Error, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", "") or getattr(error, "strerror", "") or type(error).__name__
            raise TransportError(f"{self.where}: cannot connect ({reason})") from None

    def close(self) -> None:
        if self._loop is None:
            return
        if self._connection is not None:
            asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None

    async def _disconnect(self) -> None:
        self._sftp.exit()
        self._connection.close()
        await self._connection.wait_closed()
        self._connection = self._sftp = None

    # Filesystem primitives (see ReleaseTree) ------------------------------------------------

    def _make_dirs(self, path: str) -> None:
        self._call(f"create {path}", lambda: self._sftp.makedirs(path, exist_ok=True))

    async def _upload(self, target: str, content: bytes, mode: int) -> None:
        # Created with its own mode (a secret is never readable by others, not even for a moment),
        # then set exactly: the server's umask may have narrowed it.
        async with self._sftp.open(target, "wb", attrs=asyncssh.SFTPAttrs(permissions=mode)) as remote:
            await remote.write(content)
        await self._sftp.chmod(target, mode)

    def _write_release(self, path: str, rendered: RenderedConfig) -> None:
        async def upload() -> None:
            await self._sftp.mkdir(path)
            for name, file in rendered.files.items():
                target = posixpath.join(path, name)
                await self._sftp.makedirs(posixpath.dirname(target), exist_ok=True)
                await self._upload(target, file.content, file.mode)

        self._call(f"upload to {path}", upload)

    def _write_file(self, path: str, content: bytes, mode: int) -> None:
        self._call(f"upload {path}", lambda: self._upload(path, content, mode))

    def _remove_tree(self, path: str) -> None:
        async def remove() -> None:
            if await self._sftp.lexists(path):
                await self._sftp.rmtree(path)

        self._call(f"remove {path}", remove)

    def _rename(self, source: str, target: str) -> None:
        self._call(f"rename {source} to {target}", lambda: self._sftp.posix_rename(source, target))

    def _symlink(self, target: str, path: str) -> None:
        self._call(f"link {path}", lambda: self._sftp.symlink(target, path))

    def _remove_link(self, path: str) -> None:
        async def remove() -> None:
            if await self._sftp.lexists(path):
                await self._sftp.remove(path)

        self._call(f"remove {path}", remove)

    def _readlink(self, path: str) -> str | None:
        async def readlink() -> str | None:
            try:
                return await self._sftp.readlink(path)
            except asyncssh.SFTPNoSuchFile:
                return None
            except asyncssh.SFTPError as error:
                raise TransportError(f"{path} is not a symlink to a release ({error.reason})") from None

        return self._call(f"read {path}", readlink)

    def _is_dir(self, path: str) -> bool:
        return self._call(f"look at {path}", lambda: self._sftp.isdir(path))

    def _release_entries(self) -> list[ReleaseEntry]:
        async def entries() -> list[ReleaseEntry]:
            return [
                ReleaseEntry(entry.filename, entry.attrs.mtime_ns or (entry.attrs.mtime or 0) * 10**9)
                for entry in await self._sftp.readdir(self.releases)
                if entry.filename not in {".", ".."} and stat.S_ISDIR(entry.attrs.permissions or 0)
            ]

        return self._call(f"list {self.releases}", entries)

    def _files_under(self, path: str) -> list[str]:
        async def walk(relative: str) -> list[str]:
            found = []
            for entry in await self._sftp.readdir(posixpath.join(path, relative)):
                name = posixpath.join(relative, entry.filename) if relative else entry.filename
                mode = entry.attrs.permissions or 0
                if entry.filename in {".", ".."}:
                    continue
                if stat.S_ISDIR(mode):
                    found += await walk(name)
                elif stat.S_ISREG(mode):
                    found.append(name)
            return found

        return self._call(f"list {path}", lambda: walk(""))

    def read_file(self, path: str) -> bytes:
        async def read() -> bytes:
            try:
                async with self._sftp.open(path, "rb") as remote:
                    return await remote.read()
            except asyncssh.SFTPError as error:
                raise TransportError(f"{self.where}: cannot read {path}: {error.reason}") from None

        return self._call(f"read {path}", read)

    # Commands, sockets and signals on the gateway's host ---------------------------------------

    def run(self, argv: list[str], *, cwd: str | None = None, timeout: float) -> CommandResult:
        # ``exec`` makes a missing program exit 127, as the local transport reports it.
        command = _ENVIRONMENT + (f"cd {shlex.quote(cwd)} && " if cwd else "") + "exec " + shlex.join(argv)

        async def run() -> CommandResult:
            finished = await self._connection.run(
                command, check=False, timeout=timeout, encoding="utf-8", errors="replace"
            )
            return CommandResult(finished.returncode, finished.stdout or "", finished.stderr or "")

        return self._call(f"run {argv[0]}", run, timeout=timeout + 1)  # asyncssh's own limit ends the channel

    def unix_request(self, path: str, payload: bytes, *, timeout: float) -> bytes:
        async def request() -> bytes:
            try:
                mode = (await self._sftp.stat(path)).permissions or 0
            except asyncssh.SFTPNoSuchFile:
                mode = 0
            if not stat.S_ISSOCK(mode):
                raise NotASocket(f"no socket at {path} ({self.where})")
            try:
                reader, writer = await self._connection.open_unix_connection(path)
            except asyncssh.ChannelOpenError as error:
                raise TransportError(f"{self.where}: {path}: {error.reason}") from None
            try:
                writer.write(payload)
                writer.write_eof()  # the server half-closes the socket: the HAProxy master answers then
                return await reader.read()
            finally:
                writer.close()

        return self._call(f"talk to {path}", request, timeout=timeout)

    def send_signal(self, pid: int, signum: int) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")
        command = f"{_ENVIRONMENT}kill -s {name} {int(pid)}"

        async def send() -> CommandResult:
            return await self._connection.run(command, check=False, encoding="utf-8", errors="replace")

        finished = self._call(f"signal process {pid}", send, timeout=CONNECT_TIMEOUT_SECONDS)
        if finished.returncode != 0:
            message = (finished.stderr or "").strip().splitlines()[-1:] or [f"kill exit {finished.returncode}"]
            if "No such process" in message[0]:
                raise ProcessGone(f"no process {pid} ({self.where})")
            raise TransportError(f"{self.where}: cannot signal process {pid}: {message[0]}")
