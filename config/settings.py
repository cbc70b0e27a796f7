"""Concord's one settings module, driven by the environment.

Every variable read here is listed, with a comment, in `.env.example` and in the README's
configuration table. Development gets safe embedded defaults (a SQLite file, a broker on the
filesystem); `DJANGO_ENV=production` refuses to start on values that are only safe on a laptop.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}.")
IS_PRODUCTION = DJANGO_ENV == "production"

# Where the embedded defaults keep their files (SQLite database, filesystem broker, uploads).
VAR_DIR = Path(env.str("CONCORD_VAR_DIR", default=str(BASE_DIR / "var")))


def _required_in_production(name: str, hint: str) -> None:
    if IS_PRODUCTION and not env.str(name, default=""):
        raise ImproperlyConfigured(f"DJANGO_ENV=production requires {name}: {hint}")


_required_in_production(
    "SECRET_KEY",
    "set it to a long random value, e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
)
_required_in_production(
    "ALLOWED_HOSTS",
    "set it to the comma-separated host names this site answers to, e.g. concord.example.com.",
)
# The embedded SQLite file and filesystem broker serve one laptop; production names its servers.
_required_in_production("DATABASE_URL", "set it to the PostgreSQL server, e.g. postgres://concord@db:5432/concord.")
_required_in_production("CELERY_BROKER_URL", "set it to the Redis or RabbitMQ server, e.g. redis://redis:6379/0.")

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG=true is refused when DJANGO_ENV=production: it leaks data in error pages.")

SECRET_KEY = env.str(
    "SECRET_KEY",
    default="django-insecure-development-only-key-never-used-in-production-0c9f1e",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])


def _site_url() -> str:
    """The site's address as people outside reach it (scheme, host, any path prefix), for links sent
    by e-mail, which cannot be relative. Production defaults to https:// and the first of
    ALLOWED_HOSTS when that is one plain host name, and takes nothing but HTTPS: a statement link
    carries its own permission and must not travel in clear."""
    default = "http://127.0.0.1:8000"
    if IS_PRODUCTION:
        host = ALLOWED_HOSTS[0] if ALLOWED_HOSTS else ""
        default = f"https://{host}" if host and not host.startswith((".", "*")) else ""
    url = env.str("SITE_URL", default=default).rstrip("/")
    if not url:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production requires SITE_URL: set it to the address customers open, e.g. "
            "https://concord.example.com (links in e-mails are built on it)."
        )
    if not url.startswith("https://" if IS_PRODUCTION else ("http://", "https://")):
        raise ImproperlyConfigured(
            f"SITE_URL must be an absolute {'https://' if IS_PRODUCTION else 'http(s)://'} address, not {url!r}."
        )
    return url


SITE_URL = _site_url()

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "guardian",
    "simple_history",
    "django_celery_beat",
    "django_htmx",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    # Swagger UI's files as a Python package, served by whitenoise: /api/docs/ works offline.
    "drf_spectacular_sidecar",
    # Bootstrap's compiled CSS and JS, shipped as a Python package and served by whitenoise.
    "bootstrap",
    "crm",
    "billing",
    "ledger",
    "integrations",
    "jobs",
    # The REST API's plumbing (tokens, idempotency, problem details, access); resources live in
    # each app's api.py.
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Axes must come last so that it sees the outcome of every login attempt.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "crm.context_processors.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'concord.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one SQLite file in development: WAL lets readers
    # run beside the single writer, and IMMEDIATE transactions wait for the write lock up front
    # instead of failing half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# An optional streaming replica of the primary for long report reads (aging, exports), which
# config.databases.reports_database() names; writes and everything else stay on "default".
# See docs/scaling.md for the replica lag that reads from it may see.
if env.str("DATABASE_REPLICA_URL", default=""):
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL needs DATABASE_URL to be the PostgreSQL primary it replicates."
        )
    DATABASES["reports"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["reports"]["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    DATABASES["reports"]["CONN_HEALTH_CHECKS"] = True
    # Tests never create a database on the replica (a standby cannot): the alias reads the
    # test database through its own connection.
    DATABASES["reports"]["TEST"] = {"MIRROR": "default"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication and access ----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # Axes first: a locked-out username/IP pair is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Per-customer permissions (crm.access decides who sees which customer).
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Guardian would otherwise create an "AnonymousUser" row on every migrate; anonymous visitors
# see nothing in Concord, so there is nothing to grant them.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
# Lock the username from the address it was attacked from, so one attacker cannot lock a
# colleague out from everywhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0) or None
# A lock-out met through the API's token endpoint answers as a problem document, not a page.
AXES_LOCKOUT_CALLABLE = "api.problems.axes_lockout_response"

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Front-end packages from npm (package.json, package-lock.json; `make assets` runs `npm ci`),
# served from our own static files like everything else.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/chart.js", NODE_MODULES / "chart.js" / "dist")]
# Files the application writes: export results, generated PDFs. Served only through views that
# check who asks (jobs.views.job_download), never as a public URL.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- E-mail -----------------------------------------------------------------------------------
# In development, each e-mail (dunning letters with their PDFs, notices to reps) is written as a
# file under var/mail/ to be opened and read; production sends through SMTP.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.filebased.EmailBackend"
    if not IS_PRODUCTION
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Concord <concord@localhost>")
# The sender of dunning letters and statements, as customers see it (replies go to AR).
CONCORD_COLLECTIONS_FROM_EMAIL = env.str("CONCORD_COLLECTIONS_FROM_EMAIL", default=DEFAULT_FROM_EMAIL)
# The company as it appears on invoices, statements and letters.
CONCORD_COMPANY_NAME = env.str("CONCORD_COMPANY_NAME", default="Concord Demo Ltd")
CONCORD_COMPANY_ADDRESS = env.str("CONCORD_COMPANY_ADDRESS", default="1 Harbour Street, Springfield")
# How to pay, printed on invoices and statements (bank account, reference to quote).
CONCORD_PAYMENT_INSTRUCTIONS = env.str(
    "CONCORD_PAYMENT_INSTRUCTIONS",
    default="Pay by bank transfer to Concord Demo Ltd, IBAN GB00 DEMO 0000 0000 0000 00, quoting the invoice number.",
)

# --- Accounting -------------------------------------------------------------------------------
# The company's own currency: the ledger is kept in it; invoices in other currencies are booked
# at the rate of their posting date (ledger.ExchangeRate).
CONCORD_BASE_CURRENCY = env.str("CONCORD_BASE_CURRENCY", default="USD")

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: a broker that needs no server, for `make run` on a laptop.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Where the broadcast exchanges are kept (kombu's default is ./control in the cwd).
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands an unacknowledged task to another worker once this many seconds have passed;
    # with acks_late a long job (a dunning run, an export of every customer) must finish well
    # within it or it would run twice at once. Celery's default is one hour.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged only once it has finished, so a worker that dies mid-task leaves it
# on the queue for another worker; every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The periodic tasks live in django-celery-beat's tables (created by data migrations, edited by
# admins in the admin site), not here: beat would overwrite an admin's edit from this setting.
CELERY_BEAT_SCHEDULE: dict = {}
# How long /healthz waits for the broker before it reports it down.
HEALTHZ_BROKER_TIMEOUT = env.float("HEALTHZ_BROKER_TIMEOUT", default=2.0)

# --- REST API (/api/v1/) ----------------------------------------------------------------------
REST_FRAMEWORK = {
    # Tokens first, so an anonymous caller is told how to authenticate (401 with WWW-Authenticate).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Role and per-customer rules come from crm.access, through api.permissions.
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.RolePermissions"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.CursorPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # JSON only: people browse the API through Swagger UI at /api/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.UserThrottle", "api.throttling.TokenThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        # Everything one person does through the API, whichever token or session they use.
        "user": env.str("API_THROTTLE_USER", default="2000/hour"),
        # Each token on its own, so one runaway integration does not starve a person's others.
        "token": env.str("API_THROTTLE_TOKEN", default="1000/hour"),
        # Password attempts for a token, per client address (axes locks the username as well).
        "token_obtain": env.str("API_THROTTLE_TOKEN_OBTAIN", default="10/minute"),
    },
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "DEFAULT_VERSIONING_CLASS": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# How long an Idempotency-Key is remembered (and its first response replayed).
API_IDEMPOTENCY_TTL_HOURS = env.int("API_IDEMPOTENCY_TTL_HOURS", default=24)
# Tokens made from a password expire after this many days unless the request asks for fewer.
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)
SPECTACULAR_SETTINGS = {
    "TITLE": "Concord API",
    "DESCRIPTION": (
        "Customers and accounts receivable. Authenticate with `Authorization: Bearer <token>` "
        "(tokens from `POST /api/v1/auth/token/` or the profile page). Errors are RFC 9457 problem "
        "details; every POST accepts an `Idempotency-Key`; detail responses carry an `ETag` that "
        "PUT and PATCH may send back in `If-Match`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a `status`: each enum is named after its model.
    "ENUM_NAME_OVERRIDES": {
        "CustomerStatusEnum": "crm.models.Customer.Status",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "PaymentStatusEnum": "billing.models.Payment.Status",
        "PromiseStatusEnum": "billing.models.PromiseToPay.Status",
    },
    "APPEND_COMPONENTS": {},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_problem_component",
    ],
}
# Throttle counters live in this cache; give production a shared one (Redis) so that every web
# process counts the same requests. The default is each process's own memory.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Sync with accounting packages (integrations/) -----------------------------------------
# Fernet keys (comma-separated, newest first) that encrypt OAuth tokens at rest. A new key goes
# first; older ones stay listed until `manage.py rotate_sync_keys` has re-encrypted every token.
# Development derives one from SECRET_KEY; production must set its own.
_required_in_production(
    "SYNC_ENCRYPTION_KEYS",
    "set it to one or more Fernet keys, e.g. the output of "
    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`.",
)
SYNC_ENCRYPTION_KEYS = env.list("SYNC_ENCRYPTION_KEYS", default=[])
# The Redis server that holds the per-tenant rate limits and circuit breakers every worker
# shares. Defaults to the Celery broker when that is Redis; empty means each process keeps its
# own (fine for one laptop, wrong for several workers).
SYNC_REDIS_URL = env.str(
    "SYNC_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "",
)
# Raw request/response payloads of sync runs are kept (compressed) this many days.
SYNC_PAYLOAD_RETENTION_DAYS = env.int("SYNC_PAYLOAD_RETENTION_DAYS", default=30)
# QuickBooks Online: the app's OAuth credentials and hosts. The defaults point at the local
# simulator (`manage.py run_simulator quickbooks --port 8765`), which `make run` starts.
QUICKBOOKS_CLIENT_ID = env.str("QUICKBOOKS_CLIENT_ID", default="concord-demo-client")
QUICKBOOKS_CLIENT_SECRET = env.str("QUICKBOOKS_CLIENT_SECRET", default="concord-demo-secret")
QUICKBOOKS_API_URL = env.str("QUICKBOOKS_API_URL", default="http://127.0.0.1:8765/v3")
QUICKBOOKS_AUTHORIZE_URL = env.str("QUICKBOOKS_AUTHORIZE_URL", default="http://127.0.0.1:8765/connect/oauth2")
QUICKBOOKS_TOKEN_URL = env.str("QUICKBOOKS_TOKEN_URL", default="http://127.0.0.1:8765/oauth2/v1/tokens/bearer")
QUICKBOOKS_REVOKE_URL = env.str("QUICKBOOKS_REVOKE_URL", default="http://127.0.0.1:8765/oauth2/v1/tokens/revoke")
QUICKBOOKS_MINOR_VERSION = env.int("QUICKBOOKS_MINOR_VERSION", default=75)
# The verifier token Intuit shows in the developer portal; webhooks are signed with it.
QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN = env.str("QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN", default="concord-demo-verifier")

# Xero: the app's OAuth credentials, hosts, scopes and webhook key. The defaults point at the local
# simulator (`manage.py run_simulator xero --port 8766`).
XERO_CLIENT_ID = env.str("XERO_CLIENT_ID", default="concord-xero-demo-client")
XERO_CLIENT_SECRET = env.str("XERO_CLIENT_SECRET", default="concord-xero-demo-secret")
XERO_API_URL = env.str("XERO_API_URL", default="http://127.0.0.1:8766/api.xro/2.0")
XERO_CONNECTIONS_URL = env.str("XERO_CONNECTIONS_URL", default="http://127.0.0.1:8766/connections")
XERO_AUTHORIZE_URL = env.str("XERO_AUTHORIZE_URL", default="http://127.0.0.1:8766/identity/connect/authorize")
XERO_TOKEN_URL = env.str("XERO_TOKEN_URL", default="http://127.0.0.1:8766/connect/token")
XERO_REVOKE_URL = env.str("XERO_REVOKE_URL", default="http://127.0.0.1:8766/connect/revocation")
# Space-separated. Pushing products needs accounting.settings (items are settings in Xero's scopes).
XERO_SCOPES = env.str(
    "XERO_SCOPES",
    default="openid profile email offline_access accounting.transactions accounting.contacts accounting.settings",
)
# The webhook key from Xero's developer portal; webhooks are signed with it.
XERO_WEBHOOK_KEY = env.str("XERO_WEBHOOK_KEY", default="concord-xero-demo-webhook-key")

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie.
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        # Only behind a proxy that strips and sets this header itself.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # /healthz is probed by load balancers over plain HTTP on the private network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
