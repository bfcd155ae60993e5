"""A rendered proxy configuration: a set of named files, written side by side into one directory.

Contract for renderers: every path a config references is relative to that directory (HAProxy
resolves them against the config file with ``default-path config``), so the very bytes that were
validated are the bytes that get deployed. The one exception is named in ``external_files``: the
revocation list, which changes while a release is live (renderers/base.py).
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class RenderedFile:
    content: bytes
    mode: int = 0o644  # key material is rendered with 0o600


@dataclass(frozen=True)
class RenderedConfig:
    kind: str  # the proxy: haproxy | lighttpd
    main: str  # the file the proxy is started with
    files: Mapping[str, RenderedFile]
    lua_modules: tuple[str, ...] = ()  # modules the scripts require at run time (validate() loads them)
    external_files: tuple[str, ...] = ()  # absolute paths the config names outside its directory

    def __post_init__(self):
        for name in self.files:
            if not _SAFE_NAME.match(name) or any(part in {".", ".."} for part in name.split("/")):
                raise ValueError(f"rendered file name {name!r} must be a plain relative path")
        if self.main not in self.files:
            raise ValueError(f"the main file {self.main!r} is not among the rendered files")
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(self.files.items()))))

    def sha256(self) -> str:
        """One hash over every file's name, mode and content, in name order."""
        digest = hashlib.sha256()
        for name, file in self.files.items():
            digest.update(f"{name}\0{file.mode:o}\0{len(file.content)}\0".encode())
            digest.update(file.content)
        return digest.hexdigest()

    def write_to(self, directory: Path) -> None:
        for name, file in self.files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.content)
            path.chmod(file.mode)
