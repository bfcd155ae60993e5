"""The one place that decides what is secret in free-form data (audit state, run messages, errors)."""

import re

REDACTED = "********"
_ALREADY_MASKED = re.compile(r"^\*{8}( \(fingerprint [0-9a-f]{12}\))?$")
# Django's SafeExceptionReporterFilter list, narrowed where it caught ordinary words ("passed",
# "rapid"), plus the names policyhub's integrations use.
_SECRET_KEY_NAME = re.compile(
    r"API_?KEY|TOKEN|KEY|SECRET|PASSW|PASSPHRASE|SIGNATURE|CREDENTIAL|KEK|PRIVATE|COOKIE", re.I
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_KEY_NAME.search(name))


def _masked(value):
    if value in ("", None) or (isinstance(value, str) and _ALREADY_MASKED.match(value)):
        return value  # empty, or already masked (possibly with a fingerprint)
    return REDACTED


def redact(data):
    """Return a copy of ``data`` with every value under a secret-looking key replaced."""
    if isinstance(data, dict):
        return {key: _masked(value) if is_secret_name(str(key)) else redact(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redact(item) for item in data]
    return data
