"""Checking a rule's PromQL against its source before it is saved.

The admin form and the API serializer both call `verify_expression`, so a rule
refused in one is refused in the other with the same message.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from controlplane.alerting.models import LONGEST_EXPR, AlertRule
from controlplane.catalog.sources import client_for
from controlplane.promql.client import BadQuery, SourceError


def verify_expression(rule: AlertRule) -> None:
    """Ask the rule's source to parse its expression.

    A parse error is refused with Prometheus' own message. A source that cannot
    answer (or not within PROMQL_CHECK_SECONDS) does not block saving: the rule is
    marked unverified, with the reason.
    """
    if rule.source is None:
        rule.verification, rule.verification_note = AlertRule.Verification.INTERNAL, ""
        return
    if not rule.expr or not rule.expr.strip():
        raise ValidationError({"expr": "The expression is empty."})
    if len(rule.expr) > LONGEST_EXPR:
        raise ValidationError({"expr": f"An expression can be at most {LONGEST_EXPR} characters."})
    client = client_for(rule.source)
    # Someone waits for this answer in a request: bounded well below the web worker's
    # own timeout (deploy/gunicorn.conf.py), whatever the source's query timeout is. A
    # source slower than that is treated as one that is down: saved, unverified.
    client.timeout = min(client.timeout, settings.PROMQL_CHECK_SECONDS)
    try:
        client.validate(rule.expr)
    except BadQuery as error:
        raise ValidationError(
            {"expr": f"Prometheus refused the expression: {error.message}"}
        ) from None
    except SourceError as error:
        rule.verification = AlertRule.Verification.UNVERIFIED
        rule.verification_note = f"Not checked: {error.message}"
    else:
        rule.verification, rule.verification_note = AlertRule.Verification.VERIFIED, ""
