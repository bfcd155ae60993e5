"""Checking a gateway's SSH settings at the boundary: the host, its pinned host key, the client key.

Parsed with asyncssh, the library the ssh transport connects with, so whatever is stored here is
what it can use. Messages never quote key material: a pasted private key must not travel into a
form error, an API answer or a log.
"""

import ipaddress

import asyncssh
from django.core.exceptions import ValidationError

from apps.core.crypto import Secret
from apps.core.validators import normalize_hostname


def normalize_ssh_host(value: str) -> str:
    """An IP address (compressed) or an RFC 1123 host name."""
    text = str(value).strip().strip("[]")
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return normalize_hostname(text)


def normalize_host_key(value: str) -> str:
    """One OpenSSH public key line (``ssh-ed25519 AAAA… [comment]``), as ``/etc/ssh/ssh_host_*_key.pub``
    holds it; stored as ``<type> <base64>`` without the comment."""
    text = str(value).strip()
    if "\n" in text or "PRIVATE KEY" in text:
        raise ValidationError(
            "The host key must be one OpenSSH public key line (the contents of the host's "
            "/etc/ssh/ssh_host_ed25519_key.pub), not a private key or several lines.",
            code="host_key_format",
        )
    try:
        key = asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError):
        raise ValidationError(
            "The host key is not an OpenSSH public key line such as 'ssh-ed25519 AAAA…'.", code="host_key_format"
        ) from None
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def host_key_fingerprint(host_key: str) -> str:
    """``SHA256:…``, as ``ssh-keygen -lf`` and sshd's logs show it."""
    return asyncssh.import_public_key(host_key).get_fingerprint("sha256")


def client_key_load(private_key: Secret) -> asyncssh.SSHKey:
    """The client's private key (OpenSSH or PEM, without a passphrase: it is encrypted at rest)."""
    try:
        return asyncssh.import_private_key(private_key.reveal())
    except (asyncssh.KeyImportError, ValueError) as error:
        encrypted = "passphrase" in str(error).lower()
        raise ValidationError(
            "The client key is protected by a passphrase; store it without one (policyhub encrypts it at rest)."
            if encrypted
            else "The client key is not an OpenSSH or PEM private key.",
            code="client_key_format",
        ) from None


def client_key_public_line(private_key: Secret) -> str:
    """The public half, for the remote user's ``authorized_keys``."""
    return client_key_load(private_key).export_public_key("openssh").decode().strip()
