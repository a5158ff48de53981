from tests.integration.prometheus import prometheus_factory  # noqa: F401
