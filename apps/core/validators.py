"""Boundary rules for every value that can end up in a rendered proxy config.

Each ``normalize_*`` function returns the canonical form or raises ``ValidationError`` whose
message names the rule that was broken; model fields call them from ``to_python`` so that
``full_clean()`` both validates and normalizes.
"""

import ipaddress
import posixpath
import re
import unicodedata
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
# RFC 3986 pchar without '%' (no encoded traversal), quotes, '#', '?' and backslash.
_PATH_CHARS = re.compile(r"^[A-Za-z0-9._~!$&()*+,;=:@/-]*$")
_ENTITY_KIND = re.compile(r"^[a-z][a-z0-9]*$")
_ENTITY_NAMESPACE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ENTITY_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
# Deploy directories are written into proxy configs as quoted strings: no quotes, escapes or spaces.
_DIRECTORY_CHARS = re.compile(r"[A-Za-z0-9._@+/-]+")


def normalize_hostname(value: str, *, allow_wildcard: bool = False) -> str:
    """Lower-cased, IDNA-encoded RFC 1123 host name; ``*.`` wildcard only where allowed."""
    host = str(value).strip().rstrip(".")
    if not host:
        raise ValidationError("Host name is empty.", code="hostname_empty")
    wildcard = host.startswith("*.")
    if wildcard:
        if not allow_wildcard:
            raise ValidationError(
                "Wildcard host names are not allowed here (RFC 1123 host name required).",
                code="hostname_wildcard",
            )
        host = host[2:]
    if "*" in host:
        raise ValidationError(
            "A wildcard is only allowed as the whole left-most label, as in '*.example.com'.",
            code="hostname_wildcard_position",
        )
    try:
        # The codec only for non-ASCII names: its own errors for ASCII input would hide which rule broke.
        ascii_host = host.lower() if host.isascii() else host.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise ValidationError(
            "Host name %(value)s is not valid IDNA.", code="hostname_idna", params={"value": value}
        ) from error
    if len(ascii_host) > 253:
        raise ValidationError("Host name is longer than 253 characters (RFC 1123).", code="hostname_length")
    for label in ascii_host.split("."):
        if not _LABEL.match(label):
            raise ValidationError(
                "Host label %(label)s breaks RFC 1123: 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen.",
                code="hostname_label",
                params={"label": repr(label)},
            )
    if wildcard and "." not in ascii_host:
        raise ValidationError(
            "A wildcard must cover a domain with at least two labels, as in '*.example.com'.",
            code="hostname_wildcard_scope",
        )
    return f"*.{ascii_host}" if wildcard else ascii_host


def normalize_served_hostname(value: str) -> str:
    """A host name a gateway serves: exact, or a ``*.`` wildcard (as on a wildcard certificate)."""
    return normalize_hostname(value, allow_wildcard=True)


def normalize_path_prefix(value: str) -> str:
    """A path prefix: starts with '/', no whitespace, quotes, '#', control characters or dot segments.

    A trailing slash is dropped (except for '/') because prefixes match on segment boundaries.
    """
    path = str(value)
    if not path.startswith("/"):
        raise ValidationError("Path prefix must start with '/'.", code="path_start")
    for char in path:
        if unicodedata.category(char) == "Cc":
            raise ValidationError("Path prefix must not contain control characters.", code="path_control")
        if char.isspace():
            raise ValidationError("Path prefix must not contain whitespace.", code="path_whitespace")
        if char in "'\"`":
            raise ValidationError("Path prefix must not contain quotes.", code="path_quote")
        if char == "#":
            raise ValidationError("Path prefix must not contain '#'.", code="path_fragment")
    segments = path.split("/")[1:]
    if any(segment in {".", ".."} for segment in segments):
        raise ValidationError("Path prefix must not contain '.' or '..' segments.", code="path_dot_segment")
    if not _PATH_CHARS.match(path):
        bad = next(c for c in path if not _PATH_CHARS.match(c))
        raise ValidationError(
            "Path prefix contains %(char)s; allowed are letters, digits and -._~!$&()*+,;=:@/.",
            code="path_character",
            params={"char": repr(bad)},
        )
    if "//" in path:
        raise ValidationError("Path prefix must not contain empty segments ('//').", code="path_empty_segment")
    return path.rstrip("/") or "/"


def normalize_upstream_url(value: str) -> str:
    """An http(s) upstream with host and explicit port, and nothing a proxy server line cannot hold."""
    url = str(value).strip()
    try:
        parts = urlsplit(url)
    except ValueError as error:  # unbalanced IPv6 brackets, e.g. "http://]]:80"
        raise ValidationError("Upstream URL is not a valid URL.", code="upstream_url") from error
    if parts.scheme not in {"http", "https"}:
        raise ValidationError("Upstream URL must use http or https.", code="upstream_scheme")
    if not parts.hostname:
        raise ValidationError("Upstream URL must name a host.", code="upstream_host")
    if parts.username or parts.password:
        raise ValidationError("Upstream URL must not carry credentials.", code="upstream_userinfo")
    try:
        port = parts.port
    except ValueError as error:
        raise ValidationError("Upstream URL has an invalid port.", code="upstream_port") from error
    if port is None:
        raise ValidationError("Upstream URL must name its port, as in http://10.0.0.5:8080.", code="upstream_port")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValidationError(
            "Upstream URL must not have a path, query or fragment: routes keep the request path.",
            code="upstream_path",
        )
    try:
        host = ipaddress.ip_address(parts.hostname).compressed
        host = f"[{host}]" if ":" in host else host
    except ValueError:
        host = normalize_hostname(parts.hostname)
    return f"{parts.scheme}://{host}:{port}"


def normalize_role_slug(value: str) -> str:
    """Role slugs: lower-case letters, digits and hyphens, starting with a letter or digit."""
    slug = str(value).strip()
    if not _SLUG.match(slug):
        raise ValidationError(
            "Slug %(value)s must be 1-63 characters of [a-z0-9-], starting with a letter or digit.",
            code="slug",
            params={"value": repr(slug)},
        )
    return slug


def normalize_cidr(value: str) -> str:
    """An IPv4 or IPv6 network in CIDR form; host bits must be zero."""
    text = str(value).strip()
    try:
        return ipaddress.ip_network(text, strict=True).compressed
    except ValueError as error:
        try:
            suggestion = ipaddress.ip_network(text, strict=False).compressed
        except ValueError:
            raise ValidationError(
                "%(value)s is not an IPv4 or IPv6 network in CIDR form.", code="cidr", params={"value": text}
            ) from error
        raise ValidationError(
            "%(value)s has host bits set; did you mean %(suggestion)s?",
            code="cidr_host_bits",
            params={"value": text, "suggestion": suggestion},
        ) from error


def normalize_method(value: str) -> str:
    """An HTTP method from the fixed set policyhub renders."""
    method = str(value).strip().upper()
    if method not in HTTP_METHODS:
        raise ValidationError(
            "Method %(value)s is not one of %(allowed)s.",
            code="method",
            params={"value": repr(value), "allowed": ", ".join(HTTP_METHODS)},
        )
    return method


def normalize_listen_address(value: str) -> str:
    """A listen address 'ip:port' ('[v6]:port' for IPv6, '*' for all IPv4 addresses)."""
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValidationError("Listen address must be 'ip:port' with a port from 1 to 65535.", code="listen_port")
    if host != "*":
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            address = ipaddress.ip_address(bare)
        except ValueError as error:
            raise ValidationError("Listen address host must be an IP address or '*'.", code="listen_host") from error
        host = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return f"{host}:{int(port_text)}"


DEFAULT_ENTITY_KIND = "component"  # an application's entity, when the ref leaves the kind out
DEFAULT_ENTITY_NAMESPACE = "default"  # Backstage's own default


def normalize_entity_ref(value: str) -> str:
    """A Backstage entity reference ``[kind:][namespace/]name`` in its one full form
    ``kind:namespace/name``, lower-cased as Backstage's ``stringifyEntityRef`` does, so that every
    way of writing one entity is stored, compared and looked up alike."""
    ref = str(value).strip().lower()
    kind, _, rest = ref.rpartition(":") if ":" in ref else ("", "", ref)
    namespace, _, name = rest.rpartition("/") if "/" in rest else ("", "", rest)
    problems = []
    if ":" in ref and not _ENTITY_KIND.match(kind):
        problems.append("kind must be letters and digits, starting with a letter")
    if "/" in rest and not _ENTITY_NAMESPACE.match(namespace):
        problems.append("namespace must be lower-case letters, digits and single hyphens")
    if not _ENTITY_NAME.match(name):
        problems.append("name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric")
    if problems:
        raise ValidationError(
            "Backstage entity ref %(value)s must look like [kind:][namespace/]name: %(problems)s.",
            code="entity_ref",
            params={"value": repr(value), "problems": "; ".join(problems)},
        )
    return f"{kind or DEFAULT_ENTITY_KIND}:{namespace or DEFAULT_ENTITY_NAMESPACE}/{name}"


def normalize_deploy_directory(value: str) -> str:
    """An absolute directory path, normalized (no ``.``/``..`` segments, no trailing slash), of
    characters that need no quoting in any proxy config; never the root directory."""
    text = str(value).strip()
    if not text.startswith("/"):
        raise ValidationError(
            "Deploy directory %(value)s must be an absolute path.",
            code="directory_relative",
            params={"value": repr(value)},
        )
    if not _DIRECTORY_CHARS.fullmatch(text):
        raise ValidationError(
            "Deploy directory %(value)s may hold only letters, digits and . _ @ + / -.",
            code="directory_chars",
            params={"value": repr(value)},
        )
    # normpath keeps a leading "//" (POSIX leaves its meaning to the system): fold it too.
    normalized = "/" + posixpath.normpath(text).lstrip("/")
    if normalized == "/":
        raise ValidationError("Deploy directory cannot be the root directory.", code="directory_root")
    return normalized


def normalize_list(values, normalize, *, label: str) -> list[str]:
    """Normalize every item of a list, de-duplicated and sorted; errors name the offending item."""
    if not isinstance(values, list | tuple):
        raise ValidationError("Expected a list of %(label)s.", code="list", params={"label": label})
    normalized = set()
    for index, item in enumerate(values):
        try:
            normalized.add(normalize(item))
        except ValidationError as error:
            raise ValidationError(
                "Item %(index)s: %(message)s",
                code=error.code,
                params={"index": index + 1, "message": " ".join(error.messages)},
            ) from error
    return sorted(normalized)
