"""Secrets at rest: Fernet encryption under the key-encryption key (KEK) from settings.

``POLICYHUB_KEK`` holds one or more Fernet keys, newest first: new values are encrypted with the
first, and any listed key decrypts, so the KEK can be rotated without a flag day.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class Secret:
    """A decrypted secret that does not show itself in reprs, logs, templates or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


class DecryptionError(Exception):
    """Stored ciphertext cannot be read with any configured KEK."""


@cache
def _fernet(kek: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in kek.split(",") if key.strip()])
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(
            "POLICYHUB_KEK must be comma-separated Fernet keys (32 url-safe base64-encoded bytes); "
            "generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from error


def encrypt(plaintext: str) -> str:
    return _fernet(settings.POLICYHUB_KEK).encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet(settings.POLICYHUB_KEK).decrypt(ciphertext.encode("ascii")).decode()
    except InvalidToken:
        # Never include the ciphertext: the message may travel to logs.
        raise DecryptionError("stored secret cannot be decrypted with the configured POLICYHUB_KEK") from None
