"""The one place that decides what is secret in free-form data (audit state, run messages, errors)."""

import re

REDACTED = "********"
# Django's own SafeExceptionReporterFilter list, plus the names policyhub's integrations use.
_SECRET_KEY_NAME = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL|KEK|PRIVATE|COOKIE", re.I)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_KEY_NAME.search(name))


def redact(data):
    """Return a copy of ``data`` with every value under a secret-looking key replaced."""
    if isinstance(data, dict):
        return {
            key: (REDACTED if value not in ("", None) else value)
            if is_secret_name(str(key))
            else redact(value)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(item) for item in data]
    return data
