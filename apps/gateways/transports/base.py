"""The interface every transport offers the deploy pipeline, and the release layout they share.

A gateway's deploy directory holds ``releases/<release>/`` (one rendered config each) and
``current``, which names the live release; flipping ``current`` is the only step that changes what
the proxy loads on its next reload, so it must be atomic. ``shared/`` holds what every release
names and what changes while one is live (the revocation list), each file replaced atomically.
``ReleaseTree`` implements that layout once over a handful of filesystem primitives; each transport
supplies the primitives for where the gateway lives (this host, or one reached over SSH) and the
commands the pipeline runs there.
"""

import hashlib
import posixpath
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from apps.gateways.rendered import RenderedConfig

# Release names become directory names: a plain slug can never climb out of releases/.
RELEASE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SHARED_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
RELEASES = "releases"
CURRENT = "current"
SHARED = "shared"  # files every release names and that change while one is live (the revocation list)
PARTIAL_SUFFIX = ".partial"
KEEP_RELEASES = 5  # in all, the live one included: enough to roll back by hand, few enough to stay small
COMMAND_NOT_FOUND = 127  # what a POSIX shell exits with when it cannot find a command


class TransportError(Exception):
    """A transport refused or failed an operation; the message says which and why."""


class NotASocket(TransportError):
    """Nothing listens at a Unix socket path: the path is missing or is not a socket."""


class ProcessGone(TransportError):
    """The process to be signalled does not exist."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int  # COMMAND_NOT_FOUND when the program is not installed on the gateway's host
    stdout: str
    stderr: str


@dataclass(frozen=True)
class ReleaseEntry:
    name: str
    mtime_ns: int


class Transport(Protocol):
    kind: str
    directory: str  # the deploy directory, a path on the gateway's host
    host: str  # where the gateway's host is reached from here; empty: this host

    def release_path(self, release: str) -> str:
        """The absolute path the release's files have on the gateway's host."""

    def stage(self, release: str, rendered: RenderedConfig) -> None:
        """Write the release's files completely, or not at all; the live release is untouched."""

    def activate(self, release: str) -> str | None:
        """Make ``release`` the live one atomically; returns the release that was live before."""

    def active(self) -> str | None:
        """The live release, or None before the first activation."""

    def discard(self, release: str) -> None:
        """Remove a release that is not live (and any partial copy of it)."""

    def file_hashes(self, release: str) -> dict[str, str]:
        """sha256 of each file of a staged release, by its name relative to the release directory."""

    def shared_path(self, name: str) -> str:
        """The absolute path ``<directory>/shared/<name>`` has on the gateway's host."""

    def shared_file_replace(self, name: str, content: bytes, *, mode: int = 0o644) -> str:
        """Replace ``<directory>/shared/<name>`` atomically (a reader sees the old file or the new one,
        never a part); returns its absolute path. For what changes while a release is live."""

    def run(self, argv: list[str], *, cwd: str | None = None, timeout: float) -> CommandResult:
        """Run a program on the gateway's host; raises TransportError if it outlives ``timeout``."""

    def unix_request(self, path: str, payload: bytes, *, timeout: float) -> bytes:
        """Send ``payload`` to the Unix stream socket ``path``, half-close, and read the answer to EOF."""

    def read_file(self, path: str) -> bytes:
        """A file's bytes from the gateway's host."""

    def send_signal(self, pid: int, signum: int) -> None:
        """Signal a process on the gateway's host; ProcessGone if it does not exist."""

    def close(self) -> None:
        """Release whatever the transport holds open (a connection); it is not used afterwards."""


def checked_release(release: str) -> str:
    if not RELEASE_NAME.fullmatch(release):
        raise TransportError(f"release name {release!r} is not a plain slug ([a-z0-9-], at most 63)")
    return release


def releases_to_prune(entries: Iterable[ReleaseEntry], *, live: str, spare: str | None, keep: int) -> list[str]:
    """Keep ``keep`` releases in all: the live one, the one it replaced (the rollback target) and
    the newest others; returns the names to remove. Staging times can tie within the clock's
    granularity (whole seconds over SFTP); numeric names (deployment ids) break the tie."""
    ordered = sorted(
        (entry for entry in entries if not entry.name.endswith(PARTIAL_SUFFIX)),
        key=lambda entry: (entry.mtime_ns, int(entry.name) if entry.name.isdigit() else -1, entry.name),
        reverse=True,
    )
    kept, doomed = {live, spare}, []
    for entry in ordered:
        if entry.name in kept:
            continue
        if len(kept - {None}) < keep:
            kept.add(entry.name)
        else:
            doomed.append(entry.name)
    return doomed


class ReleaseTree(ABC):
    """Releases staged whole and flipped atomically, over the primitives a transport provides.

    Both moves the pipeline depends on are single renames: a staged release appears whole (written
    as ``<release>.partial``, then renamed), and ``current`` flips by renaming a new symlink over
    it, so a proxy reloading at any instant reads either the old release or the new one, never a mix.
    """

    directory: str
    keep: int

    # Primitives: paths are absolute POSIX paths on the gateway's host ------------------------

    @abstractmethod
    def _make_dirs(self, path: str) -> None: ...

    @abstractmethod
    def _write_release(self, path: str, rendered: RenderedConfig) -> None:
        """Create the directory ``path`` and write every file into it with its mode."""

    @abstractmethod
    def _write_file(self, path: str, content: bytes, mode: int) -> None:
        """Create (or truncate) the file ``path`` with exactly ``mode`` and write ``content``."""

    @abstractmethod
    def _remove_tree(self, path: str) -> None:
        """Remove ``path`` and everything under it; nothing there is not an error."""

    @abstractmethod
    def _rename(self, source: str, target: str) -> None:
        """POSIX rename: atomically replaces ``target`` (a file, a symlink or an empty directory)."""

    @abstractmethod
    def _symlink(self, target: str, path: str) -> None: ...

    @abstractmethod
    def _remove_link(self, path: str) -> None: ...

    @abstractmethod
    def _readlink(self, path: str) -> str | None:
        """The link's target; None if nothing is there; TransportError if it is not a symlink."""

    @abstractmethod
    def _is_dir(self, path: str) -> bool: ...

    @abstractmethod
    def _release_entries(self) -> list[ReleaseEntry]:
        """The real directories (not symlinks) in releases/."""

    @abstractmethod
    def _files_under(self, path: str) -> list[str]:
        """Every regular file under ``path``, relative to it, '/'-separated."""

    @abstractmethod
    def read_file(self, path: str) -> bytes: ...

    # The layout --------------------------------------------------------------------------------

    @property
    def releases(self) -> str:
        return posixpath.join(self.directory, RELEASES)

    @property
    def current(self) -> str:
        return posixpath.join(self.directory, CURRENT)

    def release_path(self, release: str) -> str:
        return posixpath.join(self.releases, checked_release(release))

    def stage(self, release: str, rendered: RenderedConfig) -> None:
        target = self.release_path(release)
        if release == self.active():
            raise TransportError(f"release {release} is live; a live release is never rewritten")
        partial = target + PARTIAL_SUFFIX
        self._make_dirs(self.releases)
        self._remove_tree(partial)  # left by an interrupted stage of the same release
        try:
            self._write_release(partial, rendered)
            self._remove_tree(target)  # a retried deploy stages its release again
            self._rename(partial, target)
        finally:
            self._remove_tree(partial)

    def active(self) -> str | None:
        target = self._readlink(self.current)
        if target is None:
            return None
        parent, _, release = target.rpartition("/")
        if parent != RELEASES or not release:
            raise TransportError(f"{self.current} points at {target!r}, not at {RELEASES}/<release>")
        return release

    def activate(self, release: str) -> str | None:
        if not self._is_dir(self.release_path(release)):
            raise TransportError(f"release {release} was never staged")
        previous = self.active()
        # A relative target keeps the deploy directory movable; the rename is what makes the flip atomic.
        link = posixpath.join(self.directory, f".{CURRENT}.{secrets.token_hex(8)}")
        self._symlink(f"{RELEASES}/{release}", link)
        try:
            self._rename(link, self.current)
        except Exception:
            self._remove_link(link)
            raise
        for name in releases_to_prune(self._release_entries(), live=release, spare=previous, keep=self.keep):
            self._remove_tree(posixpath.join(self.releases, name))
        return previous

    def discard(self, release: str) -> None:
        target = self.release_path(release)
        if release == self.active():
            raise TransportError(f"release {release} is live; activate another one before discarding it")
        self._remove_tree(target + PARTIAL_SUFFIX)
        self._remove_tree(target)

    def shared_path(self, name: str) -> str:
        if not SHARED_NAME.fullmatch(name):
            raise TransportError(f"shared file name {name!r} is not a plain file name")
        return posixpath.join(self.directory, SHARED, name)

    def shared_file_replace(self, name: str, content: bytes, *, mode: int = 0o644) -> str:
        path = self.shared_path(name)
        self._make_dirs(posixpath.dirname(path))
        partial = f"{path}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        try:
            self._write_file(partial, content, mode)
            self._rename(partial, path)
        except Exception:
            self._remove_link(partial)  # unlinks a file as well as a link
            raise
        return path

    def file_hashes(self, release: str) -> dict[str, str]:
        root = self.release_path(release)
        if not self._is_dir(root):
            raise TransportError(f"release {release} is not on the gateway's host")
        return {
            name: hashlib.sha256(self.read_file(posixpath.join(root, name))).hexdigest()
            for name in sorted(self._files_under(root))
        }
