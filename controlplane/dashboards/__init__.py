"""Grafana dashboards built from code (grafana-foundation-sdk), exported as provisioning
files by `manage.py export_grafana_dashboards` (deploy/grafana/, docs/observability/dashboards.md).

Pure builders: `control_plane`, `jobs`, `slos` return dashboards as dicts; `export.build_all`
gathers them by file name. No models: the app exists for its management command.
"""
