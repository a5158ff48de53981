"""A minimal Django project for measuring instrumentation side by side.

Three variants of the same project, chosen by BENCH_VARIANT before Django starts:

- ``bare``: Django's own middleware (as ``startproject`` writes it), nothing else;
- ``standard``: what a team assembles by hand: django-prometheus (its middleware and
  database backend), OpenTelemetry's DjangoInstrumentor and a middleware that puts the
  trace id on the response;
- ``package``: the ``observability`` package as the control plane installs it.

The views are small on purpose: on a heavy endpoint the base cost hides the overhead.
"""
