"""Speaking PromQL: the query-API client, Prometheus durations, and the spelling
of NaN and infinities. Shared by every context that reads metric sources
(alerting, SLOs); it knows nothing of the models.
"""
