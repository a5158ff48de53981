"""The gunicorn configuration of every variant alike: the hooks the package's README
recommends for any Django project (the heap freeze helps bare Django too)."""

from observability.gunicorn import child_exit, post_worker_init  # noqa: F401
