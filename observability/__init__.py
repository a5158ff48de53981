"""Instrumentation for Django services: request ids, traces, metrics and JSON logs.

Nothing here knows about the service that installs it; see README.md for the
settings that wire it in.
"""
