"""Links from anything that carries a trace id to the trace viewer.

`TRACE_URL_TEMPLATE` (e.g. Grafana Explore on Tempo) names the viewer once for every
page, admin screen, API answer and notification; unset, trace ids are shown as text.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.html import format_html


def trace_url(trace_id: str) -> str:
    """The viewer's URL for `trace_id`, or "" without a template or an id."""
    template = settings.TRACE_URL_TEMPLATE
    return template.replace("{trace_id}", trace_id) if template and trace_id else ""


def trace_link(trace_id: str) -> str:
    """For the admin: the id as a link to the viewer, the bare id without a template,
    "-" without an id."""
    if not trace_id:
        return "-"
    url = trace_url(trace_id)
    if not url:
        return trace_id
    return format_html('<a href="{}" rel="noopener">{}</a>', url, trace_id)
