"""Settings, each read from an environment variable documented in the README."""

import logging
from datetime import timedelta
from pathlib import Path

from controlplane import environment as env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.string("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.boolean("DEBUG", default=False)
SECRET_KEY = env.secret_key("SECRET_KEY", DEBUG, VAR_DIR / "secret_key")
ALLOWED_HOSTS = env.string_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.string_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env.url("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    # Django's admin with our site: view-on-site and autocomplete behind the walls.
    "controlplane.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "observability",
    "controlplane.catalog",
    "controlplane.alerting",
    "controlplane.paging",
    "controlplane.oncall",
    "controlplane.slo",
    "controlplane.jobs",
    "controlplane.audit",
    "controlplane.dashboards",
    "controlplane.api",
    "runbooks",
    "axes",
]

MIDDLEWARE = [
    # Our request span, ids and http_server_request_duration_seconds. django-prometheus'
    # request middleware is left out: its 17 request families count the same requests
    # again at about half this middleware's cost (bench/observability_overhead.py).
    "observability.middleware.ObservabilityMiddleware",
    "controlplane.middleware.RejectNulBytes",
    "django.middleware.security.SecurityMiddleware",
    "controlplane.middleware.SecurityHeaders",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "controlplane.acting.ActingMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", VAR_DIR / "controlplane.sqlite3")}
# django-prometheus' backends wrap Django's to count queries, errors and connections
# (django_db_*): what it gives that our own metrics do not.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends.", 1
)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so a Celery worker started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # One file shared by web, worker and beat (the demo's default). WAL lets readers run
    # beside the one writer; a writer waits up to 20 s for the lock rather than failing
    # with "database is locked"; BEGIN IMMEDIATE takes the write lock when a transaction
    # starts, because a transaction that read first and then writes is refused at once
    # when another wrote meanwhile, whatever the timeout. synchronous=NORMAL is WAL's usual
    # pairing: a power cut may lose the last commits but never corrupts the file.
    # A DATABASE_URL's own options win.
    _sqlite_options = DATABASES["default"].setdefault("OPTIONS", {})
    _sqlite_options.setdefault("transaction_mode", "IMMEDIATE")
    _sqlite_options.setdefault("timeout", 20)
    _sqlite_options.setdefault(
        "init_command",
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes, docs/security.md): after LOGIN_FAILURE_LIMIT wrong
# passwords for one username from one address, that pair is refused with a 429 page
# for LOGIN_COOLOFF_MINUTES, on /accounts/login/ and the admin's login alike. The pair,
# not the address alone, so colleagues behind one NAT do not lock each other out, and
# not the username alone, so a stranger cannot lock anyone out from anywhere.
AUTHENTICATION_BACKENDS = [
    # First: a locked-out pair is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.integer("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.integer("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A success forgets the pair's failures: a typo a day never adds up to a lockout.
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "controlplane.login_throttle.locked_out"
# Axes then masks the username and address in its log lines: users appear in our logs
# by id only. The failures themselves are in the admin (Axes > Access attempts).
AXES_VERBOSE = False
# What Axes masks in those lines and in the form data it stores; its default, written
# out because the promise is ours: no username or address in a log line (docs/audit.md).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address"]
# Axes would otherwise keep a row per successful login (username, address, browser)
# with no retention; the audit trail records who changed what.
AXES_DISABLE_ACCESS_LOG = True

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise expects it, even when serving from finders
STATICFILES_DIRS = [BASE_DIR / "static"]
# Static files are served by the web process itself (WhiteNoise), straight from the
# apps and static/, so DEBUG off needs no collectstatic and no separate web server.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy on every response (controlplane.middleware.SecurityHeaders):
# scripts, styles, fonts and images from this origin only, no inline script. Images
# from elsewhere would tell their host who read which runbook when, so only the
# origins in CSP_IMG_HOSTS may serve them.
CSP_IMG_HOSTS = env.csp_origins("CSP_IMG_HOSTS")
# Sent on every response once above 0; browsers heed it only over HTTPS (RFC 6797),
# so it works behind a proxy that ends TLS. Defaults to a year when cookies are
# HTTPS-only anyway, i.e. the site is served over HTTPS.
SECURE_HSTS_SECONDS = env.integer(
    "SECURE_HSTS_SECONDS", 31_536_000 if SESSION_COOKIE_SECURE else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.api.permissions.OrganizationAccess"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.integer("API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Observability control plane API",
    "DESCRIPTION": "SLO status, alerts, rules, runbooks and services, scoped to your organisation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Swagger UI and ReDoc come from drf-spectacular-sidecar's static files, not a CDN:
    # the docs render without internet and tell no third party who reads them.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Otherwise Swagger UI sends the schema's address to validator.swagger.io for a badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": "none"},
    # drf-spectacular's own enum hook, then ours: the error answers every operation gives.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "controlplane.api.schema.document_errors",
    ],
}

CELERY_BROKER_URL = env.broker(
    "CELERY_BROKER_URL", f"filesystem://localhost{(VAR_DIR / 'broker').as_posix()}"
)
CELERY_RESULT_BACKEND = env.string("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = env.boolean("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("in", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "in"),
        "data_folder_out": str(_broker_dir / "in"),
        "processed_folder": str(_broker_dir / "processed"),
        # Without it kombu writes its control exchange into the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The transport polls its folder; at the default 1 s, with acks_late and a
        # prefetch of one, it delivers about one message a second per process, fewer
        # than beat's ticks send, and the evaluations queue up behind stale ticks.
        "polling_interval": 0.05,
    }
# Workers log through LOGGING (JSON lines with trace and audit ids), not Celery's format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

OBSERVABILITY = {
    "ENABLED": env.boolean("OBSERVABILITY_ENABLED", default=True),
    "SERVICE_NAME": env.string("OTEL_SERVICE_NAME", "controlplane"),
    "OTLP_ENDPOINT": env.url("OTEL_EXPORTER_OTLP_ENDPOINT"),
    "LOG_SPANS": env.boolean("LOG_SPANS", default=False),
    "REQUEST_ID_HEADER": "X-Request-Id",
    # No prefix for the package's job-run metrics (job_runs_total{job,result}): the
    # controlplane_job_* names are the job monitors' own (controlplane/jobs/metrics.py,
    # {job,outcome}), and one name cannot carry both label sets.
    # /metrics counts every organisation's alerts and rules: internal network only,
    # and with a token set, Prometheus must send it (docs/security.md).
    "METRICS_TOKEN": env.bearer_token("METRICS_TOKEN"),
    # Logs and spans name people by pseudonym, never by id, name or address
    # (docs/audit.md); an API token's requests keep the token's id ("token:12").
    "USER_ID": "controlplane.audit.pseudonyms.of_user",
}
TRACE_URL_TEMPLATE = env.trace_url_template("TRACE_URL_TEMPLATE")

# The outbound-HTTP guard (controlplane/catalog/outbound.py, docs/alerting.md): networks
# reached although their policy refuses them, checked on every connection. Sources may
# reach private networks but not loopback, link-local or cloud metadata addresses;
# webhooks and other internet receivers reach no private address at all.
ALLOWED_SOURCE_NETWORKS = env.networks("ALLOWED_SOURCE_NETWORKS")
ALLOWED_PRIVATE_NETWORKS = env.networks("ALLOWED_PRIVATE_NETWORKS")
# Hosts besides hooks.slack.com a Slack channel's webhook URL may name: Slack-compatible
# receivers such as Mattermost ("chat.example.com", or "host:port" for one port only).
SLACK_WEBHOOK_HOSTS = env.string_list("SLACK_WEBHOOK_HOSTS", [])

# prometheus_client reads it from the environment itself; checked here so a typo
# stops the start instead of failing the first metric write.
PROMETHEUS_MULTIPROC_DIR = env.directory("PROMETHEUS_MULTIPROC_DIR")

LOG_LEVEL = env.string("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "observability.logging.JsonFormatter"}},
    "filters": {
        "quiet_ticks": {"()": "controlplane.quiet_ticks.QuietTicks", "debug": LOG_LEVEL == "DEBUG"},
        "mask_keys": {"()": "controlplane.key_masking.MaskIntegrationKeys"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["quiet_ticks", "mask_keys"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": LOG_LEVEL},
        # Axes writes four INFO lines per successful login; its failures and lockouts
        # are warnings, and those stay.
        "axes": {"level": max(LOG_LEVEL, "WARNING", key=logging.getLevelName)},
    },
}

for _key, _value in env.email("EMAIL_URL").items():
    globals()[_key] = _value
DEFAULT_FROM_EMAIL = env.string("DEFAULT_FROM_EMAIL", "controlplane@localhost")

# How long saving a rule waits for its source to check the PromQL (docs/alerting.md):
# well below gunicorn's timeout (deploy/gunicorn.conf.py), whatever the source's own.
PROMQL_CHECK_SECONDS = env.integer("PROMQL_CHECK_SECONDS", 3, minimum=1)

# The alert outbox (docs/alerting.md): how long a worker may hold an event before
# another may take it (a worker killed mid-way gives it back when this runs out),
# and whether each commit nudges a worker at once (beat's tick finds events anyway).
ALERT_EVENT_LEASE_SECONDS = env.integer("ALERT_EVENT_LEASE_SECONDS", 60, minimum=1)
ALERT_EVENT_NUDGE = env.boolean("ALERT_EVENT_NUDGE", default=True)
# Paging (docs/paging.md): how long a delivery worker holds the notifications it claimed.
# Longer than any send can take (the outbound guard cuts an exchange at twice its 10 s
# timeout), so a live worker never loses a row it is sending; a killed worker's rows go
# out again when it runs out.
PAGING_LEASE_SECONDS = env.integer("PAGING_LEASE_SECONDS", 60, minimum=1)
# Consumers beyond those the contexts register themselves: name=dotted.path.to.handler
ALERT_EVENT_CONSUMERS = env.named_paths("ALERT_EVENT_CONSUMERS")

# SLOs (docs/slos.md): how often each SLO is evaluated, and whether the evaluation
# reads the exported recording rules for the SLO window when they cover it.
SLO_EVALUATION_SECONDS = env.integer("SLO_EVALUATION_SECONDS", 60, minimum=10)
SLO_FAST_PATH = env.boolean("SLO_FAST_PATH", default=True)

# Job pings (docs/jobs.md): pings one monitor's URL takes a minute (counted per web
# process with the default local-memory cache), and monitors one ping key may create a
# minute with ?create=1.
JOB_PINGS_PER_MINUTE = env.integer("JOB_PINGS_PER_MINUTE", 60, minimum=1)
JOB_PING_CREATIONS_PER_MINUTE = env.integer("JOB_PING_CREATIONS_PER_MINUTE", 10, minimum=0)

# The audit trail (docs/audit.md): the key of its hash chain, kept out of the database.
# Empty: derived from SECRET_KEY, whose rotation then breaks `audit_verify` for what
# was sealed before; set it to keep the trail verifiable across a SECRET_KEY rotation.
AUDIT_CHAIN_KEY = env.secret("AUDIT_CHAIN_KEY", minimum_length=32)
# Days kept per retention category for every organisation, over the defaults
# (controlplane/audit/policy.py), e.g. "audit_events=730,notifications=30"; an
# organisation's RetentionOverride wins over both.
RETENTION_DAYS = env.retention_days("RETENTION_DAYS")

# The calendar.queue signal's limits (docs/oncall.md): schedules in the backlog, and
# how old an overdue schedule's last successful synchronisation may be.
CALENDAR_QUEUE_MOST_BACKLOG = env.integer("CALENDAR_QUEUE_MOST_BACKLOG", 3, minimum=0)
CALENDAR_QUEUE_LONGEST_DELAY_SECONDS = env.integer(
    "CALENDAR_QUEUE_LONGEST_DELAY_SECONDS", 3600, minimum=0
)
