"""Who performs a write, and from where: passed as ``actor=`` to every service."""

import getpass
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    """The acting principal plus the request context the audit log records."""

    kind: str  # user | service | system | cli | webhook | exchange (a caller proven by a trusted issuer's token)
    name: str
    request_id: str = field(default="", compare=False)
    client_ip: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Actor":
        """The actor a row recorded as ``str(actor)`` ("<kind>:<name>"), for work done on its behalf later."""
        kind, _, name = text.partition(":")
        return cls(kind, name)

    @classmethod
    def system(cls, name: str = "policyhub") -> "Actor":
        return cls("system", name)

    @classmethod
    def cli(cls) -> "Actor":
        return cls("cli", getpass.getuser(), request_id=uuid.uuid4().hex)

    @classmethod
    def for_user(cls, user, *, request_id: str = "", client_ip: str | None = None) -> "Actor":
        return cls("user", user.get_username(), request_id=request_id, client_ip=client_ip)

    @classmethod
    def from_request(cls, request) -> "Actor":
        request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        return cls.for_user(request.user, request_id=request_id, client_ip=request.META.get("REMOTE_ADDR"))
