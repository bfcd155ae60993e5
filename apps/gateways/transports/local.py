"""Releases in a directory on this host: ``releases/<release>/``, ``current`` -> ``releases/<release>``.

Both moves the pipeline depends on are single renames: a staged release appears whole (written as
``<release>.partial``, then renamed), and ``current`` flips by renaming a new symlink over it, so a
proxy reloading at any instant reads either the old release or the new one, never a mix.
"""

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from apps.gateways.rendered import RenderedConfig
from apps.gateways.transports.base import TransportError, checked_release

RELEASES = "releases"
CURRENT = "current"
PARTIAL_SUFFIX = ".partial"
KEEP_RELEASES = 5  # in all, the live one included: enough to roll back by hand, few enough to stay small


class LocalTransport:
    kind = "local"

    def __init__(self, directory: str | Path, *, keep: int = KEEP_RELEASES):
        self.directory = Path(directory)
        self.releases = self.directory / RELEASES
        self.current = self.directory / CURRENT
        self.keep = keep

    def release_path(self, release: str) -> str:
        return str(self.releases / checked_release(release))

    def stage(self, release: str, rendered: RenderedConfig) -> None:
        target = Path(self.release_path(release))
        if release == self.active():
            raise TransportError(f"release {release} is live; a live release is never rewritten")
        partial = target.with_name(target.name + PARTIAL_SUFFIX)
        self.releases.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted stage of the same release
        try:
            partial.mkdir()
            rendered.write_to(partial)
            shutil.rmtree(target, ignore_errors=True)  # a retried deploy stages its release again
            partial.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def active(self) -> str | None:
        try:
            target = os.readlink(self.current)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise TransportError(f"{self.current} is not a symlink to a release ({error.strerror})") from None
        parent, _, release = target.rpartition("/")
        if parent != RELEASES or not release:
            raise TransportError(f"{self.current} points at {target!r}, not at {RELEASES}/<release>")
        return release

    def activate(self, release: str) -> str | None:
        if not Path(self.release_path(release)).is_dir():
            raise TransportError(f"release {release} was never staged")
        previous = self.active()
        # A relative target keeps the deploy directory movable; the rename is what makes the flip atomic.
        link = self.directory / f".{CURRENT}.{secrets.token_hex(8)}"
        link.symlink_to(f"{RELEASES}/{release}")
        try:
            os.replace(link, self.current)
        except OSError:
            link.unlink(missing_ok=True)
            raise
        self._prune(live=release, spare=previous)
        return previous

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def file_hashes(self, release: str) -> dict[str, str]:
        root = Path(self.release_path(release))
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    def close(self) -> None:
        """Nothing to release for a local directory."""

    def discard(self, release: str) -> None:
        target = Path(self.release_path(release))
        if release == self.active():
            raise TransportError(f"release {release} is live; activate another one before discarding it")
        shutil.rmtree(target.with_name(target.name + PARTIAL_SUFFIX), ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)

    def _prune(self, *, live: str, spare: str | None) -> None:
        """Keep ``keep`` releases in all: the live one, the one it replaced (the rollback target) and
        the newest others. Staging times can tie within the clock's granularity; numeric names
        (deployment ids) break the tie."""
        releases = [
            path
            for path in self.releases.iterdir()
            if path.is_dir() and not path.is_symlink() and not path.name.endswith(PARTIAL_SUFFIX)
        ]
        releases.sort(key=_age_key, reverse=True)
        kept = {live, spare}
        for path in releases:
            if path.name in kept:
                continue
            if len(kept - {None}) < self.keep:
                kept.add(path.name)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _age_key(path: Path) -> tuple[int, int, str]:
    return path.stat().st_mtime_ns, int(path.name) if path.name.isdigit() else -1, path.name
