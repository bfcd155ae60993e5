"""Test settings: production settings with test secrets, PostgreSQL filled in by the conftest fixture."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 50)
os.environ.setdefault("POLICYHUB_KEK", "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMDAwMDAwMDA=")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.pop("CELERY_BROKER_URL", None)

from policyhub.settings import *  # noqa: F403

# HOST and PORT are filled in by the session fixture once the throwaway server is up.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "policyhub",
        "USER": "policyhub",
        "HOST": "127.0.0.1",
        "PORT": "",
        "CONN_MAX_AGE": 0,
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
