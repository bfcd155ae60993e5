"""The interface every transport offers the deploy pipeline.

A gateway's deploy directory holds ``releases/<release>/`` (one rendered config each) and
``current``, which names the live release; flipping ``current`` is the only step that changes what
the proxy loads on its next reload, so it must be atomic.
"""

import re
from typing import Protocol

from apps.gateways.rendered import RenderedConfig

# Release names become directory names: a plain slug can never climb out of releases/.
RELEASE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class TransportError(Exception):
    """A transport refused or failed an operation; the message says which and why."""


class Transport(Protocol):
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

    def read_file(self, path: str) -> bytes:
        """The bytes of a file on the gateway's host."""

    def file_hashes(self, release: str) -> dict[str, str]:
        """sha256 of each file of a release, by its path relative to the release directory."""

    def close(self) -> None:
        """Release connections the transport holds."""


def checked_release(release: str) -> str:
    if not RELEASE_NAME.fullmatch(release):
        raise TransportError(f"release name {release!r} is not a plain slug ([a-z0-9-], at most 63)")
    return release
