"""Settings of the registry, read only from environment variables.

Development and production differ only by the environment: ``deploy/env.example`` lists and
explains every variable. With no ``DATABASE_URL`` the registry runs on an embedded SQLite file,
and with no ``CELERY_BROKER_URL`` its tasks run inline, so that ``make run`` works on a fresh
machine; production sets both (PostgreSQL and Redis). ``make run`` also writes a ``.env`` (DEBUG
on, generated secrets: registry/dotenv.py), read here first so that ``manage.py`` and Celery start
as the server does; the real environment wins over it, and ``DOTENV_PATH`` names another file.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from registry.dotenv import dotenv_load
from registry.env import env_bool, env_int, env_list, env_postgres, env_str
from registry.receipts import decode_key as decode_receipt_key

# Lets admin and other generic classes be subscripted at run time, as the type stubs declare.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# Empty: no file (the test suite's choice, so that a developer's .env never reaches it).
_DOTENV_PATH = env_str("DOTENV_PATH", str(BASE_DIR / ".env"))
if _DOTENV_PATH:
    dotenv_load(Path(_DOTENV_PATH))

DEBUG = env_bool("DEBUG", False)

_DEV_SECRET = "insecure-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET if DEBUG else None)
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set to a real secret when DEBUG is off.")

# The pepper of partner key digests (HMAC-SHA256). Changing it invalidates every partner key.
KEY_PEPPER = env_str("KEY_PEPPER", "insecure-development-pepper" if DEBUG else None)

# The address `make run` serves on (HOST and PORT, as for the Makefile): the default of the site's
# own address, which receipts name. A wildcard address is reached through loopback.
_HOST = env_str("HOST", "127.0.0.1").strip() or "127.0.0.1"
_PORT = env_int("PORT", 8000, minimum=1, maximum=65_535)
_HOST = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(_HOST, _HOST)  # noqa: S104
_HOST_IN_URL = f"[{_HOST}]" if ":" in _HOST and not _HOST.startswith("[") else _HOST
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    ",".join(dict.fromkeys(["127.0.0.1", "localhost", _HOST_IN_URL])) if DEBUG else "",
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_ROOT = env_str("SITE_ROOT", f"http://{_HOST_IN_URL}:{_PORT}")

INSTALLED_APPS = [
    # The admin site of registry/admin/site.py: two-factor required, two staff roles.
    "registry.apps.RempartAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before the libraries, so that their templates can be overridden here.
    "registry.apps.RegistryConfig",
    "api.apps.ApiConfig",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "registry.middleware.PermissionsPolicyMiddleware",
    # Outside the middleware that can refuse a request (an unknown host, say), so that every
    # answer, refusals included, carries X-Frame-Options.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "registry.middleware.BodySizeLimitMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A view that cannot reach PostgreSQL answers 503 with Retry-After, not a 500.
    "registry.web.errors.DatabaseUnavailableMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last, as django-axes asks: answers a locked-out login with its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "registry.urls"
WSGI_APPLICATION = "registry.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / ".data")))
_database = env_postgres("DATABASE_URL")
if _database is None:
    _DATA_DIR.mkdir(parents=True, exist_ok=True)
    _database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_DATA_DIR / "rempart.sqlite3"),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
    }
DATABASES: dict[str, dict[str, Any]] = {"default": _database}
# A streaming replica of that database (hot standby), for the reads that tolerate its lag: the
# match index's load and follow, the sync feeds, the statistics (registry/dbrouting.py,
# docs/scaling.md). Empty: every query goes to DATABASE_URL.
_replica = env_postgres("DATABASE_REPLICA_URL", read_only=True)
if _replica is not None:
    if _database["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs DATABASE_URL set to PostgreSQL.")
    # A test run reads the test database through it rather than creating one on the replica.
    DATABASES["replica"] = {**_replica, "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["registry.dbrouting.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits need one shared by every process) ------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
# With no broker configured, tasks run inline in the calling process (development only).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died without acknowledging it (killed, out of memory, the machine lost) is
# handed to another worker after this many seconds: the Redis broker's visibility timeout. It
# must exceed the longest task (a webhook attempt takes at most WEBHOOK_TIMEOUT_SECONDS), or a
# task still running would be started a second time; every task is safe to run twice.
BROKER_VISIBILITY_TIMEOUT_SECONDS = env_int("BROKER_VISIBILITY_TIMEOUT_SECONDS", 300, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS,
    # Look for such tasks every tenth of the timeout, at least every 10 s, scanning each time.
    "unacked_restore_interval": max(1, min(10, BROKER_VISIBILITY_TIMEOUT_SECONDS // 10)),
    "unacked_restore_throttle": 1,
}

# --- Webhooks to partners (registry/webhooks/, registry/tasks.py) ------------------------------
# How often Celery beat runs the sweep: derive deliveries from new changes (catching any whose
# enqueue failed, e.g. while the broker was down) and send those whose retry is due.
WEBHOOK_SWEEP_SECONDS = env_int("WEBHOOK_SWEEP_SECONDS", 15, minimum=1)
# A delivery's retries: after the n-th failed attempt, wait BASE * 2**(n-1) seconds, at most CAP;
# give up (status "failed") after MAX_ATTEMPTS attempts (defaults: about 18 hours of retries).
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=1)
WEBHOOK_RETRY_CAP_SECONDS = env_int("WEBHOOK_RETRY_CAP_SECONDS", 3600, minimum=1)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 24, minimum=1)
# Seconds to connect to a partner's endpoint and to wait for its answer.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
# Development and tests only: allow http targets and private, loopback or link-local addresses.
# Off, every target must be https and resolve only to public addresses (checked at send time).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "webhook-deliveries-sweep": {
        "task": "registry.tasks.webhook_deliveries_sweep_task",
        "schedule": float(WEBHOOK_SWEEP_SECONDS),
        # A sweep that waited longer than its period is superseded by the next one.
        "options": {"expires": float(WEBHOOK_SWEEP_SECONDS)},
    },
}

# --- Retention (registry/services/retention.py, docs/privacy.md)  ---------------------------------
# How often Celery beat runs the retention jobs. Each deletes only what has expired, in batches.
RETENTION_SWEEP_SECONDS = env_int("RETENTION_SWEEP_SECONDS", 3600, minimum=60)
# A withdrawn image's hash values are deleted once its withdrawal is older than
# TOMBSTONE_RETENTION_DAYS (below), when no sync feed cursor can still need them.
# Webhook deliveries: delivered ones are kept this many days; failed ones (given up) this many
# days after their last attempt, for the operator to see which partner missed what.
WEBHOOK_DELIVERED_RETENTION_DAYS = env_int("WEBHOOK_DELIVERED_RETENTION_DAYS", 30, minimum=1)
WEBHOOK_FAILED_RETENTION_DAYS = env_int("WEBHOOK_FAILED_RETENTION_DAYS", 90, minimum=1)
# Match calls (counts per call, never a hash): statistics and probing review.
MATCH_CALL_RETENTION_DAYS = env_int("MATCH_CALL_RETENTION_DAYS", 365, minimum=1)
# The registry's own records (hash values of withdrawn images, expired staff sessions).
CELERY_BEAT_SCHEDULE["retention-registry"] = {
    "task": "registry.tasks.case_records_purge_task",
    "schedule": float(RETENTION_SWEEP_SECONDS),
    "options": {"expires": float(RETENTION_SWEEP_SECONDS)},
}
# The partners' records (idempotency records, webhook deliveries, match calls).
CELERY_BEAT_SCHEDULE["retention-partners"] = {
    "task": "registry.tasks.partner_records_purge_task",
    "schedule": float(RETENTION_SWEEP_SECONDS),
    "options": {"expires": float(RETENTION_SWEEP_SECONDS)},
}

# --- Keeping the list honest (services/review.py and allowlist.py, matching/probing.py) ---
# An image is disputed (review queue; it keeps matching) when this many distinct partners
# report not_blocked for it...
REVIEW_DISPUTE_PARTNERS = env_int("REVIEW_DISPUTE_PARTNERS", 2, minimum=1)
# ...or when its matches over 24 hours exceed both REVIEW_SPIKE_FLOOR and REVIEW_SPIKE_MULTIPLE
# times the median 24-hour count of the images that matched at all; checked by Celery beat every
# REVIEW_SPIKE_CHECK_SECONDS.
REVIEW_SPIKE_FLOOR = env_int("REVIEW_SPIKE_FLOOR", 200, minimum=1)
REVIEW_SPIKE_MULTIPLE = env_int("REVIEW_SPIKE_MULTIPLE", 20, minimum=1)
REVIEW_SPIKE_CHECK_SECONDS = env_int("REVIEW_SPIKE_CHECK_SECONDS", 600, minimum=10)
CELERY_BEAT_SCHEDULE["image-match-spikes"] = {
    "task": "registry.tasks.images_dispute_on_match_spikes_task",
    "schedule": float(REVIEW_SPIKE_CHECK_SECONDS),
    "options": {"expires": float(REVIEW_SPIKE_CHECK_SECONDS)},
}
# Probing: each web process keeps, per key, its last PROBING_RECENT_QUERIES query hashes (in
# memory only; every query of a call is compared). A key is alerted and slowed down when
# PROBING_CLOSE_PAIRS pairs among them lie 1 to PROBING_CLOSE_BITS bits apart, when
# PROBING_IMAGE_MATCHES distinct queries matched one registered image within
# PROBING_WINDOW_SECONDS, or when, over that window and at least PROBING_MIN_QUERIES queries,
# PROBING_HIT_RATE_PERCENT % or more of its queries matched. Until a reviewer clears the alert,
# its match budget is divided by PROBING_SLOWDOWN_FACTOR.
PROBING_RECENT_QUERIES = env_int("PROBING_RECENT_QUERIES", 256, minimum=16, maximum=4096)
PROBING_IMAGE_MATCHES = env_int("PROBING_IMAGE_MATCHES", 16, minimum=2, maximum=10_000)
PROBING_CLOSE_BITS = env_int("PROBING_CLOSE_BITS", 8, minimum=1, maximum=31)
PROBING_CLOSE_PAIRS = env_int("PROBING_CLOSE_PAIRS", 64, minimum=1)
PROBING_WINDOW_SECONDS = env_int("PROBING_WINDOW_SECONDS", 3600, minimum=60)
PROBING_MIN_QUERIES = env_int("PROBING_MIN_QUERIES", 500, minimum=1)
PROBING_HIT_RATE_PERCENT = env_int("PROBING_HIT_RATE_PERCENT", 20, minimum=1, maximum=100)
PROBING_SLOWDOWN_FACTOR = env_int("PROBING_SLOWDOWN_FACTOR", 10, minimum=1)

# --- Passwords and case secrets -------------------------------------------------------------
# Case secrets are stored only as Argon2 digests, like staff passwords.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
LOCALE_PATHS = [BASE_DIR / "registry" / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(_DATA_DIR / "static")))

# --- Security -------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Preloading is a commitment for every subdomain for months: an operator's choice.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
# same-origin, not no-referrer: browsers send "Origin: null" with no-referrer, which fails
# Django's CSRF check on every form; nothing is sent to another origin either way.
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Request bodies carry hashes only: a large body is a mistake or an attack.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1_048_576, minimum=65_536)
# A strict Content-Security-Policy on every page: nothing from another origin, no inline script.
# Photos and videos are read in the browser as blobs and hashed in Web Workers served from here.
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        # A video is decoded by the page's own <video> element from a blob: URL of the file.
        "media-src": ["'self'", "blob:"],
        "worker-src": ["'self'"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
ADMIN_PATH = env_str("ADMIN_PATH", "admin/").strip("/") + "/"

# --- Staff accounts: two-factor and lockout (registry/admin/site.py) -------------------------
# Every staff account confirms a TOTP device (django-otp) before any admin page; a wrong
# password ADMIN_LOGIN_FAILURE_LIMIT times in a row locks that username out (django-axes) for
# ADMIN_LOCKOUT_MINUTES. Lockout is by username only, and axes is given no client address:
# its tables hold no IP address (the registry stores none anywhere).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOCKOUT_MINUTES", 60, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_CLIENT_IP_CALLABLE = "registry.admin.site.client_address_withheld"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["password", "csrfmiddlewaretoken"]
AXES_LOCKOUT_TEMPLATE = "admin/rempart/locked_out.html"
# axes.W006 asks to lock out by address too: the registry keeps no address, by design.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Rempart")
# The TOTP devices' admin never shows a device's key.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Registry limits ------------------------------------------------------------------------
REGISTRY_MAX_IMAGES_PER_REQUEST = env_int("REGISTRY_MAX_IMAGES_PER_REQUEST", 50, minimum=1)
REGISTRY_MAX_IMAGES_PER_CASE = env_int("REGISTRY_MAX_IMAGES_PER_CASE", 500, minimum=1)
# A case's videos together hold at most this many frames (one a second: an hour of video).
REGISTRY_MAX_VIDEO_FRAMES_PER_CASE = env_int("REGISTRY_MAX_VIDEO_FRAMES_PER_CASE", 3600, minimum=1)

# --- The people's pages (registry/web/, registry/receipts.py) --------------------------------
# Ed25519 key that signs people's receipts: base64 of 32 random bytes. Receipts attached to
# complaints are checked against it for years: keep it; after a rotation, list the old public
# key in RECEIPT_PREVIOUS_PUBLIC_KEYS so that older receipts still verify.
# The development key is base64 of "insecure-development-receipt-key".
_DEV_RECEIPT_KEY = "aW5zZWN1cmUtZGV2ZWxvcG1lbnQtcmVjZWlwdC1rZXk="
RECEIPT_SIGNING_KEY = env_str("RECEIPT_SIGNING_KEY", _DEV_RECEIPT_KEY if DEBUG else None)
if not DEBUG and RECEIPT_SIGNING_KEY == _DEV_RECEIPT_KEY:
    raise ImproperlyConfigured("RECEIPT_SIGNING_KEY must be set to a real key when DEBUG is off.")
RECEIPT_PREVIOUS_PUBLIC_KEYS = env_list("RECEIPT_PREVIOUS_PUBLIC_KEYS", "")
for _name, _keys in [
    ("RECEIPT_SIGNING_KEY", [RECEIPT_SIGNING_KEY]),
    ("RECEIPT_PREVIOUS_PUBLIC_KEYS", RECEIPT_PREVIOUS_PUBLIC_KEYS),
]:
    for _key in _keys:
        try:
            decode_receipt_key(_key)
        except ValueError as _error:
            raise ImproperlyConfigured(f"{_name}: a key is base64 of 32 bytes; {_error}.") from None
# The help resources shown on the home page (helplines, reporting platforms, partners): a JSON
# file an operator edits; see registry/data/help_resources.json for its shape.
HELP_RESOURCES_FILE = Path(
    env_str("HELP_RESOURCES_FILE", "") or BASE_DIR / "registry" / "data" / "help_resources.json"
)
# Who runs this registry, as the legal notice (/legal) and the privacy notice (/privacy) say.
# Empty, the pages show that the operator must fill them in, and `manage.py check --deploy`
# warns (registry.W002) until every one but the optional OPERATOR_DPO_EMAIL is set.
OPERATOR_NAME = env_str("OPERATOR_NAME", "").strip()
OPERATOR_ADDRESS = env_str("OPERATOR_ADDRESS", "").strip()
OPERATOR_CONTACT_EMAIL = env_str("OPERATOR_CONTACT_EMAIL", "").strip()
OPERATOR_DPO_EMAIL = env_str("OPERATOR_DPO_EMAIL", "").strip()
OPERATOR_PUBLICATION_DIRECTOR = env_str("OPERATOR_PUBLICATION_DIRECTOR", "").strip()
OPERATOR_HOST = env_str("OPERATOR_HOST", "").strip()
# The data protection authority a person may complain to, and its complaints page.
# Empty: the CNIL, France's.
OPERATOR_SUPERVISORY_AUTHORITY = env_str("OPERATOR_SUPERVISORY_AUTHORITY", "").strip() or (
    "CNIL (Commission nationale de l'informatique et des libertés), 3 place de Fontenoy, "
    "TSA 80715, 75334 Paris Cedex 07, France"
)
OPERATOR_SUPERVISORY_AUTHORITY_URL = (
    env_str("OPERATOR_SUPERVISORY_AUTHORITY_URL", "").strip() or "https://www.cnil.fr/fr/plaintes"
)
# The neutral page the quick-exit button (and Escape pressed three times) leaves for.
QUICK_EXIT_URL = env_str("QUICK_EXIT_URL", "").strip() or "https://www.meteofrance.com/"
for _name, _url in [
    ("OPERATOR_SUPERVISORY_AUTHORITY_URL", OPERATOR_SUPERVISORY_AUTHORITY_URL),
    ("QUICK_EXIT_URL", QUICK_EXIT_URL),
]:
    if not _url.startswith(("https://", "http://")):
        raise ImproperlyConfigured(f"{_name} must be an http(s):// address, not {_url!r}.")
# A refused CSRF check answers JSON to the pages' scripts and a plain, translated page to forms.
CSRF_FAILURE_VIEW = "registry.web.views.csrf_failure"

# --- Partner API ----------------------------------------------------------------------------
# Hashes one partner may match per minute, unless set on the partner (each hash of a batch counts).
MATCH_HASHES_PER_MINUTE = env_int("MATCH_HASHES_PER_MINUTE", 120_000, minimum=1)
# Requests one partner may make a minute to the sync feeds (/api/v1/hashes/changes and
# /v1/FetchHashes together): at 1,000 entries a page, 600 pages a minute resyncs 600,000 images.
SYNC_REQUESTS_PER_MINUTE = env_int("SYNC_REQUESTS_PER_MINUTE", 600, minimum=1)
# Requests per client (known by a daily-rotating digest of its address) on the public endpoints.
PUBLIC_CASE_RATE = env_str("PUBLIC_CASE_RATE", "30/m")
# Failed case secret checks allowed an hour per client, and per case reference before the clients
# that failed on it are refused (a client that never failed on it is still checked).
CASE_CHECK_FAILURES_PER_CLIENT = env_int("CASE_CHECK_FAILURES_PER_CLIENT", 20, minimum=1)
CASE_CHECK_FAILURES_PER_REFERENCE = env_int("CASE_CHECK_FAILURES_PER_REFERENCE", 10, minimum=1)
# How many reverse proxies (nginx, a load balancer) sit in front and append to X-Forwarded-For.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0, maximum=5)
# Days the change sequence keeps withdrawals (tombstones) for the sync feeds: a cursor older than
# this gets 410 and its partner resyncs from the start. At least 45, as partners are promised.
TOMBSTONE_RETENTION_DAYS = env_int("TOMBSTONE_RETENTION_DAYS", 45, minimum=45)
# The withdrawal journal (registry/journal.py): an append-only file, kept apart from the
# database (another disk or machine), that `manage.py withdrawals_replay` re-applies after a
# restore so that no withdrawal is undone. Empty: no journal (development only).
WITHDRAWAL_JOURNAL = env_str("WITHDRAWAL_JOURNAL", "")
# The operators' token for /ready's figures (index size, changes applied and behind), sent in
# the X-Ready-Token header. Without it /ready says only ready or not. Empty: figures to nobody.
READY_TOKEN = env_str("READY_TOKEN", "")

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.PartnerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    # Two fields are named "kind": a change's (added, withdrawn) and a match's or a hash's.
    "ENUM_NAME_OVERRIDES": {
        "MatchKindEnum": "registry.derivatives.MATCH_KINDS",
        # What a match (of a photo or a video) says of the registered item it names.
        "MatchStatusEnum": [("active", "active"), ("disputed", "disputed")],
    },
    "TITLE": "Rempart partner API",
    "DESCRIPTION": (
        "Match images against the consent registry before publishing them or running an AI "
        "edit on them; open, check and withdraw cases."
    ),
    "VERSION": "1",
    # The groups of operations, in the order the docs show them (api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.tags_declare",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads its scripts from this server, never from a third-party origin.
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
# Plain match calls are answered outside Django's middleware and DRF (api/lean.py), with the
# same answers; 0 sends every call through Django (to compare, or to rule the route out).
MATCH_LEAN_ROUTE = env_bool("MATCH_LEAN_ROUTE", True)
RATELIMIT_USE_CACHE = "default"
# A cache that answers but fails to count lets requests through rather than refusing people.
RATELIMIT_FAIL_OPEN = True

# --- Match index ----------------------------------------------------------------------------
# How often each process applies the change sequence to its index (a new hash is matchable in
# every process within this interval plus the time to apply it).
INDEX_POLL_MS = env_int("INDEX_POLL_MS", 250, minimum=10, maximum=10_000)
# Load the index in the background when the web process starts (off for management commands).
INDEX_AUTOSTART = env_bool("INDEX_AUTOSTART", True)
# A checkpoint of the built index (manage.py index_checkpoint writes it): each process maps it
# at start and applies the changes since, instead of loading every hash from the database.
# Empty: no checkpoint, every start loads from the database.
INDEX_CHECKPOINT_PATH = env_str("INDEX_CHECKPOINT_PATH", "")

# --- Logging --------------------------------------------------------------------------------
# Every handler passes through the redaction filter: no hash, secret or IP address reaches a log.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be a logging level name, not {LOG_LEVEL!r}.")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "registry.redaction.RedactFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # SQL parameters carry hashes: never log queries, whatever LOG_LEVEL says.
        "django.db.backends": {"level": "WARNING", "handlers": ["console"], "propagate": False},
    },
}
