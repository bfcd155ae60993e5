"""Settings come from the environment only; production refuses to start without real secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "prod-" + "k3y" * 20,
    "POLICYHUB_KEK": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "policyhub.example.com",
}


PROJECT_VARIABLES = {*PRODUCTION, "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_BROKER_URL"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # The suite's own settings (tests/settings.py) put test values in os.environ; start from none of them.
    clean = {k: v for k, v in os.environ.items() if k not in PROJECT_VARIABLES and not k.startswith("SECURE_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "policyhub.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_the_deploy_checks():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "POLICYHUB_KEK"])
def test_production_without_a_secret_stops_with_a_clear_message(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} is not set. Production (DEBUG off) needs it in the environment" in result.stderr


def test_production_refuses_the_development_secrets():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": "", "DEBUG": "1"})
    assert result.returncode == 0, result.stderr  # DEBUG may use development defaults
    from policyhub import settings as project_settings

    result = manage("check", **{**PRODUCTION, "SECRET_KEY": project_settings._DEV_SECRET_KEY})
    assert "holds the development value" in result.stderr


def test_a_malformed_kek_is_explained(tmp_path):
    result = manage(
        "shell", "-c", "from apps.core.crypto import encrypt; encrypt('x')",
        **{**PRODUCTION, "POLICYHUB_KEK": "not-a-key", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"},
    )  # fmt: skip
    assert "POLICYHUB_KEK must be comma-separated Fernet keys" in result.stderr


def test_database_url_selects_the_database(tmp_path):
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    result = manage("shell", "--no-imports", "-c", code, **PRODUCTION, DATABASE_URL="postgres://u:p@127.0.0.1:1/db")
    assert result.stdout.strip() == "django.db.backends.postgresql"
    eager = "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER)"
    default = manage("shell", "--no-imports", "-c", eager, DEBUG="1")
    assert default.stdout.strip() == "django.db.backends.sqlite3 True"
