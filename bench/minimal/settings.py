"""Settings of the minimal bench project; see bench/minimal/__init__.py for the variants."""

from __future__ import annotations

import os

import dj_database_url

VARIANTS = ("bare", "standard", "package")
VARIANT = os.environ.get("BENCH_VARIANT", "bare")
if VARIANT not in VARIANTS:
    raise RuntimeError(f"BENCH_VARIANT must be one of {', '.join(VARIANTS)}, not {VARIANT!r}")

SECRET_KEY = "bench-minimal-not-a-secret-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "bench.minimal.urls"
WSGI_APPLICATION = "bench.minimal.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]

# Django's own, as `startproject` writes it: the cost every project already pays.
DJANGO_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The one-query view talks to PostgreSQL when the bench is given one (as in production,
# where the psycopg instrumentation adds a span per query), else to a SQLite file.
_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{os.environ['BENCH_VAR_DIR']}/db.sqlite3"
DATABASES = {"default": dj_database_url.parse(_url, conn_max_age=600)}

if VARIANT == "bare":
    MIDDLEWARE = DJANGO_MIDDLEWARE
elif VARIANT == "standard":
    INSTALLED_APPS += ["django_prometheus"]
    # DjangoInstrumentor puts its own middleware first when bench.minimal.wsgi runs it.
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *DJANGO_MIDDLEWARE,
        "bench.minimal.standard.TraceIdHeader",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
else:
    INSTALLED_APPS += ["django_prometheus", "observability"]
    MIDDLEWARE = ["observability.middleware.ObservabilityMiddleware", *DJANGO_MIDDLEWARE]
    OBSERVABILITY = {"SERVICE_NAME": "bench", "JOB_METRICS_NAMESPACE": "bench"}

if VARIANT != "bare":
    # django-prometheus' database metrics (queries, errors, connections) come from its
    # backends, which wrap Django's.
    _engine = DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    DATABASES["default"]["ENGINE"] = f"django_prometheus.db.backends.{_engine}"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "observability.logging.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    # As in production: INFO is on, and nothing logs on a successful request.
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"django": {"level": "INFO"}},
}
if VARIANT == "bare":
    LOGGING["formatters"] = {}
    LOGGING["handlers"] = {"stderr": {"class": "logging.StreamHandler"}}
