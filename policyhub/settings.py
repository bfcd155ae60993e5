"""Settings, read from the environment only (django-environ).

With nothing set and DEBUG off, start-up stops and names the missing variables. With DEBUG on,
development defaults apply: an SQLite file under var/, eager Celery, throwaway keys.
"""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

# Development-only values: refused below whenever DEBUG is off.
_DEV_SECRET_KEY = "policyhub-development-only-secret-key-not-for-production-use-0123456789"  # noqa: S105
_DEV_KEK = "cG9saWN5aHViLWRldmVsb3BtZW50LWtlay0wMDAwMDA="


def _required(name: str, dev_default: str) -> str:
    """A secret that production must set explicitly; DEBUG falls back to a development value."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. Production (DEBUG off) needs it in the environment; "
        f"see README.md, section 'Configuration'."
    )


SECRET_KEY = _required("SECRET_KEY", _DEV_SECRET_KEY)
# Key-encryption keys for secrets at rest: comma-separated Fernet keys, newest first.
POLICYHUB_KEK = _required("POLICYHUB_KEK", _DEV_KEK)

if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or _DEV_KEK in POLICYHUB_KEK.split(",")):
    raise ImproperlyConfigured("SECRET_KEY or POLICYHUB_KEK holds the development value; set real secrets.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "django_tables2",
    "template_partials",
    "mozilla_django_oidc",
    "csp",
    "apps.core",
    "apps.audit",
    "apps.identities",
    "apps.policies",
    "apps.credentials",
    "apps.gateways",
    "apps.api",
    "apps.webhooks",
    "apps.ui",
    "apps.edge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "policyhub.urls"
WSGI_APPLICATION = "policyhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.ui.context_processors.hub_roles",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'policyhub.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DJANGO_TABLES2_TEMPLATE = "ui/table.html"  # django-tables2's, with the UI's empty-state marking
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")

# Celery: with no broker configured, tasks run eagerly in-process (demo and unit tests).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
# Tasks are acknowledged after they ran (acks_late), so a worker that dies mid-task loses nothing:
# - a pool process killed under a living worker: the worker requeues its message at once
#   (reject_on_worker_lost);
# - a whole worker killed: Redis holds the unacknowledged message and hands it out again once it has
#   been out for the visibility timeout. That must exceed the longest a message legitimately stays
#   unacknowledged: the hard time limit of a task (deploys: 660 s), or a retry's countdown (up to
#   300 s; an ETA task waits unacknowledged in a worker), else a task that is still running is
#   handed out twice. The deployment sweep (apps.gateways) takes up an interrupted deploy sooner.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600),
    # an unreachable (not refusing) broker fails a request in seconds instead of hanging it
    "socket_connect_timeout": env.int("CELERY_BROKER_CONNECT_TIMEOUT", default=5),
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TIMEZONE = "UTC"

# Security headers and cookies; production values unless DEBUG. Behind a TLS-terminating proxy,
# set SECURE_PROXY_SSL_HEADER_NAME (e.g. HTTP_X_FORWARDED_PROTO) so Django knows the request was https.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"  # the OIDC callback is a top-level GET from the IdP: Strict would drop it
CSRF_COOKIE_HTTPONLY = True  # pages carry the token themselves (forms, and hx-headers for htmx)
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
if _proxy_header := env.str("SECURE_PROXY_SSL_HEADER_NAME", default=""):
    SECURE_PROXY_SSL_HEADER = (_proxy_header, "https")

# Sign-in to the web UI (apps/ui): the company's OpenID Connect provider through mozilla-django-oidc
# (authorization code flow with PKCE, RS256 id tokens against the provider's JWKS, state and nonce).
# Space cannot be the provider: it speaks OAuth 2 only. Hub roles come from the groups claim.
AUTHENTICATION_BACKENDS = ["apps.ui.oidc.HubRoleOIDCBackend"]
# Password sign-in for local accounts: off unless asked for (the demo turns it on).
POLICYHUB_LOCAL_LOGIN = env.bool("POLICYHUB_LOCAL_LOGIN", default=False)
if POLICYHUB_LOCAL_LOGIN:
    AUTHENTICATION_BACKENDS.append("django.contrib.auth.backends.ModelBackend")
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/ui/"
LOGOUT_REDIRECT_URL = "/login/"
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
# Signing out also ends the provider's session where it has an end-session endpoint.
OIDC_OP_LOGOUT_ENDPOINT = env.str("OIDC_OP_LOGOUT_ENDPOINT", default="")
OIDC_OP_LOGOUT_URL_METHOD = "apps.ui.oidc.provider_sign_out_url"
OIDC_STORE_ID_TOKEN = True  # the end-session request's id_token_hint
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile groups")
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_CREATE_USER = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
POLICYHUB_OIDC_PROVIDER_NAME = env.str("POLICYHUB_OIDC_PROVIDER_NAME", default="your identity provider")
POLICYHUB_OIDC_GROUPS_CLAIM = env.str("POLICYHUB_OIDC_GROUPS_CLAIM", default="groups")
# Hub role -> the IdP groups whose members hold it (no group: nobody holds it through the IdP).
POLICYHUB_OIDC_ROLE_GROUPS = {
    "admin": env.list("POLICYHUB_OIDC_ADMIN_GROUPS", default=["policyhub-admins"]),
    "editor": env.list("POLICYHUB_OIDC_EDITOR_GROUPS", default=["policyhub-editors"]),
    "auditor": env.list("POLICYHUB_OIDC_AUDITOR_GROUPS", default=["policyhub-auditors"]),
}
# Deploys requested in the web UI: the admin who approves one must be another person than its requester.
POLICYHUB_DEPLOY_TWO_PERSON = env.bool("POLICYHUB_DEPLOY_TWO_PERSON", default=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# Content-Security-Policy (django-csp; Django 6 has it built in): nothing inline, nothing from elsewhere.
# htmx is served from this origin (django-htmx ships it). The API's Swagger UI page is exempt.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        # signing out redirects the sign-out form's answer to the provider's end-session endpoint
        "form-action": ["'self'", *filter(None, [_origin(OIDC_OP_LOGOUT_ENDPOINT)])],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# Edge tokens (apps/credentials): short-lived JWTs the gateways verify.
POLICYHUB_TOKEN_ISSUER = env.str("POLICYHUB_TOKEN_ISSUER", default="policyhub")
POLICYHUB_EDGE_TOKEN_TTL_SECONDS = env.int("POLICYHUB_EDGE_TOKEN_TTL_SECONDS", default=600)
POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS = env.int("POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS", default=900)
POLICYHUB_SIGNING_KEY_LIFETIME_DAYS = env.int("POLICYHUB_SIGNING_KEY_LIFETIME_DAYS", default=30)
# A scheduled deploy rotates a gateway's keys this long before one of them expires, even if nobody deploys.
POLICYHUB_KEY_RENEW_BEFORE_DAYS = env.int("POLICYHUB_KEY_RENEW_BEFORE_DAYS", default=7)
# ... and once a key that stopped signing has been trusted this long (at least its overlap).
POLICYHUB_KEY_RETIRE_AFTER_HOURS = env.int("POLICYHUB_KEY_RETIRE_AFTER_HOURS", default=24)
# Browser sign-in at the gateways (apps/edge): where browsers reach policyhub (its origin, e.g.
# https://policyhub.example.com; empty: the gateways answer browsers 401 like any client), which
# identity source's external ids are the OIDC provider's subjects (Okta's user ids are both), how
# long a browser's edge token lives, and how long before its expiry a navigation renews it.
POLICYHUB_PUBLIC_URL = env.str("POLICYHUB_PUBLIC_URL", default="").rstrip("/")
POLICYHUB_OIDC_IDENTITY_SOURCE = env.str("POLICYHUB_OIDC_IDENTITY_SOURCE", default="okta")
POLICYHUB_BROWSER_TOKEN_TTL_SECONDS = env.int("POLICYHUB_BROWSER_TOKEN_TTL_SECONDS", default=900)
POLICYHUB_BROWSER_REFRESH_SECONDS = env.int("POLICYHUB_BROWSER_REFRESH_SECONDS", default=300)
# Signed links (apps/credentials/links.py): time-limited artifact URLs for routes with signed_links.
# Where ``seed_demo`` points the demo's Okta and Space sources: the fake organizations ``make demo``
# starts (tests/fakes/demo_orgs.py).
# Webhook deliveries larger than this are refused (413) before they are read: Okta sends at most
# 50 events per delivery, a few KiB each.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
POLICYHUB_DEMO_OKTA_URL = env.str("POLICYHUB_DEMO_OKTA_URL", default="http://127.0.0.1:8701")
POLICYHUB_DEMO_SPACE_URL = env.str("POLICYHUB_DEMO_SPACE_URL", default="http://127.0.0.1:8702")
# Routes of a gateway a differential deploy proof re-proves besides those its change touches
# (apps/gateways/proof_scope.py); 0 proves only the change.
POLICYHUB_PROOF_SAMPLE_ROUTES = env.int("POLICYHUB_PROOF_SAMPLE_ROUTES", default=8)
POLICYHUB_SIGNED_LINK_TTL_SECONDS = env.int("POLICYHUB_SIGNED_LINK_TTL_SECONDS", default=3600)
POLICYHUB_SIGNED_LINK_MAX_TTL_SECONDS = env.int("POLICYHUB_SIGNED_LINK_MAX_TTL_SECONDS", default=86400)

# The API (apps/api): bearer credentials (service tokens, Backstage JWTs), then the web UI's session
# (CSRF enforced); closed unless a view names the hub roles it admits, JSON in and out, every error in
# one shape.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.api.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.api.permissions.DenyAll"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "apps.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Backstage instances whose JWTs the API accepts (as hub role ``service``), like Backstage's own
# externalAccess "jwks" entries: a JSON list of {"url", "issuer", "audience", "algorithms"?, "subject_prefix"?}
# (apps/api/backstage_jwt.py checks them at start-up).
try:
    BACKSTAGE_EXTERNAL_ACCESS = env.json("BACKSTAGE_EXTERNAL_ACCESS", default=[])
except ValueError as error:
    raise ImproperlyConfigured(f"BACKSTAGE_EXTERNAL_ACCESS is not valid JSON: {error}") from None
SPECTACULAR_SETTINGS = {
    "TITLE": "policyhub API",
    "DESCRIPTION": (
        "Authenticate with 'Authorization: Bearer <service token>' (manage.py create_service_token), with a "
        "Backstage JWT where BACKSTAGE_EXTERNAL_ACCESS trusts its issuer, or with the web UI's session."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI from the drf-spectacular-sidecar package's static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets whose field names other models share ("kind", "state", "mode"): named after what they
    # are, not after the field.
    "ENUM_NAME_OVERRIDES": {
        "GatewayKindEnum": "apps.policies.choices.GatewayKind",
        "IdentitySourceKindEnum": "apps.identities.choices.SourceKind",
        "IdentityKindEnum": "apps.identities.choices.IdentityKind",
        "SyncRunStateEnum": "apps.identities.choices.SyncState",
        "SyncRunModeEnum": "apps.identities.choices.SyncMode",
        "DeploymentStateEnum": "apps.gateways.choices.DeploymentState",
        "IssuedTokenTypeEnum": "apps.credentials.choices.ISSUED_TOKEN_TYPES",  # requested and issued
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # A line per HTTP request (thousands in a sync) or SSH command: the runs' own rows say what happened.
    "loggers": {name: {"level": env.str("LOG_LEVEL_CLIENTS", default="WARNING")} for name in ("httpx", "asyncssh")},
}
